// RMSNorm forward in fp32; mirrors HF LlamaRMSNorm.forward (x * rsqrt(mean(x^2) + eps) * w),
// also used per head for Qwen3's q_norm / k_norm.
#include <cmath>

#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {

// One row per iteration; the mean of squares accumulates in double (HF accumulates in fp32;
// the difference is far below the test tolerance and makes long rows stable).
void rms_norm_forward_cpu(const RmsNormArgs& args) {
  const int64_t rows = args.x.shape[0];
  const int64_t width = args.x.shape[1];
  cpu::check_tensor(args.x, "rms_norm x", DType::F32, {rows, width});
  cpu::check_tensor(args.weight, "rms_norm weight", DType::F32, {width});
  cpu::check_tensor(args.out, "rms_norm out", DType::F32, {rows, width});
  const float* x = args.x.f32();
  const float* w = args.weight.f32();
  float* out = args.out.f32();
#pragma omp parallel for schedule(static) if (rows * width >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < width; ++i) sum_sq += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(width) + args.eps));
    float* outr = out + r * width;
    for (int64_t i = 0; i < width; ++i) outr[i] = w[i] * (xr[i] * inv);
  }
}

}  // namespace kto
