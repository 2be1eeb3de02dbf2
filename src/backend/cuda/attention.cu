// Variable-length causal GQA attention with an optional sliding window, forward: the entry point,
// the dispatch (tensor-core kernel of attention_forward_mma.cu for head_dim 64 / 128, else the fp32
// kernel here) and that fp32 kernel, flash-style (online softmax over 64-key tiles, nothing [T, T]
// in memory); mirrors HF eager_attention_forward as attention_forward_cpu does. Grid: x over the
// 64-query tiles of all sequences (attn_find_tile), y over query heads; a block reads its kv head
// h / (H / Hkv). Threads: attention_common.cuh. Numerics: bf16 q/k/v/out, fp32 tiles, scores,
// running max / sum and accumulators; head_dim <= 128.
#include "backend/cuda/attention_common.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace cuda {
namespace {

// Keys [lo, hi) that some query of the tile can see (local key indices).
struct KeyRange {
  int lo, hi;
};
__device__ __forceinline__ KeyRange key_range(int first_qi, int last_qi, int window) {
  return {window > 0 ? max(0, first_qi - window + 1) : 0, last_qi + 1};
}

// Epilogue of one query row: out = acc / l, lse = m + log l, delta = Σ_d d_out · out.
template <int kDh>
__device__ __forceinline__ void finish_row(const AttnParams& p, int64_t row, bool valid, float m, float l,
                                           const float (&acc)[kDh / 16], int h) {
  const int tx = threadIdx.x % 16;
  const float inv_l = valid ? 1.0f / l : 0.0f;
  float delta = 0.0f;
#pragma unroll
  for (int k = 0; k < kDh / 16; ++k) {
    const int d = tx + 16 * k;
    if (!valid || d >= p.head_dim) continue;
    const int64_t at = row * p.q_stride + int64_t{h} * p.head_dim + d;
    const float o = acc[k] * inv_l;
    if (p.out) p.out[at] = to_bf16(o);
    if (p.delta) delta += to_f32(p.d_out[at]) * o;
  }
  if (p.delta) delta = group_sum<16>(delta);
  if (!valid || tx != 0) return;
  if (p.lse) p.lse[row * p.n_heads + h] = m + logf(l);
  if (p.delta) p.delta[row * p.n_heads + h] = delta;
}

template <int kDh>
__global__ void __launch_bounds__(kAttnThreads) attention_forward_kernel(const AttnParams p) {
  int seq = 0, tile = 0;
  if (!attn_find_tile(p.q_starts, p.n_seqs, blockIdx.x, seq, tile)) return;
  constexpr int kLd = kDh + 1, kCols = kDh / 16;
  extern __shared__ float smem[];
  float* s_q = smem;
  float* s_k = s_q + kAttnTile * kLd;
  float* s_v = s_k + kAttnTile * kLd;
  float* s_p = s_v + kAttnTile * kLd;  // [64][65] probabilities of the current key tile
  const int h = blockIdx.y, kv_head = h / (p.n_heads / p.n_heads_kv);
  const int q_begin = p.q_starts[seq], q_len = p.q_starts[seq + 1] - q_begin;
  const int k_begin = p.k_starts[seq], offset = p.k_starts[seq + 1] - k_begin - q_len;
  const int i0 = tile * kAttnTile, n_rows = min(kAttnTile, q_len - i0);
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const KeyRange keys = key_range(offset + i0, offset + i0 + n_rows - 1, p.window);
  attn_load_tile<kDh>(s_q, p.q + int64_t{q_begin + i0} * p.q_stride + int64_t{h} * p.head_dim, p.q_stride, n_rows,
                      p.head_dim);
  float m[4], l[4], acc[4][kCols];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < kCols; ++k) acc[i][k] = 0.0f;
  }
  for (int j0 = keys.lo; j0 < keys.hi; j0 += kAttnTile) {
    const int n_keys = min(kAttnTile, keys.hi - j0);
    const int64_t kv_at = int64_t{k_begin + j0} * p.kv_stride + int64_t{kv_head} * p.head_dim;
    __syncthreads();  // the previous tile's P·V is done with s_k, s_v, s_p
    attn_load_tile<kDh>(s_k, p.k + kv_at, p.kv_stride, n_keys, p.head_dim);
    attn_load_tile<kDh>(s_v, p.v + kv_at, p.kv_stride, n_keys, p.head_dim);
    __syncthreads();
    float s[4][4];
    attn_tile_dot<kDh>(s_q, ty, s_k, tx, p.head_dim, s);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ty + 16 * i, qi = offset + i0 + r;
      float row_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const bool seen = r < n_rows && attn_visible(qi, j0 + tx + 16 * j, p.window);
        s[i][j] = seen ? s[i][j] * p.scale : -INFINITY;
        row_max = fmaxf(row_max, s[i][j]);
      }
      const float m_new = fmaxf(m[i], group_max<16>(row_max));
      const float alpha = m_new == -INFINITY ? 1.0f : __expf(m[i] - m_new);
      float row_sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[i][j] = s[i][j] == -INFINITY ? 0.0f : __expf(s[i][j] - m_new);
        row_sum += s[i][j];
        s_p[r * kAttnScoreLd + tx + 16 * j] = s[i][j];
      }
      l[i] = l[i] * alpha + group_sum<16>(row_sum);
      m[i] = m_new;
