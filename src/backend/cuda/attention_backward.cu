// Backward of the varlen causal GQA attention (autograd of attention_forward_cpu's expression):
// the entry point, its dispatch (tensor-core kernels of attention_backward_mma.cu for head_dim 64 /
// 128) and the fp32 kernels for other head dims, flash-style in three launches: the forward again,
// writing each query row's lse and delta = Σ d_out·out into the workspace; a d_q kernel over query
// tiles (as the forward's grid); a d_k/d_v kernel over 64-key tiles × kv heads, looping over the
// query heads of its group and the query tiles that see its keys. Each launch recomputes
// p = exp(scale·q·k − lse) tile by tile, so no launch writes a float another block writes (no
// atomics, deterministic). Threads: attention_common.cuh. Numerics: fp32 tiles and accumulators,
// ds = p (dp − delta), bf16 outputs.
#include "backend/cuda/attention_common.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace cuda {
namespace {

template <int kDh>
__global__ void __launch_bounds__(kAttnThreads) attention_backward_dq_kernel(const AttnParams p) {
  int seq = 0, tile = 0;
  if (!attn_find_tile(p.q_starts, p.n_seqs, blockIdx.x, seq, tile)) return;
  constexpr int kLd = kDh + 1, kCols = kDh / 16;
  extern __shared__ float smem[];
  float* s_q = smem;
  float* s_do = s_q + kAttnTile * kLd;
  float* s_k = s_do + kAttnTile * kLd;
  float* s_v = s_k + kAttnTile * kLd;
  float* s_ds = s_v + kAttnTile * kLd;  // [64][65]
  const int h = blockIdx.y, kv_head = h / (p.n_heads / p.n_heads_kv);
  const int q_begin = p.q_starts[seq], q_len = p.q_starts[seq + 1] - q_begin;
  const int k_begin = p.k_starts[seq], offset = p.k_starts[seq + 1] - k_begin - q_len;
  const int i0 = tile * kAttnTile, n_rows = min(kAttnTile, q_len - i0);
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int64_t q_at = int64_t{q_begin + i0} * p.q_stride + int64_t{h} * p.head_dim;
  attn_load_tile<kDh>(s_q, p.q + q_at, p.q_stride, n_rows, p.head_dim);
  attn_load_tile<kDh>(s_do, p.d_out + q_at, p.q_stride, n_rows, p.head_dim);
  float lse[4], delta[4], acc[4][kCols];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty + 16 * i;
    const int64_t row = int64_t{q_begin + i0 + r} * p.n_heads + h;
    lse[i] = r < n_rows ? p.lse[row] : 0.0f;
    delta[i] = r < n_rows ? p.delta[row] : 0.0f;
#pragma unroll
    for (int k = 0; k < kCols; ++k) acc[i][k] = 0.0f;
  }
  const int first_qi = offset + i0, last_qi = offset + i0 + n_rows - 1;
  const int key_lo = p.window > 0 ? max(0, first_qi - p.window + 1) : 0, key_hi = last_qi + 1;
  for (int j0 = key_lo; j0 < key_hi; j0 += kAttnTile) {
    const int n_keys = min(kAttnTile, key_hi - j0);
    const int64_t kv_at = int64_t{k_begin + j0} * p.kv_stride + int64_t{kv_head} * p.head_dim;
    __syncthreads();
    attn_load_tile<kDh>(s_k, p.k + kv_at, p.kv_stride, n_keys, p.head_dim);
    attn_load_tile<kDh>(s_v, p.v + kv_at, p.kv_stride, n_keys, p.head_dim);
    __syncthreads();
    float s[4][4], dp[4][4];
    attn_tile_dot<kDh>(s_q, ty, s_k, tx, p.head_dim, s);
    attn_tile_dot<kDh>(s_do, ty, s_v, tx, p.head_dim, dp);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ty + 16 * i, qi = offset + i0 + r;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const bool seen = r < n_rows && attn_visible(qi, j0 + tx + 16 * j, p.window);
        const float prob = seen ? __expf(s[i][j] * p.scale - lse[i]) : 0.0f;
        s_ds[r * kAttnScoreLd + tx + 16 * j] = prob * (dp[i][j] - delta[i]);
      }
    }
    __syncthreads();
    for (int c = 0; c < n_keys; ++c) {
      float kv[kCols];
#pragma unroll
      for (int k = 0; k < kCols; ++k) kv[k] = s_k[c * kLd + tx + 16 * k];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float ds = s_ds[(ty + 16 * i) * kAttnScoreLd + c];
#pragma unroll
        for (int k = 0; k < kCols; ++k) acc[i][k] += ds * kv[k];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty + 16 * i;
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      const int d = tx + 16 * k;
      if (r < n_rows && d < p.head_dim) p.d_q[q_at + int64_t{r} * p.q_stride + d] = to_bf16(acc[i][k] * p.scale);
    }
  }
}

