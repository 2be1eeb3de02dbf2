// Rotate-half RoPE in place (HF apply_rotary_pos_emb with LlamaRotaryEmbedding's fp32 angles) and
// its backward, the inverse rotation (sin negated). Threads: one per (token, frequency d < Dh/2),
// looping over the heads so each sincos is computed once. Numerics: angle = inv_freq[d] · position
// in fp32 as HF, full-range sincosf (no fast math: positions reach 1e5 radians), bf16 in/out.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;

__global__ void rope_kernel(bf16* x, const int32_t* positions, const float* inv_freq, int64_t n_tokens, int64_t n_heads,
                            int64_t head_dim, float sign) {
  const int64_t half = head_dim / 2;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n_tokens * half; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / half, d = i % half;
    float s, c;
    sincosf(inv_freq[d] * static_cast<float>(positions[t]), &s, &c);
    s *= sign;
    bf16* xt = x + t * n_heads * head_dim;
    for (int64_t h = 0; h < n_heads; ++h) {
      bf16* xh = xt + h * head_dim;
      const float a = cuda::to_f32(xh[d]), b = cuda::to_f32(xh[d + half]);
      xh[d] = cuda::to_bf16(a * c - b * s);
      xh[d + half] = cuda::to_bf16(b * c + a * s);
    }
  }
}

void rope_launch(const RopeArgs& args, CudaContext& ctx, float sign, const char* op) {
  const int64_t n_tokens = args.x.shape[0], head_dim = args.head_dim, half = head_dim / 2;
  KTO_ASSERT(head_dim > 0 && head_dim % 2 == 0, "rope head_dim must be even, got ", head_dim);
  cuda::check_tensor(args.x, "rope x", DType::BF16, {n_tokens, args.n_heads * head_dim});
  cuda::check_tensor(args.positions, "rope positions", DType::I32, {n_tokens});
  cuda::check_tensor(args.inv_freq, "rope inv_freq", DType::F32, {half});
  if (n_tokens == 0) return;
  rope_kernel<<<cuda::grid_for(n_tokens * half, 256), 256, 0, cuda::stream_of(ctx)>>>(
      args.x.as<bf16>(), args.positions.as<int32_t>(), args.inv_freq.as<float>(), n_tokens, args.n_heads, head_dim, sign);
  KTO_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void rope_forward_cuda(const RopeArgs& args, CudaContext& ctx) { rope_launch(args, ctx, 1.0f, "rope_forward_cuda"); }

void rope_backward_cuda(const RopeArgs& args, CudaContext& ctx) { rope_launch(args, ctx, -1.0f, "rope_backward_cuda"); }

}  // namespace kto