#pragma unroll
      for (int k = 0; k < kCols; ++k) acc[i][k] *= alpha;
    }
    __syncthreads();
    for (int c = 0; c < n_keys; ++c) {
      float vv[kCols];
#pragma unroll
      for (int k = 0; k < kCols; ++k) vv[k] = s_v[c * kLd + tx + 16 * k];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float pc = s_p[(ty + 16 * i) * kAttnScoreLd + c];
#pragma unroll
        for (int k = 0; k < kCols; ++k) acc[i][k] += pc * vv[k];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty + 16 * i;
    finish_row<kDh>(p, int64_t{q_begin + i0 + r}, r < n_rows, m[i], l[i], acc[i], h);
  }
}

template <int kDh>
void launch_forward(const AttnParams& p, int64_t n_query_tokens, CudaContext& ctx, const char* op) {
  const int64_t smem = int64_t{sizeof(float)} * (3 * kAttnTile * (kDh + 1) + kAttnTile * kAttnScoreLd);
  require_shared_memory(ctx, reinterpret_cast<const void*>(&attention_forward_kernel<kDh>), smem, op);
  const dim3 grid(static_cast<unsigned>((n_query_tokens + kAttnTile - 1) / kAttnTile + p.n_seqs),
                  static_cast<unsigned>(p.n_heads));
  attention_forward_kernel<kDh><<<grid, kAttnThreads, static_cast<size_t>(smem), stream_of(ctx)>>>(p);
  KTO_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void attention_forward_launch(const AttnParams& p, int64_t n_query_tokens, CudaContext& ctx, const char* op) {
  if (n_query_tokens == 0) return;
  if (attention_mma_supported(p)) return attention_forward_mma_launch(p, n_query_tokens, ctx, op);
  if (p.head_dim <= 64) return launch_forward<64>(p, n_query_tokens, ctx, op);
  launch_forward<128>(p, n_query_tokens, ctx, op);
}

}  // namespace cuda

void attention_forward_cuda(const AttentionArgs& args, CudaContext& ctx) {
  const char* op = "attention_forward_cuda";
  const int64_t n_seqs = args.q_starts.shape[0] - 1, tq = args.q.shape[0], tk = args.k.shape[0];
  KTO_ASSERT(args.n_heads > 0 && args.n_heads_kv > 0 && args.n_heads % args.n_heads_kv == 0, "attention heads ",
             args.n_heads, " not a multiple of kv heads ", args.n_heads_kv);
  KTO_ASSERT(args.window >= 0 && args.head_dim > 0, "attention window must be >= 0 and head_dim > 0");
  if (args.head_dim > 128) fail(ErrorKind::Unsupported, op, ": head_dim ", args.head_dim, " > 128 is not supported");
  cuda::check_tensor(args.q, "attention q", DType::BF16, {tq, args.n_heads * args.head_dim});
  cuda::check_tensor(args.k, "attention k", DType::BF16, {tk, args.n_heads_kv * args.head_dim});
  cuda::check_tensor(args.v, "attention v", DType::BF16, {tk, args.n_heads_kv * args.head_dim});
  cuda::check_tensor(args.out, "attention out", DType::BF16, {tq, args.n_heads * args.head_dim});
  cuda::check_tensor(args.q_starts, "attention q_starts", DType::I32, {n_seqs + 1});
  cuda::check_tensor(args.k_starts, "attention k_starts", DType::I32, {n_seqs + 1});
  cuda::AttnParams p;
  p.q = args.q.as<cuda::bf16>(), p.k = args.k.as<cuda::bf16>(), p.v = args.v.as<cuda::bf16>();
  p.q_starts = args.q_starts.as<int32_t>(), p.k_starts = args.k_starts.as<int32_t>();
  p.out = args.out.as<cuda::bf16>();
  p.n_seqs = static_cast<int>(n_seqs), p.n_heads = static_cast<int>(args.n_heads);
  p.n_heads_kv = static_cast<int>(args.n_heads_kv), p.head_dim = static_cast<int>(args.head_dim);
  p.window = static_cast<int>(args.window), p.scale = args.scale;
  p.q_stride = args.n_heads * args.head_dim, p.kv_stride = args.n_heads_kv * args.head_dim;
  cuda::attention_forward_launch(p, tq, ctx, op);
}

}  // namespace kto
