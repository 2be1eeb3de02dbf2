// Element-wise add for residual connections (HF `hidden_states = residual + hidden_states`).
// Threads: grid-stride over vectors of 8 elements (16-byte accesses) when every base is 16-byte
// aligned, then a scalar tail; otherwise one element at a time. fp32 sum rounded once to bf16;
// out may alias a or b (each element is read before it is written).
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;
using cuda::Bf16Vec;
constexpr int kThreads = 256;

template <int kVec>
__global__ void __launch_bounds__(kThreads) add_kernel(const bf16* a, const bf16* b, bf16* out, int64_t n) {
  cuda::grid_stride_vectors<kVec>(n, [&](auto width, int64_t i) {
    constexpr int kN = decltype(width)::value;
    const Bf16Vec<kN> av = cuda::load_vec<kN>(a + i), bv = cuda::load_vec<kN>(b + i);
    float o[kN];
#pragma unroll
    for (int j = 0; j < kN; ++j) o[j] = av[j] + bv[j];
    cuda::store_vec(out + i, cuda::pack_vec(o));
  });
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
  const bf16 *a = args.a.as<bf16>(), *b = args.b.as<bf16>();
  bf16* out = args.out.as<bf16>();
  if (cuda::aligned16(a, b, out)) {
    add_kernel<8><<<cuda::grid_for((n + 7) / 8, kThreads), kThreads, 0, cuda::stream_of(ctx)>>>(a, b, out, n);
  } else {
    add_kernel<1><<<cuda::grid_for(n, kThreads), kThreads, 0, cuda::stream_of(ctx)>>>(a, b, out, n);
  }
  KTO_CUDA_CHECK_LAUNCH("add_forward_cuda");
}

}  // namespace kto
