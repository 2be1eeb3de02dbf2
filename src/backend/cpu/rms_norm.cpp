// RMSNorm forward and input-gradient backward in fp32; mirrors HF LlamaRMSNorm.forward
// (x * rsqrt(mean(x^2) + eps) * w) and its autograd, also used per head for Qwen3's
// q_norm / k_norm. The weight gradient (full fine-tuning only) is a separate op so that it can
// run before an in-place input backward.
#include <cmath>
#include <vector>

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

// One thread per block of columns, each summing over all rows (deterministic, no reduction):
// the per-row inverse RMS is computed once up front, in double as in the forward.
void rms_norm_weight_backward_cpu(const RmsNormWeightBackwardArgs& args) {
  const int64_t rows = args.x.shape[0];
  const int64_t width = args.x.shape[1];
  cpu::check_tensor(args.x, "rms_norm_weight_backward x", DType::F32, {rows, width});
  cpu::check_tensor(args.d_out, "rms_norm_weight_backward d_out", DType::F32, {rows, width});
  cpu::check_tensor(args.d_weight, "rms_norm_weight_backward d_weight", DType::F32, {width});
  const float* x = args.x.f32();
  const float* d_out = args.d_out.f32();
  std::vector<float> inv(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    double sum_sq = 0.0;
    for (int64_t i = 0; i < width; ++i) sum_sq += static_cast<double>(x[r * width + i]) * x[r * width + i];
    inv[static_cast<size_t>(r)] = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(width) + args.eps));
  }
  float* d_weight = args.d_weight.f32();
#pragma omp parallel for schedule(static) if (rows * width >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < width; ++i) {
    double sum = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      sum += static_cast<double>(d_out[r * width + i]) * (x[r * width + i] * inv[static_cast<size_t>(r)]);
    }
    d_weight[i] += static_cast<float>(sum);
  }
}

}  // namespace kto
