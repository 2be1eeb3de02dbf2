// RMSNorm forward and input-gradient backward in fp32; mirrors HF LlamaRMSNorm.forward
// (x * rsqrt(mean(x^2) + eps) * w) and its autograd, also used per head for Qwen3's
// q_norm / k_norm. The weight gradient is never needed (norms are frozen under LoRA).
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

// One row per iteration; both reductions (mean of squares, mean of g·x) in double.
void rms_norm_backward_cpu(const RmsNormBackwardArgs& args) {
  const int64_t rows = args.x.shape[0];
  const int64_t width = args.x.shape[1];
  cpu::check_tensor(args.x, "rms_norm_backward x", DType::F32, {rows, width});
  cpu::check_tensor(args.weight, "rms_norm_backward weight", DType::F32, {width});
  cpu::check_tensor(args.d_out, "rms_norm_backward d_out", DType::F32, {rows, width});
  cpu::check_tensor(args.d_x, "rms_norm_backward d_x", DType::F32, {rows, width});
  KTO_ASSERT(args.store == GradStore::Overwrite || args.d_x.data != args.d_out.data,
             "rms_norm_backward: an accumulated d_x must not alias d_out");
  const float* x = args.x.f32();
  const float* w = args.weight.f32();
  const float* d_out = args.d_out.f32();
  float* d_x = args.d_x.f32();
  const bool accumulate = args.store == GradStore::Accumulate;
#pragma omp parallel for schedule(static) if (rows * width >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    const float* gr = d_out + r * width;
    double sum_sq = 0.0, sum_gx = 0.0;
    for (int64_t i = 0; i < width; ++i) {
      sum_sq += static_cast<double>(xr[i]) * xr[i];
      sum_gx += static_cast<double>(gr[i]) * w[i] * xr[i];
    }
    const double inv = 1.0 / std::sqrt(sum_sq / static_cast<double>(width) + args.eps);
    const float a = static_cast<float>(inv);
    const float b = static_cast<float>(inv * inv * inv * sum_gx / static_cast<double>(width));
    float* dr = d_x + r * width;
    for (int64_t i = 0; i < width; ++i) {
      const float value = a * gr[i] * w[i] - b * xr[i];
      dr[i] = accumulate ? dr[i] + value : value;
    }
  }
}

}  // namespace kto
