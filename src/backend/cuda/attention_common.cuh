// Shared by the attention kernels: the parameter block, the varlen tile scheduler, the visibility
// rule, the dispatch between the two kernel families and, for the fp32 family, its shared-memory
// tile loads and 4x4 register micro-tile of scores.
//   Tensor-core family (attention_forward_mma.cu, attention_backward_mma.cu, attention_mma.cuh):
//     head_dim 64 and 128 with 16-byte aligned tensors, the path real models take.
//   fp32 family (attention.cu, attention_backward.cu): every other head_dim <= 128. Thread mapping:
//     256 threads as a 16x16 grid, ty = tid / 16, tx = tid % 16. In a 64x64 score tile a thread owns
//     rows ty + 16i and columns tx + 16j (i, j < 4); in a 64 x Dh output tile rows ty + 16i and
//     columns tx + 16k (k < Dh/16). The 16 lanes of a row are consecutive lanes of one warp, so row
//     reductions are 16-lane shuffles. Tiles live in shared memory as fp32 rows of Dh + 1 floats
//     (the +1 keeps column reads free of bank conflicts).
#pragma once

#include "backend/cuda/context_impl.h"
#include "backend/cuda/device_math.cuh"

namespace kto::cuda {

constexpr int kAttnTile = 64;      // query rows and key rows per tile
constexpr int kAttnThreads = 256;  // 16 x 16
constexpr int kAttnScoreLd = kAttnTile + 1;

struct AttnParams {
  const bf16* q = nullptr;  // [Tq, H*Dh]
  const bf16* k = nullptr;  // [Tk, Hkv*Dh]
  const bf16* v = nullptr;  // [Tk, Hkv*Dh]
  const int32_t* q_starts = nullptr;
  const int32_t* k_starts = nullptr;
  bf16* out = nullptr;          // [Tq, H*Dh], forward output (null in the backward's pre-pass)
  const bf16* d_out = nullptr;  // [Tq, H*Dh], backward input
  float* lse = nullptr;         // [Tq, H] log-sum-exp of the scaled scores, optional
  float* delta = nullptr;       // [Tq, H] Σ_d d_out·out, optional (needs d_out)
  bf16* d_q = nullptr;
  bf16* d_k = nullptr;
  bf16* d_v = nullptr;
  int n_seqs = 0, n_heads = 0, n_heads_kv = 0, head_dim = 0, window = 0;
  int64_t q_stride = 0, kv_stride = 0;  // H*Dh, Hkv*Dh
  float scale = 1.0f;
};

// Block `block` of a grid laid over the tiles of every sequence in order; false for the spare
// blocks of the upper-bound grid (ceil(T / 64) + S blocks cover every sequence's tiles).
__device__ __forceinline__ bool attn_find_tile(const int32_t* starts, int n_seqs, int block, int& seq, int& tile) {
  int remaining = block;
  for (int s = 0; s < n_seqs; ++s) {
    const int n = (starts[s + 1] - starts[s] + kAttnTile - 1) / kAttnTile;
    if (remaining < n) {
      seq = s;
      tile = remaining;
      return true;
    }
    remaining -= n;
  }
  return false;
}

// Query at key index qi sees key j when qi - window < j <= qi (window 0 = unlimited).
__device__ __forceinline__ bool attn_visible(int qi, int j, int window) {
  return j <= qi && (window == 0 || j > qi - window);
}

// dst[r][d] = src[r * stride + d] as fp32 for r < n_rows and d < head_dim, zero elsewhere.
template <int kDh>
__device__ __forceinline__ void attn_load_tile(float* dst, const bf16* src, int64_t stride, int n_rows, int head_dim) {
  for (int idx = threadIdx.x; idx < kAttnTile * kDh; idx += kAttnThreads) {
    const int r = idx / kDh, d = idx % kDh;
    dst[r * (kDh + 1) + d] = r < n_rows && d < head_dim ? to_f32(src[r * stride + d]) : 0.0f;
  }
}

// acc[i][j] = Σ_d a[ra + 16i][d] · b[rb + 16j][d] over d < head_dim (both tiles [64][kDh + 1]).
template <int kDh>
__device__ __forceinline__ void attn_tile_dot(const float* a, int ra, const float* b, int rb, int head_dim,
                                              float (&acc)[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
#pragma unroll 4
  for (int d = 0; d < head_dim; ++d) {
    float av[4], bv[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      av[i] = a[(ra + 16 * i) * (kDh + 1) + d];
      bv[i] = b[(rb + 16 * i) * (kDh + 1) + d];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
    }
  }
}

// The forward's launcher (attention.cu, either family); the backward runs it first with lse and
// delta set and out null.
void attention_forward_launch(const AttnParams& p, int64_t n_query_tokens, CudaContext& ctx, const char* op);

// The tensor-core kernels take head_dim 64 or 128 and 16-byte aligned tensors (cp.async copies
// 8 bf16 at a time; rows are then aligned too since the strides are multiples of 64 elements).
inline bool attention_mma_supported(const AttnParams& p) {
  auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  return (p.head_dim == 64 || p.head_dim == 128) && aligned(p.q) && aligned(p.k) && aligned(p.v) && aligned(p.out) &&
         aligned(p.d_out) && aligned(p.d_q) && aligned(p.d_k) && aligned(p.d_v);
}
void attention_forward_mma_launch(const AttnParams& p, int64_t n_query_tokens, CudaContext& ctx, const char* op);
void attention_backward_mma_launch(const AttnParams& p, int64_t tq, int64_t tk, CudaContext& ctx, const char* op);

}  // namespace kto::cuda
