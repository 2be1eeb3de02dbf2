// Tensor-core forward of the varlen causal GQA attention for head_dim 64 and 128 (flash-attention
// 2's algorithm, written from its paper): a block owns 64 queries of one head, streams the 64-key
// tiles its queries can see through shared memory (cp.async, double-buffered) and keeps the scores,
// the online-softmax statistics and the output accumulator in registers. Grid: x over query heads
// (a block reads kv head h / (H / Hkv)), y over the 64-query tiles of all sequences, last tiles first
// (they see the most keys). Threads: 4 warps, warp w owns query rows 16w..16w+15; fragment layout
// in attention_mma.cuh. Numerics: bf16 q, k, v; scores, max, sum and output accumulate in fp32;
// probabilities are rounded to bf16 for the P·V product and the row sum adds the rounded values (so
// the weights the output uses sum to one); out bf16, lse and delta fp32.
#include "backend/cuda/attention_mma.cuh"

namespace kto::cuda {
namespace {

constexpr int kTileQ = 64, kTileK = 64;

// Per-thread state of its two query rows (g and g + 8 of the warp's 16).
template <int kDh>
struct FwdAccum {
  float o[kDh / 8][4];  // output accumulator, C fragments over the head dimension
  float m[2];           // running max of the raw scores
  float l[2];           // this thread's part of the running sum of exp(scale·(s − m))
};

// S = Q·Kᵀ for the warp's 16 rows against the 64 keys of s_k.
template <int kDh>
__device__ __forceinline__ void scores(const uint32_t (&qf)[kDh / 16][4], const bf16* s_k, float (&s)[kTileK / 8][4]) {
#pragma unroll
  for (int nt = 0; nt < kTileK / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
  for (int ks = 0; ks < kDh / 16; ++ks) {
#pragma unroll
    for (int np = 0; np < kTileK / 16; ++np) {
      uint32_t b[4];
      ldmatrix_x4(b, frag_b_addr<kDh>(s_k, 16 * np, 16 * ks));
      mma_bf16(s[2 * np], qf[ks], b[0], b[1]);
      mma_bf16(s[2 * np + 1], qf[ks], b[2], b[3]);
    }
  }
}

// Online softmax over one key tile: rescales the state to the new row max and turns s into the
// bf16-rounded probabilities (masked pairs, given as -inf, become 0).
template <int kDh>
__device__ __forceinline__ void softmax_update(FwdAccum<kDh>& acc, float (&s)[kTileK / 8][4], float scale_log2) {
#pragma unroll
  for (int row = 0; row < 2; ++row) {
    float mx = acc.m[row];
#pragma unroll
    for (int nt = 0; nt < kTileK / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * row], s[nt][2 * row + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    // A row that has seen no visible key yet keeps m = -inf: use 0 as the reference (p = 0 anyway).
    const float ref = mx == -INFINITY ? 0.0f : mx * scale_log2;
    const float alpha = acc.m[row] == -INFINITY ? 0.0f : fast_exp2(acc.m[row] * scale_log2 - ref);
    acc.m[row] = mx;
    float sum = 0.0f;
#pragma unroll
    for (int nt = 0; nt < kTileK / 8; ++nt) {
#pragma unroll
      for (int e = 2 * row; e < 2 * row + 2; ++e) {
        s[nt][e] = round_bf16(fast_exp2(fmaf(s[nt][e], scale_log2, -ref)));
        sum += s[nt][e];
      }
    }
    acc.l[row] = acc.l[row] * alpha + sum;
#pragma unroll
    for (int dt = 0; dt < kDh / 8; ++dt) {
      acc.o[dt][2 * row] *= alpha;
      acc.o[dt][2 * row + 1] *= alpha;
    }
  }
}

// O += P·V with P (16 x 64, from the score registers) and V of s_v.
template <int kDh>
__device__ __forceinline__ void accumulate_pv(FwdAccum<kDh>& acc, const float (&s)[kTileK / 8][4], const bf16* s_v) {
#pragma unroll
  for (int kk = 0; kk < kTileK / 16; ++kk) {
    const uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                           pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                           pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int dp = 0; dp < kDh / 16; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, frag_a_addr<kDh>(s_v, 16 * kk, 16 * dp));
      mma_bf16(acc.o[2 * dp], a, b[0], b[1]);
      mma_bf16(acc.o[2 * dp + 1], a, b[2], b[3]);
    }
  }
}

// out = o / l, lse = scale·m + log l, delta = Σ_d d_out·out (fp32 out) for the thread's rows. The
// d_out loads of a row are issued together, before any use (one memory latency, not kDh / 8).
template <int kDh>
__device__ __forceinline__ void finish_rows(const AttnParams& p, FwdAccum<kDh>& acc, int q_row0, int n_rows, int h) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4, warp = threadIdx.x / 32;
#pragma unroll
  for (int row = 0; row < 2; ++row) {
    float l = acc.l[row];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int r = 16 * warp + g + 8 * row;
    const bool valid = r < n_rows;
    const float inv_l = valid ? 1.0f / l : 0.0f;
    const int64_t at = int64_t{q_row0 + r} * p.q_stride + int64_t{h} * kDh + 2 * t;
    if (p.out && valid) {
#pragma unroll
      for (int dt = 0; dt < kDh / 8; ++dt) {
        *reinterpret_cast<__nv_bfloat162*>(p.out + at + 8 * dt) =
            __floats2bfloat162_rn(acc.o[dt][2 * row] * inv_l, acc.o[dt][2 * row + 1] * inv_l);
      }
    }
    float delta = 0.0f;
    if (p.delta && valid) {
      __nv_bfloat162 d_out[kDh / 8];
#pragma unroll
      for (int dt = 0; dt < kDh / 8; ++dt) d_out[dt] = *reinterpret_cast<const __nv_bfloat162*>(p.d_out + at + 8 * dt);
#pragma unroll
      for (int dt = 0; dt < kDh / 8; ++dt) {
        const float2 d = __bfloat1622float2(d_out[dt]);
        delta += d.x * acc.o[dt][2 * row] + d.y * acc.o[dt][2 * row + 1];
      }
      delta *= inv_l;
    }
    delta += __shfl_xor_sync(0xffffffffu, delta, 1);
    delta += __shfl_xor_sync(0xffffffffu, delta, 2);
    if (!valid || t != 0) continue;
    const int64_t stat = int64_t{q_row0 + r} * p.n_heads + h;
    if (p.lse) p.lse[stat] = acc.m[row] * p.scale + logf(l);
    if (p.delta) p.delta[stat] = delta;
  }
}

template <int kDh>
__global__ void __launch_bounds__(kMmaThreads) attention_forward_mma_kernel(const AttnParams p) {
  int seq = 0, tile = 0;
  if (!attn_find_tile(p.q_starts, p.n_seqs, static_cast<int>(gridDim.y - 1 - blockIdx.y), seq, tile)) return;
  constexpr int kTileElems = kTileK * kMmaLd<kDh>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* smem = reinterpret_cast<bf16*>(smem_raw);  // [stage 2][K, V][64][kMmaLd]; Q first uses stage 1
  const int h = blockIdx.x, kv_head = h / (p.n_heads / p.n_heads_kv), warp = threadIdx.x / 32;
  const int q_begin = p.q_starts[seq], q_len = p.q_starts[seq + 1] - q_begin;
  const int k_begin = p.k_starts[seq], offset = p.k_starts[seq + 1] - k_begin - q_len;
  const int i0 = tile * kTileQ, n_rows = min(kTileQ, q_len - i0);
  const int first_qi = offset + i0, last_qi = first_qi + n_rows - 1;
  const int key_lo = p.window > 0 ? max(0, first_qi - p.window + 1) : 0, key_hi = last_qi + 1;
  const int n_tiles = (key_hi - key_lo + kTileK - 1) / kTileK;
  const bf16* k_head = p.k + int64_t{k_begin} * p.kv_stride + int64_t{kv_head} * kDh;
  const bf16* v_head = p.v + int64_t{k_begin} * p.kv_stride + int64_t{kv_head} * kDh;
  auto load_kv = [&](int t_idx) {
    bf16* stage = smem + (t_idx % 2) * 2 * kTileElems;
    const int j0 = key_lo + t_idx * kTileK, n_keys = min(kTileK, key_hi - j0);
    load_tile_async<kTileK, kDh>(stage, k_head + int64_t{j0} * p.kv_stride, p.kv_stride, n_keys);
    load_tile_async<kTileK, kDh>(stage + kTileElems, v_head + int64_t{j0} * p.kv_stride, p.kv_stride, n_keys);
  };
  bf16* s_q = smem + 2 * kTileElems;
  load_tile_async<kTileQ, kDh>(s_q, p.q + int64_t{q_begin + i0} * p.q_stride + int64_t{h} * kDh, p.q_stride, n_rows);
  load_kv(0);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[kDh / 16][4];
#pragma unroll
  for (int ks = 0; ks < kDh / 16; ++ks) ldmatrix_x4(qf[ks], frag_a_addr<kDh>(s_q, 16 * warp, 16 * ks));
  __syncthreads();  // Q is in registers before tile 1 lands on it

  FwdAccum<kDh> acc;
#pragma unroll
  for (int dt = 0; dt < kDh / 8; ++dt) acc.o[dt][0] = acc.o[dt][1] = acc.o[dt][2] = acc.o[dt][3] = 0.0f;
  acc.m[0] = acc.m[1] = -INFINITY;
  acc.l[0] = acc.l[1] = 0.0f;
  const float scale_log2 = p.scale * kLog2e;
  const int lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  // Pipeline: tile t + 1 is copied while tile t is computed; the barrier at the end of an iteration
  // makes t + 1 visible and frees t's stage for t + 2.
  for (int t_idx = 0; t_idx < n_tiles; ++t_idx) {
    if (t_idx + 1 < n_tiles) {
      load_kv(t_idx + 1);
      cp_async_commit();
    }
    const bf16* s_k = smem + (t_idx % 2) * 2 * kTileElems;
    const int j0 = key_lo + t_idx * kTileK;
    float s[kTileK / 8][4];
    scores<kDh>(qf, s_k, s);
    if (!attn_tile_unmasked(first_qi, last_qi, j0, j0 + kTileK - 1, p.window)) {
#pragma unroll
      for (int nt = 0; nt < kTileK / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = first_qi + 16 * warp + g + 8 * (e / 2), j = j0 + 8 * nt + 2 * t4 + e % 2;
          if (!attn_visible(qi, j, p.window)) s[nt][e] = -INFINITY;
        }
      }
    }
    softmax_update<kDh>(acc, s, scale_log2);
    accumulate_pv<kDh>(acc, s, s_k + kTileElems);
    cp_async_wait<0>();
    __syncthreads();
  }
  finish_rows<kDh>(p, acc, q_begin + i0, n_rows, h);
}

template <int kDh>
void launch(const AttnParams& p, int64_t n_query_tokens, CudaContext& ctx, const char* op) {
  const int64_t smem = int64_t{sizeof(bf16)} * 4 * kTileK * kMmaLd<kDh>;
  require_shared_memory(ctx, reinterpret_cast<const void*>(&attention_forward_mma_kernel<kDh>), smem, op);
  const dim3 grid(static_cast<unsigned>(p.n_heads),
                  static_cast<unsigned>((n_query_tokens + kTileQ - 1) / kTileQ + p.n_seqs));
  attention_forward_mma_kernel<kDh><<<grid, kMmaThreads, static_cast<size_t>(smem), stream_of(ctx)>>>(p);
  KTO_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void attention_forward_mma_launch(const AttnParams& p, int64_t n_query_tokens, CudaContext& ctx, const char* op) {
  if (p.head_dim == 64) return launch<64>(p, n_query_tokens, ctx, op);
  KTO_ASSERT(p.head_dim == 128, "attention_forward_mma_launch: head_dim ", p.head_dim);
  launch<128>(p, n_query_tokens, ctx, op);
}

}  // namespace kto::cuda