// One query tile's contribution to a key tile: P and dS transposed ([key][query]) into shared
// memory, then d_v += Pᵀ·d_out and d_k += dSᵀ·q for the key rows this thread owns.
struct KeyTileState {
  int seq_offset, j0, n_keys;
};

template <int kDh>
__device__ __forceinline__ void dkdv_accumulate(const AttnParams& p, const KeyTileState& kt, const float* s_k,
                                                const float* s_v, const float* s_q, const float* s_do, const float* s_lse,
                                                const float* s_delta, float* s_p, float* s_ds, int i0, int n_rows,
                                                float (&acc_k)[4][kDh / 16], float (&acc_v)[4][kDh / 16]) {
  constexpr int kLd = kDh + 1, kCols = kDh / 16;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  float s[4][4], dp[4][4];
  attn_tile_dot<kDh>(s_k, ty, s_q, tx, p.head_dim, s);
  attn_tile_dot<kDh>(s_v, ty, s_do, tx, p.head_dim, dp);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int c = ty + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = tx + 16 * j;
      const bool seen = c < kt.n_keys && r < n_rows && attn_visible(kt.seq_offset + i0 + r, kt.j0 + c, p.window);
      const float prob = seen ? __expf(s[i][j] * p.scale - s_lse[r]) : 0.0f;
      s_p[c * kAttnScoreLd + r] = prob;
      s_ds[c * kAttnScoreLd + r] = prob * (dp[i][j] - s_delta[r]);
    }
  }
  __syncthreads();
  for (int r = 0; r < n_rows; ++r) {
    float qv[kCols], ov[kCols];
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      qv[k] = s_q[r * kLd + tx + 16 * k];
      ov[k] = s_do[r * kLd + tx + 16 * k];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float pr = s_p[(ty + 16 * i) * kAttnScoreLd + r], dsr = s_ds[(ty + 16 * i) * kAttnScoreLd + r];
#pragma unroll
      for (int k = 0; k < kCols; ++k) {
        acc_v[i][k] += pr * ov[k];
        acc_k[i][k] += dsr * qv[k];
      }
    }
  }
}

