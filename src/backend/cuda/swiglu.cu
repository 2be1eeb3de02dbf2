// Gated MLP activation silu(gate) * up and its backward (HF LlamaMLP, torch silu_backward).
// Threads: one per element, grid-stride. Numerics: bf16 in/out, fp32 math with expf.
// Every input of index i is read before any output of index i, so the documented aliases are safe.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;

__global__ void swiglu_forward_kernel(const bf16* gate, const bf16* up, bf16* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = cuda::to_f32(gate[i]);
    out[i] = cuda::to_bf16(g / (1.0f + expf(-g)) * cuda::to_f32(up[i]));
  }
}

__global__ void swiglu_backward_kernel(const bf16* gate, const bf16* up, const bf16* d_out, bf16* d_gate, bf16* d_up,
                                       int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = cuda::to_f32(gate[i]), u = cuda::to_f32(up[i]), d = cuda::to_f32(d_out[i]);
    const float s = 1.0f / (1.0f + expf(-g));
    d_gate[i] = cuda::to_bf16(d * u * s * (1.0f + g * (1.0f - s)));
    d_up[i] = cuda::to_bf16(d * g * s);
  }
}

}  // namespace

void swiglu_forward_cuda(const SwigluArgs& args, CudaContext& ctx) {
  const int64_t rows = args.gate.shape[0], width = args.gate.shape[1];
  cuda::check_tensor(args.gate, "swiglu gate", DType::BF16, {rows, width});
  cuda::check_tensor(args.up, "swiglu up", DType::BF16, {rows, width});
  cuda::check_tensor(args.out, "swiglu out", DType::BF16, {rows, width});
  const int64_t n = rows * width;
  if (n == 0) return;
  swiglu_forward_kernel<<<cuda::grid_for(n, 256), 256, 0, cuda::stream_of(ctx)>>>(args.gate.as<bf16>(), args.up.as<bf16>(),
                                                                                  args.out.as<bf16>(), n);
  KTO_CUDA_CHECK_LAUNCH("swiglu_forward_cuda");
}

void swiglu_backward_cuda(const SwigluBackwardArgs& args, CudaContext& ctx) {
  const int64_t rows = args.gate.shape[0], width = args.gate.shape[1];
  cuda::check_tensor(args.gate, "swiglu_backward gate", DType::BF16, {rows, width});
  cuda::check_tensor(args.up, "swiglu_backward up", DType::BF16, {rows, width});
  cuda::check_tensor(args.d_out, "swiglu_backward d_out", DType::BF16, {rows, width});
  cuda::check_tensor(args.d_gate, "swiglu_backward d_gate", DType::BF16, {rows, width});
  cuda::check_tensor(args.d_up, "swiglu_backward d_up", DType::BF16, {rows, width});
  const int64_t n = rows * width;
  if (n == 0) return;
  swiglu_backward_kernel<<<cuda::grid_for(n, 256), 256, 0, cuda::stream_of(ctx)>>>(
      args.gate.as<bf16>(), args.up.as<bf16>(), args.d_out.as<bf16>(), args.d_gate.as<bf16>(), args.d_up.as<bf16>(), n);
  KTO_CUDA_CHECK_LAUNCH("swiglu_backward_cuda");
}

}  // namespace kto
