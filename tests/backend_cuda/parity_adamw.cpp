// AdamW on the GPU against train/adamw.cpp (bit-identical by construction), with the bf16 working
// copy and the clip coefficient from grad_norm_cuda; the global grad norm against a double sum.
#include <cmath>

#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"
#include "train/adamw.h"

namespace kto {
namespace {

using test::DeviceTensor;

TEST(ParityAdamW, StepsMatchCpuBitForBit) {
  KTO_REQUIRE_GPU();
  const int64_t n = 4097;
  const AdamWConfig config{0.9, 0.999, 1e-8, 0.01};
  std::vector<float> param = test::random_bf16(n, 1), m(static_cast<size_t>(n), 0.0f), v = m;
  DeviceTensor gp(DType::F32, {n}, param), gm(DType::F32, {n}, m), gv(DType::F32, {n}, v), gg(DType::F32, {n});
  DeviceTensor gshadow(DType::BF16, {n});
  for (int64_t step = 1; step <= 5; ++step) {
    std::vector<float> grad = test::random_bf16(n, static_cast<uint32_t>(10 + step), 0.1f);
    adamw_step(config, 1e-3, step, param, grad, {m, v});
    gg.upload(grad);
    AdamWCudaArgs args{gp.view(), gg.view(), gm.view(), gv.view(), gshadow.view(), Tensor{}};
    args.lr = 1e-3, args.beta1 = config.beta1, args.beta2 = config.beta2, args.eps = config.eps;
    args.weight_decay = config.weight_decay, args.step = step;
    adamw_step_cuda(args, test::gpu());
  }
  const test::Tolerance exact{0.0, 0.0};
  test::expect_close("adamw param", gp.download(), param, exact);
  test::expect_close("adamw exp_avg", gm.download(), m, exact);
  test::expect_close("adamw exp_avg_sq", gv.download(), v, exact);
  std::vector<float> shadow(param.size());
  for (size_t i = 0; i < param.size(); ++i) shadow[i] = bf16_to_f32(f32_to_bf16(param[i]));
  test::expect_close("adamw param_bf16", gshadow.download(), shadow, exact);
  for (const DeviceTensor* g : {&gp, &gm, &gv, &gshadow}) g->expect_guards("adamw");
}

TEST(ParityGradNorm, NormAndClipDriveAdamW) {
  KTO_REQUIRE_GPU();
  const std::vector<int64_t> sizes{1, 1000, 4097};
  std::vector<std::vector<float>> grads;
  std::vector<DeviceTensor> device;
  double sum_sq = 0.0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    grads.push_back(test::random_bf16(sizes[i], static_cast<uint32_t>(i + 1), 0.5f));
    for (float g : grads.back()) sum_sq += static_cast<double>(g) * g;
    device.emplace_back(DType::F32, Shape{sizes[i]}, grads.back());
  }
  const double norm = std::sqrt(sum_sq), max_norm = 1.0;
  const std::vector<Tensor> views{device[0].view(), device[1].view(), device[2].view()};
  DeviceTensor gnorm(DType::F32, {1}), gclip(DType::F32, {1}), ws(DType::U8, {grad_norm_workspace_bytes_cuda()});
  grad_norm_cuda({views, gnorm.view(), gclip.view(), static_cast<float>(max_norm)}, ws.view(), test::gpu());
  const auto clip = static_cast<float>(std::min(1.0, max_norm / (norm + 1e-6)));
  test::expect_close("grad_norm norm", gnorm.download(), {static_cast<float>(norm)}, {1e-6, 0.0});
  test::expect_close("grad_norm clip", gclip.download(), {clip}, {1e-6, 0.0});
  // The clip coefficient scales the gradient inside the AdamW kernel as torch's g.mul_(clip_coef).
  std::vector<float> param = test::random_bf16(4097, 9), m(4097, 0.0f), v(4097, 0.0f), scaled = grads[2];
  const float clip_gpu = gclip.download()[0];
  for (float& g : scaled) g *= clip_gpu;
  adamw_step(AdamWConfig{}, 1e-3, 1, param, scaled, {m, v});
  DeviceTensor gp(DType::F32, {4097}, test::random_bf16(4097, 9)), gm(DType::F32, {4097}, std::vector<float>(4097, 0.0f));
  DeviceTensor gv(DType::F32, {4097}, std::vector<float>(4097, 0.0f));
  AdamWCudaArgs args{gp.view(), device[2].view(), gm.view(), gv.view(), Tensor{}, gclip.view()};
  args.lr = 1e-3, args.step = 1;
  adamw_step_cuda(args, test::gpu());
  test::expect_close("adamw with clip", gp.download(), param, {0.0, 0.0});
  for (const DeviceTensor* g : {&gnorm, &gclip, &ws, &gp}) g->expect_guards("grad_norm");
}

}  // namespace
}  // namespace kto
