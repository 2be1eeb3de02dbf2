// 8-bit AdamW on the GPU against train/adamw8bit.cpp (bitsandbytes' CPU AdamW8bit, itself checked
// against bnb in tests/train/test_adamw8bit.cpp): five steps with a changing learning rate on
// parameters of 300 and 4095 elements (bnb's f32-state path under min_8bit_size), 4096 (16 full
// blocks of 256) and 70000 (a partial last block); gradients spanning seven decades and one block
// whose gradient stays zero (absmax 0); weight decay on and off; the clip coefficient as
// grad_scale. Parameters, the bf16 working copy, codes and absmax (or f32 moments) must agree
// bit for bit.
#include <cmath>
#include <cstring>

#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"
#include "train/adamw8bit.h"

namespace kto {
namespace {

using test::DeviceTensor;

struct Run {
  int64_t n;
  double weight_decay;
  float clip;  // 0: no grad_scale
};

// Block b of 256 gets magnitudes ~0.1·10^-(b % 7); block 1 is zero at every step.
std::vector<float> gradient(int64_t n, int64_t step) {
  std::vector<float> g = test::random_bf16(n, static_cast<uint32_t>(100 + step), 0.1f);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / kAdam8bitBlockSize;
    float& gi = g[static_cast<size_t>(i)];
    gi = block == 1 ? 0.0f : gi * std::pow(10.0f, -static_cast<float>(block % 7));
  }
  return g;
}

DeviceTensor upload_bytes(const HostTensor& host) {
  DeviceTensor t(host.dtype(), host.shape());
  cuda_copy_to_device(test::gpu(), t.view(), host.view().data);
  return t;
}

// Byte-wise equality of a device tensor with a host one of the same dtype and size.
void expect_same_bytes(const std::string& what, const Tensor& got, const void* want) {
  std::vector<uint8_t> bytes(got.nbytes());
  cuda_copy_to_host(test::gpu(), bytes.data(), got);
  const size_t elem = dtype_bits(got.dtype) / 8;
  const auto* w = static_cast<const uint8_t*>(want);
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < bytes.size(); i += elem) {
    if (std::memcmp(&bytes[i], w + i, elem) != 0 && mismatches++ == 0) first = i / elem;
  }
  EXPECT_EQ(mismatches, 0u) << what << ": " << mismatches << " of " << bytes.size() / elem
                            << " elements differ, first at " << first;
}

void run_steps(const Run& r) {
  SCOPED_TRACE(str_cat("n=", r.n, " weight_decay=", r.weight_decay, " clip=", r.clip));
  const AdamWConfig config{0.9, 0.999, 1e-8, r.weight_decay};
  std::vector<float> param = test::random_bf16(r.n, 7, 0.5f);
  AdamW8bitState cpu = adamw8bit_state_new(r.n);
  ASSERT_EQ(cpu.eight_bit(), r.n >= kAdam8bitMinSize);
  // The device states start as the CPU's (zero codes and absmax, or zero moments).
  std::vector<DeviceTensor> states;
  const std::vector<const HostTensor*> host_states =
      cpu.eight_bit() ? std::vector<const HostTensor*>{&cpu.state1, &cpu.state2, &cpu.absmax1, &cpu.absmax2}
                      : std::vector<const HostTensor*>{&cpu.exp_avg, &cpu.exp_avg_sq};
  for (const HostTensor* h : host_states) states.push_back(upload_bytes(*h));
  DeviceTensor gp(DType::F32, {r.n}, param), gg(DType::F32, {r.n}), gshadow(DType::BF16, {r.n});
  DeviceTensor gscale(DType::F32, {1}, {r.clip});

  for (int64_t step = 1; step <= 5; ++step) {
    const double lr = 1e-3 * (1.0 - 0.15 * static_cast<double>(step - 1));
    const std::vector<float> grad = gradient(r.n, step);
    std::vector<float> clipped = grad;  // the kernel's g · clip, one f32 product
    if (r.clip > 0.0f) {
      for (float& g : clipped) g *= r.clip;
    }
    adamw8bit_step(config, lr, step, param, clipped, cpu);
    gg.upload(grad);
    AdamW8bitCudaArgs args;
    args.param = gp.view(), args.grad = gg.view(), args.param_bf16 = gshadow.view();
    if (cpu.eight_bit()) {
      args.state1 = states[0].view(), args.state2 = states[1].view();
      args.absmax1 = states[2].view(), args.absmax2 = states[3].view();
    } else {
      args.exp_avg = states[0].view(), args.exp_avg_sq = states[1].view();
    }
    if (r.clip > 0.0f) args.grad_scale = gscale.view();
    args.lr = lr, args.beta1 = config.beta1, args.beta2 = config.beta2, args.eps = config.eps;
    args.weight_decay = config.weight_decay, args.step = step;
    adamw8bit_step_cuda(args, test::gpu());
  }

  expect_same_bytes("adamw8bit param", gp.view(), param.data());
  std::vector<uint16_t> shadow(param.size());
  for (size_t i = 0; i < param.size(); ++i) shadow[i] = f32_to_bf16(param[i]);
  expect_same_bytes("adamw8bit param_bf16", gshadow.view(), shadow.data());
  const char* names[] = {"state1", "state2", "absmax1", "absmax2"};
  const char* names32[] = {"exp_avg", "exp_avg_sq"};
  for (size_t k = 0; k < states.size(); ++k) {
    const std::string name = str_cat("adamw8bit ", cpu.eight_bit() ? names[k] : names32[k]);
    expect_same_bytes(name, states[k].view(), host_states[k]->view().data);
    states[k].expect_guards(name);
  }
  if (cpu.eight_bit()) {  // the zero-gradient block took the absmax-0 branch
    EXPECT_EQ(cpu.absmax1.f32()[1], 0.0f);
    EXPECT_EQ(cpu.absmax2.f32()[1], 0.0f);
  }
  for (const DeviceTensor* t : {&gp, &gshadow, &gscale}) t->expect_guards("adamw8bit");
}

TEST(ParityAdamW8bit, BlockwiseStatesMatchCpuBitForBit) {
  KTO_REQUIRE_GPU();
  run_steps({4096, 0.01, 0.0f});
  run_steps({70000, 0.01, 0.0f});
  run_steps({70000, 0.0, 0.0f});
}

TEST(ParityAdamW8bit, SmallParametersTakeTheF32PathBitForBit) {
  KTO_REQUIRE_GPU();
  run_steps({300, 0.01, 0.0f});
  run_steps({4095, 0.0, 0.0f});
}

// grad_scale multiplies the gradient before anything else, as the trainer's clipping does.
TEST(ParityAdamW8bit, ClipCoefficientScalesTheGradient) {
  KTO_REQUIRE_GPU();
  run_steps({70000, 0.01, 0.3712f});
  run_steps({300, 0.01, 0.3712f});
}

}  // namespace
}  // namespace kto
