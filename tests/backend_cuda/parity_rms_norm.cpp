// RMSNorm forward and backward (overwrite and accumulate): CUDA bf16 against the fp32 CPU
// reference on identical bf16-exact inputs. Rows 1, 7, 33, 4097; widths 7 (odd), 80 (per head),
// 128, 4096.
#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

using test::DeviceTensor;

void check_rms_norm(int64_t rows, int64_t width, uint32_t seed) {
  const std::string tag = str_cat(" [", rows, ", ", width, "]");
  const float eps = 1e-6f;
  std::vector<float> x = test::random_bf16(rows * width, seed, 3.0f), w = test::random_bf16(width, seed + 1);
  for (float& v : w) v = bf16_to_f32(f32_to_bf16(v + 1.0f));
  std::vector<float> d_out = test::random_bf16(rows * width, seed + 2), init = test::random_bf16(rows * width, seed + 3);
  std::vector<float> out(x.size()), d_x(x.size()), d_x_acc = init;
  rms_norm_forward_cpu({test::host_view(x, {rows, width}), test::host_view(w, {width}), test::host_view(out, {rows, width}), eps});
  rms_norm_backward_cpu({test::host_view(x, {rows, width}), test::host_view(w, {width}),
                         test::host_view(d_out, {rows, width}), test::host_view(d_x, {rows, width}), eps,
                         GradStore::Overwrite});
  rms_norm_backward_cpu({test::host_view(x, {rows, width}), test::host_view(w, {width}),
                         test::host_view(d_out, {rows, width}), test::host_view(d_x_acc, {rows, width}), eps,
                         GradStore::Accumulate});
  DeviceTensor gx(DType::BF16, {rows, width}, x), gw(DType::BF16, {width}, w), gout(DType::BF16, {rows, width});
  DeviceTensor gd_out(DType::BF16, {rows, width}, d_out), gd_x(DType::BF16, {rows, width});
  DeviceTensor gd_x_acc(DType::BF16, {rows, width}, init);
  CudaContext& ctx = test::gpu();
  rms_norm_forward_cuda({gx.view(), gw.view(), gout.view(), eps}, ctx);
  rms_norm_backward_cuda({gx.view(), gw.view(), gd_out.view(), gd_x.view(), eps, GradStore::Overwrite}, ctx);
  rms_norm_backward_cuda({gx.view(), gw.view(), gd_out.view(), gd_x_acc.view(), eps, GradStore::Accumulate}, ctx);
  const test::Tolerance tol = test::tolerance_for(DType::BF16);
  test::expect_close("rms_norm out" + tag, gout.download(), out, tol);
  test::expect_close("rms_norm d_x" + tag, gd_x.download(), d_x, tol);
  test::expect_close("rms_norm d_x accumulated" + tag, gd_x_acc.download(), d_x_acc, test::scaled(tol, 2.0));
  gout.expect_guards("rms_norm out");
  gd_x.expect_guards("rms_norm d_x");
  gd_x_acc.expect_guards("rms_norm d_x accumulated");
}

// Full fine-tuning's norm-weight gradient, accumulated in fp32 over the rows.
void check_weight_grad(int64_t rows, int64_t width, uint32_t seed) {
  const float eps = 1e-5f;
  std::vector<float> x = test::random_bf16(rows * width, seed, 3.0f), d_out = test::random_bf16(rows * width, seed + 1);
  std::vector<float> want = test::random_bf16(width, seed + 2);
  const std::vector<float> init = want;
  rms_norm_weight_backward_cpu({test::host_view(x, {rows, width}), test::host_view(d_out, {rows, width}),
                                test::host_view(want, {width}), eps});
  DeviceTensor gx(DType::BF16, {rows, width}, x), gd(DType::BF16, {rows, width}, d_out), gw(DType::F32, {width}, init);
  DeviceTensor ws(DType::U8, {rms_norm_weight_backward_workspace_bytes_cuda(rows)});
  rms_norm_weight_backward_cuda({gx.view(), gd.view(), gw.view(), eps}, ws.view(), test::gpu());
  // Sums of `rows` products: fp32 accumulation in a different order than the CPU's double.
  test::expect_close(str_cat("rms_norm d_weight [", rows, ", ", width, "]"), gw.download(), want,
                     test::scaled(test::tolerance_for(DType::F32), 10.0));
  gw.expect_guards("rms_norm d_weight");
}

TEST(ParityRmsNorm, WeightBackwardMatchesCpu) {
  KTO_REQUIRE_GPU();
  check_weight_grad(1, 7, 1);
  check_weight_grad(33, 80, 2);
  check_weight_grad(4097, 128, 3);
}

TEST(ParityRmsNorm, ForwardAndBackwardMatchCpu) {
  KTO_REQUIRE_GPU();
  uint32_t seed = 10;
  for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{33}}) {
    for (const int64_t width : {int64_t{7}, int64_t{80}, int64_t{4096}}) check_rms_norm(rows, width, seed += 4);
  }
  check_rms_norm(4097, 128, 99);
}

TEST(ParityRmsNorm, InPlaceForwardMatchesCpu) {
  KTO_REQUIRE_GPU();
  const int64_t rows = 33, width = 64;
  std::vector<float> x = test::random_bf16(rows * width, 5), w = test::random_bf16(width, 6), want(x.size());
  rms_norm_forward_cpu({test::host_view(x, {rows, width}), test::host_view(w, {width}), test::host_view(want, {rows, width}),
                        1e-5f});
  DeviceTensor gx(DType::BF16, {rows, width}, x), gw(DType::BF16, {width}, w);
  rms_norm_forward_cuda({gx.view(), gw.view(), gx.view(), 1e-5f}, test::gpu());
  test::expect_close("rms_norm in place", gx.download(), want, test::tolerance_for(DType::BF16));
  gx.expect_guards("rms_norm in place");
}

}  // namespace
}  // namespace kto
