// Gated MLP activation silu(gate) * up and its backward (HF LlamaMLP, torch silu_backward).
// Threads: grid-stride over vectors of 8 elements (one 16-byte access per operand) when every base
// is 16-byte aligned, then a scalar tail; otherwise one element at a time. Numerics: bf16 in/out,
// fp32 math with expf, rounded once per output.
// Every input of index i is read before any output of index i, so the documented aliases are safe.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;
using cuda::Bf16Vec;
constexpr int kThreads = 256;

template <int kVec>
__global__ void __launch_bounds__(kThreads) swiglu_forward_kernel(const bf16* gate, const bf16* up, bf16* out, int64_t n) {
  cuda::grid_stride_vectors<kVec>(n, [&](auto width, int64_t i) {
    constexpr int kN = decltype(width)::value;
    const Bf16Vec<kN> g = cuda::load_vec<kN>(gate + i), u = cuda::load_vec<kN>(up + i);
    float o[kN];
#pragma unroll
    for (int j = 0; j < kN; ++j) o[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    cuda::store_vec(out + i, cuda::pack_vec(o));
  });
}

template <int kVec>
__global__ void __launch_bounds__(kThreads) swiglu_backward_kernel(const bf16* gate, const bf16* up, const bf16* d_out,
                                                                   bf16* d_gate, bf16* d_up, int64_t n) {
  cuda::grid_stride_vectors<kVec>(n, [&](auto width, int64_t i) {
    constexpr int kN = decltype(width)::value;
    const Bf16Vec<kN> gv = cuda::load_vec<kN>(gate + i), uv = cuda::load_vec<kN>(up + i), dv = cuda::load_vec<kN>(d_out + i);
    float dg[kN], du[kN];
#pragma unroll
    for (int j = 0; j < kN; ++j) {
      const float g = gv[j], u = uv[j], d = dv[j];
      const float s = 1.0f / (1.0f + expf(-g));
      dg[j] = d * u * s * (1.0f + g * (1.0f - s));
      du[j] = d * g * s;
    }
    cuda::store_vec(d_gate + i, cuda::pack_vec(dg));
    cuda::store_vec(d_up + i, cuda::pack_vec(du));
  });
}

// Blocks for n elements in vectors of kVec (a grid-stride loop covers the rest).
unsigned blocks_for(int64_t n, int vec) { return cuda::grid_for((n + vec - 1) / vec, kThreads); }

}  // namespace

void swiglu_forward_cuda(const SwigluArgs& args, CudaContext& ctx) {
  const int64_t rows = args.gate.shape[0], width = args.gate.shape[1];
  cuda::check_tensor(args.gate, "swiglu gate", DType::BF16, {rows, width});
  cuda::check_tensor(args.up, "swiglu up", DType::BF16, {rows, width});
  cuda::check_tensor(args.out, "swiglu out", DType::BF16, {rows, width});
  const int64_t n = rows * width;
  if (n == 0) return;
  const bf16 *gate = args.gate.as<bf16>(), *up = args.up.as<bf16>();
  bf16* out = args.out.as<bf16>();
  if (cuda::aligned16(gate, up, out)) {
    swiglu_forward_kernel<8><<<blocks_for(n, 8), kThreads, 0, cuda::stream_of(ctx)>>>(gate, up, out, n);
  } else {
    swiglu_forward_kernel<1><<<blocks_for(n, 1), kThreads, 0, cuda::stream_of(ctx)>>>(gate, up, out, n);
  }
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
  const bf16 *gate = args.gate.as<bf16>(), *up = args.up.as<bf16>(), *d_out = args.d_out.as<bf16>();
  bf16 *d_gate = args.d_gate.as<bf16>(), *d_up = args.d_up.as<bf16>();
  if (cuda::aligned16(gate, up, d_out, d_gate, d_up)) {
    swiglu_backward_kernel<8><<<blocks_for(n, 8), kThreads, 0, cuda::stream_of(ctx)>>>(gate, up, d_out, d_gate, d_up, n);
  } else {
    swiglu_backward_kernel<1><<<blocks_for(n, 1), kThreads, 0, cuda::stream_of(ctx)>>>(gate, up, d_out, d_gate, d_up, n);
  }
  KTO_CUDA_CHECK_LAUNCH("swiglu_backward_cuda");
}

}  // namespace kto