template <int kDh>
__global__ void __launch_bounds__(kAttnThreads) attention_backward_dkdv_kernel(const AttnParams p) {
  int seq = 0, tile = 0;
  if (!attn_find_tile(p.k_starts, p.n_seqs, blockIdx.x, seq, tile)) return;
  constexpr int kLd = kDh + 1, kCols = kDh / 16;
  extern __shared__ float smem[];
  float* s_k = smem;
  float* s_v = s_k + kAttnTile * kLd;
  float* s_q = s_v + kAttnTile * kLd;
  float* s_do = s_q + kAttnTile * kLd;
  float* s_p = s_do + kAttnTile * kLd;       // [64][65], [key][query]
  float* s_ds = s_p + kAttnTile * kAttnScoreLd;  // [64][65]
  float* s_lse = s_ds + kAttnTile * kAttnScoreLd;  // [64]
  float* s_delta = s_lse + kAttnTile;             // [64]
  const int kv_head = blockIdx.y, group = p.n_heads / p.n_heads_kv;
  const int q_begin = p.q_starts[seq], q_len = p.q_starts[seq + 1] - q_begin;
  const int k_begin = p.k_starts[seq], k_len = p.k_starts[seq + 1] - k_begin;
  const KeyTileState kt{k_len - q_len, tile * kAttnTile, min(kAttnTile, k_len - tile * kAttnTile)};
  const int64_t kv_at = int64_t{k_begin + kt.j0} * p.kv_stride + int64_t{kv_head} * p.head_dim;
  attn_load_tile<kDh>(s_k, p.k + kv_at, p.kv_stride, kt.n_keys, p.head_dim);
  attn_load_tile<kDh>(s_v, p.v + kv_at, p.kv_stride, kt.n_keys, p.head_dim);
  float acc_k[4][kCols], acc_v[4][kCols];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int k = 0; k < kCols; ++k) acc_k[i][k] = acc_v[i][k] = 0.0f;
  }
  // Queries that see a key of [j0, j0 + n_keys): local i with j0 <= offset + i < last key + window.
  const int i_lo = max(0, kt.j0 - kt.seq_offset);
  const int i_hi = p.window > 0 ? min(q_len, kt.j0 + kt.n_keys - 1 + p.window - kt.seq_offset) : q_len;
  for (int h = kv_head * group; h < (kv_head + 1) * group; ++h) {
    for (int i0 = i_lo; i0 < i_hi; i0 += kAttnTile) {
      const int n_rows = min(kAttnTile, i_hi - i0);
      const int64_t q_at = int64_t{q_begin + i0} * p.q_stride + int64_t{h} * p.head_dim;
      __syncthreads();  // the previous query tile is done with s_q, s_do, s_p, s_ds
      attn_load_tile<kDh>(s_q, p.q + q_at, p.q_stride, n_rows, p.head_dim);
      attn_load_tile<kDh>(s_do, p.d_out + q_at, p.q_stride, n_rows, p.head_dim);
      if (threadIdx.x < kAttnTile) {
        const int r = threadIdx.x;
        const int64_t row = int64_t{q_begin + i0 + r} * p.n_heads + h;
        s_lse[r] = r < n_rows ? p.lse[row] : 0.0f;
        s_delta[r] = r < n_rows ? p.delta[row] : 0.0f;
      }
      __syncthreads();
      dkdv_accumulate<kDh>(p, kt, s_k, s_v, s_q, s_do, s_lse, s_delta, s_p, s_ds, i0, n_rows, acc_k, acc_v);
    }
  }
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int c = ty + 16 * i;
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      const int d = tx + 16 * k;
      if (c >= kt.n_keys || d >= p.head_dim) continue;
      const int64_t at = kv_at + int64_t{c} * p.kv_stride + d;
      p.d_k[at] = to_bf16(acc_k[i][k] * p.scale);
      p.d_v[at] = to_bf16(acc_v[i][k]);
    }
  }
}

template <int kDh>
void launch_backward(const AttnParams& p, int64_t tq, int64_t tk, CudaContext& ctx, const char* op) {
  const int64_t tile_floats = int64_t{kAttnTile} * (kDh + 1);
  const int64_t dq_smem = int64_t{sizeof(float)} * (4 * tile_floats + kAttnTile * kAttnScoreLd);
  const int64_t dkdv_smem = int64_t{sizeof(float)} * (4 * tile_floats + 2 * kAttnTile * kAttnScoreLd + 2 * kAttnTile);
  require_shared_memory(ctx, reinterpret_cast<const void*>(&attention_backward_dq_kernel<kDh>), dq_smem, op);
  require_shared_memory(ctx, reinterpret_cast<const void*>(&attention_backward_dkdv_kernel<kDh>), dkdv_smem, op);
  if (tq > 0) {
    const dim3 grid(static_cast<unsigned>((tq + kAttnTile - 1) / kAttnTile + p.n_seqs), static_cast<unsigned>(p.n_heads));
    attention_backward_dq_kernel<kDh><<<grid, kAttnThreads, static_cast<size_t>(dq_smem), stream_of(ctx)>>>(p);
    KTO_CUDA_CHECK_LAUNCH(op);
  }
  if (tk > 0) {
    const dim3 grid(static_cast<unsigned>((tk + kAttnTile - 1) / kAttnTile + p.n_seqs),
                    static_cast<unsigned>(p.n_heads_kv));
    attention_backward_dkdv_kernel<kDh><<<grid, kAttnThreads, static_cast<size_t>(dkdv_smem), stream_of(ctx)>>>(p);
    KTO_CUDA_CHECK_LAUNCH(op);
  }
}

}  // namespace
}  // namespace cuda

