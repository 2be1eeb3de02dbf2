// Rotate-half RoPE in place (HF apply_rotary_pos_emb with LlamaRotaryEmbedding's fp32 angles) and
// its backward, the inverse rotation (sin negated). Threads: a 256-thread block rotates
// `tokens_per_block` tokens: it first computes each (token, d < Dh/2) sincos once into shared
// memory, then its threads stride over the tokens' (head, vector) pairs, a vector being kVec
// consecutive d of the first half and the matching d + Dh/2 (16-byte accesses when Dh/2 % 8 == 0
// and x is 16-byte aligned, else single elements). Numerics: angle = inv_freq[d] · position in fp32
// as HF, full-range sincosf (no fast math: positions reach 1e5 radians), bf16 in/out.
#include <algorithm>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;
using cuda::Bf16Vec;
constexpr int kThreads = 256;

struct RopeLayout {
  int64_t n_tokens;
  int n_heads, head_dim, tokens_per_block;
};

template <int kVec>
__global__ void __launch_bounds__(kThreads) rope_kernel(bf16* x, const int32_t* positions, const float* inv_freq,
                                                        RopeLayout l, float sign) {
  extern __shared__ float angles[];  // cos then sin, each [tokens_per_block, Dh/2]
  const int half = l.head_dim / 2;
  const int64_t t0 = blockIdx.x * int64_t{l.tokens_per_block};
  const int n_tok = static_cast<int>(min(int64_t{l.tokens_per_block}, l.n_tokens - t0));
  float* cos_t = angles;
  float* sin_t = angles + l.tokens_per_block * half;
  for (int i = threadIdx.x; i < n_tok * half; i += kThreads) {
    float s, c;
    sincosf(inv_freq[i % half] * static_cast<float>(positions[t0 + i / half]), &s, &c);
    cos_t[i] = c, sin_t[i] = s * sign;
  }
  __syncthreads();
  const int vecs_per_head = half / kVec, per_token = l.n_heads * vecs_per_head;
  for (int i = threadIdx.x; i < n_tok * per_token; i += kThreads) {
    const int tt = i / per_token, h = i % per_token / vecs_per_head, d0 = i % vecs_per_head * kVec;
    bf16* xh = x + (t0 + tt) * l.n_heads * l.head_dim + int64_t{h} * l.head_dim + d0;
    const Bf16Vec<kVec> av = cuda::load_vec<kVec>(xh), bv = cuda::load_vec<kVec>(xh + half);
    const float *c = cos_t + tt * half + d0, *s = sin_t + tt * half + d0;
    float ao[kVec], bo[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      const float a = av[j], b = bv[j];
      ao[j] = a * c[j] - b * s[j];
      bo[j] = b * c[j] + a * s[j];
    }
    cuda::store_vec(xh, cuda::pack_vec(ao));
    cuda::store_vec(xh + half, cuda::pack_vec(bo));
  }
}

void rope_launch(const RopeArgs& args, CudaContext& ctx, float sign, const char* op) {
  const int64_t n_tokens = args.x.shape[0], head_dim = args.head_dim, half = head_dim / 2;
  KTO_ASSERT(head_dim > 0 && head_dim % 2 == 0, "rope head_dim must be even, got ", head_dim);
  cuda::check_tensor(args.x, "rope x", DType::BF16, {n_tokens, args.n_heads * head_dim});
  cuda::check_tensor(args.positions, "rope positions", DType::I32, {n_tokens});
  cuda::check_tensor(args.inv_freq, "rope inv_freq", DType::F32, {half});
  KTO_ASSERT(args.n_heads > 0 && args.n_heads * head_dim < (int64_t{1} << 31), "rope: bad head shape");
  if (n_tokens == 0) return;
  bf16* x = args.x.as<bf16>();
  const int vec = half % 8 == 0 && cuda::aligned16(x) ? 8 : 1;
  // About one (head, vector) item per thread; the sincos table stays within 16 KiB (half · tokens <= 2048).
  const int64_t per_token = args.n_heads * (half / vec);
  const int64_t tokens = std::clamp<int64_t>(kThreads / per_token, 1, std::max<int64_t>(1, 2048 / half));
  const RopeLayout l{n_tokens, static_cast<int>(args.n_heads), static_cast<int>(head_dim), static_cast<int>(tokens)};
  const int64_t blocks = (n_tokens + tokens - 1) / tokens;
  KTO_ASSERT(blocks < (int64_t{1} << 31), op, ": too many tokens for one launch");
  const size_t shared = static_cast<size_t>(2 * tokens * half) * sizeof(float);
  KTO_ASSERT(shared <= 48 * 1024, op, ": head_dim ", head_dim, " needs too much shared memory");
  const int32_t* positions = args.positions.as<int32_t>();
  const float* inv_freq = args.inv_freq.as<float>();
  if (vec == 8) {
    rope_kernel<8><<<static_cast<unsigned>(blocks), kThreads, shared, cuda::stream_of(ctx)>>>(x, positions, inv_freq, l, sign);
  } else {
    rope_kernel<1><<<static_cast<unsigned>(blocks), kThreads, shared, cuda::stream_of(ctx)>>>(x, positions, inv_freq, l, sign);
  }
  KTO_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void rope_forward_cuda(const RopeArgs& args, CudaContext& ctx) { rope_launch(args, ctx, 1.0f, "rope_forward_cuda"); }

void rope_backward_cuda(const RopeArgs& args, CudaContext& ctx) { rope_launch(args, ctx, -1.0f, "rope_backward_cuda"); }

}  // namespace kto
