// Element-wise add for residual connections (HF `hidden_states = residual + hidden_states`).
// Threads: one per element, grid-stride; fp32 sum rounded once to bf16; out may alias a or b.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;

__global__ void add_kernel(const bf16* a, const bf16* b, bf16* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = cuda::to_bf16(cuda::to_f32(a[i]) + cuda::to_f32(b[i]));
  }
}

}  // namespace

void add_forward_cuda(const AddArgs& args, CudaContext& ctx) {
  KTO_ASSERT(args.a.shape == args.b.shape && args.a.shape == args.out.shape, "add shapes differ: ", args.a.shape.str(),
             " ", args.b.shape.str(), " ", args.out.shape.str());
  for (const Tensor* t : {&args.a, &args.b, &args.out}) {
    KTO_ASSERT(t->device == Device::Cuda && t->dtype == DType::BF16 && t->data, "add: operands must be bf16 device tensors");
  }
  const int64_t n = args.a.numel();
  if (n == 0) return;
  add_kernel<<<cuda::grid_for(n, 256), 256, 0, cuda::stream_of(ctx)>>>(args.a.as<bf16>(), args.b.as<bf16>(),
                                                                       args.out.as<bf16>(), n);
  KTO_CUDA_CHECK_LAUNCH("add_forward_cuda");
}

}  // namespace kto
