// RoPE forward and backward (in place): CUDA bf16 against the fp32 CPU reference; head dims 6,
// 64, 80, 128, positions up to 32768 (large angles test the sincos range reduction).
#include <cmath>

#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

using test::DeviceTensor;

void check_rope(int64_t n_tokens, int64_t n_heads, int64_t head_dim, double theta, uint32_t seed) {
  const std::string tag = str_cat(" T=", n_tokens, " Dh=", head_dim);
  const int64_t half = head_dim / 2, width = n_heads * head_dim;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t d = 0; d < half; ++d) {
    inv_freq[static_cast<size_t>(d)] = static_cast<float>(1.0 / std::pow(theta, 2.0 * static_cast<double>(d) / static_cast<double>(head_dim)));
  }
  std::vector<int32_t> positions = test::random_ints(n_tokens, seed, 0, 32768);
  positions[0] = 0;
  const std::vector<float> x = test::random_bf16(n_tokens * width, seed + 1, 2.0f);
  std::vector<float> fwd = x, bwd = x;
  rope_forward_cpu({test::host_view(fwd, {n_tokens, width}), test::host_view(positions), test::host_view(inv_freq, {half}),
                    n_heads, head_dim});
  rope_backward_cpu({test::host_view(bwd, {n_tokens, width}), test::host_view(positions),
                     test::host_view(inv_freq, {half}), n_heads, head_dim});
  DeviceTensor g_pos = DeviceTensor::i32(positions), g_freq(DType::F32, {half}, inv_freq);
  DeviceTensor g_fwd(DType::BF16, {n_tokens, width}, x), g_bwd(DType::BF16, {n_tokens, width}, x);
  rope_forward_cuda({g_fwd.view(), g_pos.view(), g_freq.view(), n_heads, head_dim}, test::gpu());
  rope_backward_cuda({g_bwd.view(), g_pos.view(), g_freq.view(), n_heads, head_dim}, test::gpu());
  test::expect_close("rope forward" + tag, g_fwd.download(), fwd, test::tolerance_for(DType::BF16));
  test::expect_close("rope backward" + tag, g_bwd.download(), bwd, test::tolerance_for(DType::BF16));
  g_fwd.expect_guards("rope forward");
  g_bwd.expect_guards("rope backward");
}

TEST(ParityRope, ForwardAndBackwardMatchCpu) {
  KTO_REQUIRE_GPU();
  check_rope(1, 3, 6, 10000.0, 1);
  check_rope(33, 4, 64, 10000.0, 2);
  check_rope(127, 2, 80, 1e6, 3);
  check_rope(4097, 2, 128, 500000.0, 4);
}

}  // namespace
}  // namespace kto
