// AdamW step over one flat fp32 buffer, mirroring train/adamw.cpp (torch.optim.AdamW single-tensor
// path) operation by operation: the scalars are computed on the host in double exactly as there,
// and the kernel uses round-to-nearest intrinsics (no FMA contraction), so results equal the CPU's
// bit for bit. Threads: one per element, grid-stride. Optionally scales the gradient by the clip
// coefficient from grad_norm_cuda and refreshes the bf16 working copy of the weights.
#include <cmath>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

struct AdamScalars {
  float step_size, bias2_sqrt, decay, b1, b2, eps;
};

__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, cuda::bf16* shadow,
                             const float* grad_scale, int64_t n, AdamScalars s) {
  const float scale = grad_scale ? *grad_scale : 1.0f;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float p = __fmul_rn(param[i], s.decay);
    const float g = grad_scale ? __fmul_rn(grad[i], scale) : grad[i];
    const float m = __fadd_rn(exp_avg[i], __fmul_rn(__fsub_rn(g, exp_avg[i]), __fsub_rn(1.0f, s.b1)));
    const float v = __fadd_rn(__fmul_rn(exp_avg_sq[i], s.b2), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, s.b2), g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias2_sqrt), s.eps);
    const float updated = __fsub_rn(p, __fmul_rn(s.step_size, __fdiv_rn(m, denom)));
    param[i] = updated;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if (shadow) shadow[i] = cuda::to_bf16(updated);
  }
}

}  // namespace

void adamw_step_cuda(const AdamWCudaArgs& args, CudaContext& ctx) {
  const int64_t n = args.param.numel();
  cuda::check_tensor(args.param, "adamw param", DType::F32, {n});
  cuda::check_tensor(args.grad, "adamw grad", DType::F32, {n});
  cuda::check_tensor(args.exp_avg, "adamw exp_avg", DType::F32, {n});
  cuda::check_tensor(args.exp_avg_sq, "adamw exp_avg_sq", DType::F32, {n});
  if (cuda::present(args.param_bf16)) cuda::check_tensor(args.param_bf16, "adamw param_bf16", DType::BF16, {n});
  if (cuda::present(args.grad_scale)) cuda::check_tensor(args.grad_scale, "adamw grad_scale", DType::F32, {1});
  KTO_ASSERT(args.step >= 1, "adamw step must be >= 1");
  if (n == 0) return;
  const double bias1 = 1.0 - std::pow(args.beta1, static_cast<double>(args.step));
  const double bias2 = 1.0 - std::pow(args.beta2, static_cast<double>(args.step));
  const AdamScalars s{static_cast<float>(args.lr / bias1), static_cast<float>(std::sqrt(bias2)),
                      static_cast<float>(1.0 - args.lr * args.weight_decay), static_cast<float>(args.beta1),
                      static_cast<float>(args.beta2), static_cast<float>(args.eps)};
  adamw_kernel<<<cuda::grid_for(n, 256, 4096), 256, 0, cuda::stream_of(ctx)>>>(
      args.param.as<float>(), args.grad.as<float>(), args.exp_avg.as<float>(), args.exp_avg_sq.as<float>(),
      args.param_bf16.as<cuda::bf16>(), args.grad_scale.as<float>(), n, s);
  KTO_CUDA_CHECK_LAUNCH("adamw_step_cuda");
}

}  // namespace kto
