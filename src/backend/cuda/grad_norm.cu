// Global gradient L2 norm and clip coefficient (torch.nn.utils.clip_grad_norm_, error_if_nonfinite
// off): Σ g² in double over every tensor (one grid-stride launch per tensor; blocks reduce in
// double and add into one accumulator with atomicAdd, so the last bits may vary run to run), then
// one thread writes norm and min(1, max_norm / (norm + 1e-6)) on the device: no host round trip.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

__global__ void sum_squares_kernel(const float* g, int64_t n, double* acc) {
  __shared__ double scratch[32];
  double sum = 0.0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const double v = g[i];
    sum += v * v;
  }
  sum = cuda::block_sum_f64(sum, scratch);
  if (threadIdx.x == 0) atomicAdd(acc, sum);
}

__global__ void finish_norm_kernel(const double* acc, float* norm, float* clip_scale, float max_norm) {
  const double total = sqrt(*acc);
  *norm = static_cast<float>(total);
  if (clip_scale) *clip_scale = static_cast<float>(fmin(1.0, static_cast<double>(max_norm) / (total + 1e-6)));
}

}  // namespace

int64_t grad_norm_workspace_bytes_cuda() { return 256; }

void grad_norm_cuda(const GradNormArgs& args, const Tensor& workspace, CudaContext& ctx) {
  const char* op = "grad_norm_cuda";
  cuda::check_tensor(args.norm, "grad_norm norm", DType::F32, {1});
  if (cuda::present(args.clip_scale)) cuda::check_tensor(args.clip_scale, "grad_norm clip_scale", DType::F32, {1});
  cuda::check_workspace(workspace, op, grad_norm_workspace_bytes_cuda());
  auto* acc = static_cast<double*>(workspace.data);
  KTO_CUDA_CHECK(cudaMemsetAsync(acc, 0, sizeof(double), cuda::stream_of(ctx)), op);
  for (const Tensor& g : args.grads) {
    KTO_ASSERT(g.device == Device::Cuda && g.dtype == DType::F32 && (g.data || g.numel() == 0),
               "grad_norm: gradients must be f32 device tensors");
    if (g.numel() == 0) continue;
    sum_squares_kernel<<<cuda::grid_for(g.numel(), 256, 1024), 256, 0, cuda::stream_of(ctx)>>>(g.as<float>(), g.numel(),
                                                                                               acc);
    KTO_CUDA_CHECK_LAUNCH(op);
  }
  finish_norm_kernel<<<1, 1, 0, cuda::stream_of(ctx)>>>(acc, args.norm.as<float>(), args.clip_scale.as<float>(),
                                                        args.max_norm);
  KTO_CUDA_CHECK_LAUNCH(op);
}

}  // namespace kto