int64_t attention_backward_workspace_bytes_cuda(int64_t n_query_tokens, int64_t n_heads) {
  return 2 * cuda::align_bytes(n_query_tokens * n_heads * int64_t{sizeof(float)});
}

void attention_backward_cuda(const AttentionBackwardArgs& args, const Tensor& workspace, CudaContext& ctx) {
  const char* op = "attention_backward_cuda";
  const int64_t n_seqs = args.q_starts.shape[0] - 1, tq = args.q.shape[0], tk = args.k.shape[0];
  const int64_t q_width = args.n_heads * args.head_dim, kv_width = args.n_heads_kv * args.head_dim;
  KTO_ASSERT(args.n_heads > 0 && args.n_heads_kv > 0 && args.n_heads % args.n_heads_kv == 0, "attention heads ",
             args.n_heads, " not a multiple of kv heads ", args.n_heads_kv);
  KTO_ASSERT(args.window >= 0 && args.head_dim > 0, "attention window must be >= 0 and head_dim > 0");
  if (args.head_dim > 128) fail(ErrorKind::Unsupported, op, ": head_dim ", args.head_dim, " > 128 is not supported");
  cuda::check_tensor(args.q, "attention q", DType::BF16, {tq, q_width});
  cuda::check_tensor(args.k, "attention k", DType::BF16, {tk, kv_width});
  cuda::check_tensor(args.v, "attention v", DType::BF16, {tk, kv_width});
  cuda::check_tensor(args.d_out, "attention d_out", DType::BF16, {tq, q_width});
  cuda::check_tensor(args.d_q, "attention d_q", DType::BF16, {tq, q_width});
  cuda::check_tensor(args.d_k, "attention d_k", DType::BF16, {tk, kv_width});
  cuda::check_tensor(args.d_v, "attention d_v", DType::BF16, {tk, kv_width});
  cuda::check_tensor(args.q_starts, "attention q_starts", DType::I32, {n_seqs + 1});
  cuda::check_tensor(args.k_starts, "attention k_starts", DType::I32, {n_seqs + 1});
  cuda::check_workspace(workspace, op, attention_backward_workspace_bytes_cuda(tq, args.n_heads));
  cuda::AttnParams p;
  p.q = args.q.as<cuda::bf16>(), p.k = args.k.as<cuda::bf16>(), p.v = args.v.as<cuda::bf16>();
  p.q_starts = args.q_starts.as<int32_t>(), p.k_starts = args.k_starts.as<int32_t>();
  p.d_out = args.d_out.as<cuda::bf16>();
  p.lse = static_cast<float*>(workspace.data);
  p.delta = reinterpret_cast<float*>(static_cast<char*>(workspace.data) +
                                     cuda::align_bytes(tq * args.n_heads * int64_t{sizeof(float)}));
  p.d_q = args.d_q.as<cuda::bf16>(), p.d_k = args.d_k.as<cuda::bf16>(), p.d_v = args.d_v.as<cuda::bf16>();
  p.n_seqs = static_cast<int>(n_seqs), p.n_heads = static_cast<int>(args.n_heads);
  p.n_heads_kv = static_cast<int>(args.n_heads_kv), p.head_dim = static_cast<int>(args.head_dim);
  p.window = static_cast<int>(args.window), p.scale = args.scale;
  p.q_stride = q_width, p.kv_stride = kv_width;
  cuda::attention_forward_launch(p, tq, ctx, op);  // lse and delta only (p.out is null)
  if (cuda::attention_mma_supported(p)) return cuda::attention_backward_mma_launch(p, tq, tk, ctx, op);
  if (args.head_dim <= 64) return cuda::launch_backward<64>(p, tq, tk, ctx, op);
  cuda::launch_backward<128>(p, tq, tk, ctx, op);
}

}  // namespace kto
