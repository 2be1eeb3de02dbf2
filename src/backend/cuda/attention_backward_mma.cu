// Tensor-core backward of the varlen causal GQA attention for head_dim 64 and 128 (flash-attention
// 2's backward, written from its paper, with d_q in a kernel of its own so that no float is ever
// added atomically: results are deterministic). Both kernels recompute p = exp(scale·q·k − lse)
// tile by tile from the lse and delta rows that the forward kernel wrote before them (backward
// pre-pass in attention_backward.cu), with ds = p (dp − delta), dp = d_out·vᵀ:
//   d_q kernel: a block (4 warps) owns 64 queries of one head (grid as the forward's) and streams
//     the 64-key tiles they see: d_q = scale · Σ ds·k. Warp w owns query rows 16w..16w+15.
//   d_k/d_v kernel: a block owns 64 keys of one kv head (grid x kv heads, y key tiles); warp w of
//     each of its warp groups (4 for head_dim 64, 2 for 128) owns key rows 16w..16w+15, so it
//     computes sᵀ = k·qᵀ and dpᵀ = v·d_outᵀ directly in the layout the next products take as A
//     fragments; the groups share out the query tiles of every query head of the kv head's group
//     that see the keys: d_v = Σ pᵀ·d_out, d_k = scale · Σ dsᵀ·q, partial sums added in a fixed order.
// Streamed tiles are double-buffered through shared memory with cp.async. Numerics: bf16 inputs,
// fp32 scores, p, dp, ds and accumulators; as the A operand of the second product of each pair p is
// rounded to bf16 (as flash-attention does) and ds is split into two bf16 terms (hi + lo: one
// rounding of ds put the d_q of a decode step with 1000 keys outside the parity tolerance; see
// tile_xb); d_q, d_k, d_v bf16. Fragment layout: attention_mma.cuh.
#include "backend/cuda/attention_mma.cuh"

namespace kto::cuda {
namespace {

constexpr int kTile = 64;  // query rows of a d_q block, key rows of a d_k/d_v block and of a d_q key tile

// acc (16 x 8·kCols, rows of the warp's A tile) = A·Bᵀ: A rows row0.. of `a` (16 rows, kDh wide),
// B the kCols·8 rows of `b` (both row-major [rows][kMmaLd]).
template <int kDh, int kCols>
__device__ __forceinline__ void tile_abt(const bf16* a, int row0, const bf16* b, float (&acc)[kCols][4]) {
#pragma unroll
  for (int nt = 0; nt < kCols; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
  for (int ks = 0; ks < kDh / 16; ++ks) {
    uint32_t af[4];
    ldmatrix_x4(af, frag_a_addr<kDh>(a, row0, 16 * ks));
#pragma unroll
    for (int np = 0; np < kCols / 2; ++np) {
      uint32_t bf[4];
      ldmatrix_x4(bf, frag_b_addr<kDh>(b, 16 * np, 16 * ks));
      mma_bf16(acc[2 * np], af, bf[0], bf[1]);
      mma_bf16(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// How the fp32 left operand X of tile_xb becomes bf16: rounded once (p: relative error 2^-9 per
// element, as flash-attention), or as hi + lo, two bf16 terms holding ~16 significant bits (ds: its
// terms sum to zero over a row, so their rounding errors would not shrink with the result).
enum class LeftOperand { kRounded, kSplit };

// out (16 x kDh) += X·B where X (16 x 8·kCols) is given as C fragments and B is the row-major
// [8·kCols][kMmaLd] tile `b` ([k][n]).
template <int kDh, int kCols, LeftOperand kMode>
__device__ __forceinline__ void tile_xb(const float (&x)[kCols][4], const bf16* b, float (&out)[kDh / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < kCols / 2; ++kk) {
    const float* x0 = x[2 * kk];
    const float* x1 = x[2 * kk + 1];
    const uint32_t hi[4] = {pack_bf16(x0[0], x0[1]), pack_bf16(x0[2], x0[3]), pack_bf16(x1[0], x1[1]),
                            pack_bf16(x1[2], x1[3])};
    uint32_t lo[4] = {0, 0, 0, 0};
    if constexpr (kMode == LeftOperand::kSplit) {
      auto rest = [](float v) { return v - round_bf16(v); };
      lo[0] = pack_bf16(rest(x0[0]), rest(x0[1]));
      lo[1] = pack_bf16(rest(x0[2]), rest(x0[3]));
      lo[2] = pack_bf16(rest(x1[0]), rest(x1[1]));
      lo[3] = pack_bf16(rest(x1[2]), rest(x1[3]));
    }
#pragma unroll
    for (int dp = 0; dp < kDh / 16; ++dp) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, frag_a_addr<kDh>(b, 16 * kk, 16 * dp));
      mma_bf16(out[2 * dp], hi, bf[0], bf[1]);
      mma_bf16(out[2 * dp + 1], hi, bf[2], bf[3]);
      if constexpr (kMode == LeftOperand::kSplit) {
        mma_bf16(out[2 * dp], lo, bf[0], bf[1]);
        mma_bf16(out[2 * dp + 1], lo, bf[2], bf[3]);
      }
    }
  }
}

// Stores a 16 x kDh accumulator (the warp's rows row0 + g, row0 + g + 8) times `mul` as bf16 rows
// of `dst` (row stride `stride`), rows < n_rows only.
template <int kDh>
__device__ __forceinline__ void store_rows(bf16* dst, int64_t stride, int row0, int n_rows, float mul,
                                           const float (&acc)[kDh / 8][4]) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int row = 0; row < 2; ++row) {
    const int r = row0 + g + 8 * row;
    if (r >= n_rows) continue;
#pragma unroll
    for (int dt = 0; dt < kDh / 8; ++dt) {
      *reinterpret_cast<__nv_bfloat162*>(dst + int64_t{r} * stride + 8 * dt + 2 * t) =
          __floats2bfloat162_rn(acc[dt][2 * row] * mul, acc[dt][2 * row + 1] * mul);
    }
  }
}

template <int kDh>
__global__ void __launch_bounds__(kMmaThreads) attention_backward_dq_mma_kernel(const AttnParams p) {
  int seq = 0, tile = 0;
  if (!attn_find_tile(p.q_starts, p.n_seqs, static_cast<int>(gridDim.y - 1 - blockIdx.y), seq, tile)) return;
  constexpr int kTileElems = kTile * kMmaLd<kDh>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* s_q = reinterpret_cast<bf16*>(smem_raw);
  bf16* s_do = s_q + kTileElems;
  bf16* s_kv = s_do + kTileElems;  // [stage 2][K, V][64][kMmaLd]
  const int h = blockIdx.x, kv_head = h / (p.n_heads / p.n_heads_kv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const int q_begin = p.q_starts[seq], q_len = p.q_starts[seq + 1] - q_begin;
  const int k_begin = p.k_starts[seq], offset = p.k_starts[seq + 1] - k_begin - q_len;
  const int i0 = tile * kTile, n_rows = min(kTile, q_len - i0);
  const int first_qi = offset + i0, last_qi = first_qi + n_rows - 1;
  const int key_lo = p.window > 0 ? max(0, first_qi - p.window + 1) : 0, key_hi = last_qi + 1;
  const int n_tiles = (key_hi - key_lo + kTile - 1) / kTile;
  const bf16* k_head = p.k + int64_t{k_begin} * p.kv_stride + int64_t{kv_head} * kDh;
  const bf16* v_head = p.v + int64_t{k_begin} * p.kv_stride + int64_t{kv_head} * kDh;
  auto load_kv = [&](int t_idx) {
    bf16* stage = s_kv + (t_idx % 2) * 2 * kTileElems;
    const int j0 = key_lo + t_idx * kTile, n_keys = min(kTile, key_hi - j0);
    load_tile_async<kTile, kDh>(stage, k_head + int64_t{j0} * p.kv_stride, p.kv_stride, n_keys);
    load_tile_async<kTile, kDh>(stage + kTileElems, v_head + int64_t{j0} * p.kv_stride, p.kv_stride, n_keys);
  };
  const int64_t q_at = int64_t{q_begin + i0} * p.q_stride + int64_t{h} * kDh;
  load_tile_async<kTile, kDh>(s_q, p.q + q_at, p.q_stride, n_rows);
  load_tile_async<kTile, kDh>(s_do, p.d_out + q_at, p.q_stride, n_rows);
  load_kv(0);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  const float scale_log2 = p.scale * kLog2e;
  float lse2[2], delta[2];  // rows g and g + 8 of the warp; lse in log2 units
#pragma unroll
  for (int row = 0; row < 2; ++row) {
    const int r = 16 * warp + g + 8 * row;
    const int64_t stat = int64_t{q_begin + i0 + r} * p.n_heads + h;
    lse2[row] = r < n_rows ? p.lse[stat] * kLog2e : 0.0f;
    delta[row] = r < n_rows ? p.delta[stat] : 0.0f;
  }
  float dq[kDh / 8][4];
#pragma unroll
  for (int dt = 0; dt < kDh / 8; ++dt) dq[dt][0] = dq[dt][1] = dq[dt][2] = dq[dt][3] = 0.0f;
  for (int t_idx = 0; t_idx < n_tiles; ++t_idx) {  // pipeline as the forward's
    if (t_idx + 1 < n_tiles) {
      load_kv(t_idx + 1);
      cp_async_commit();
    }
    const bf16* s_k = s_kv + (t_idx % 2) * 2 * kTileElems;
    const int j0 = key_lo + t_idx * kTile;
    float s[kTile / 8][4], dp[kTile / 8][4];
    tile_abt<kDh, kTile / 8>(s_q, 16 * warp, s_k, s);
    tile_abt<kDh, kTile / 8>(s_do, 16 * warp, s_k + kTileElems, dp);
    const bool unmasked = attn_tile_unmasked(first_qi, last_qi, j0, j0 + kTile - 1, p.window);
#pragma unroll
    for (int nt = 0; nt < kTile / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = first_qi + 16 * warp + g + 8 * (e / 2), j = j0 + 8 * nt + 2 * t4 + e % 2;
        const bool seen = unmasked || attn_visible(qi, j, p.window);
        const float prob = seen ? fast_exp2(fmaf(s[nt][e], scale_log2, -lse2[e / 2])) : 0.0f;
        s[nt][e] = prob * (dp[nt][e] - delta[e / 2]);  // ds
      }
    }
    tile_xb<kDh, kTile / 8, LeftOperand::kSplit>(s, s_k, dq);
    cp_async_wait<0>();
    __syncthreads();
  }
  store_rows<kDh>(p.d_q + q_at, p.q_stride, 16 * warp, n_rows, p.scale, dq);
}

// Streamed query tile t of a d_k/d_v block: query head and first local query row.
struct QueryTile {
  int h, i0, n_rows;
};

// The d_k/d_v kernel's threads are kGroups warp groups of 4 warps over the same 64 keys. The
// block's query tiles (every query head of the kv head's group × the query tiles that see the
// keys) are dealt out round-robin, each group streaming its own through its own two stages and
// syncing on its own barrier; at the end the groups' partial sums are added pairwise through
// shared memory in a fixed tree (deterministic). More groups shorten the longest block (the first
// key tile of the longest sequence), which bounds the kernel where kv heads are few (Qwen: 2).
template <int kDh, int kTileQ, int kGroups>
struct DkdvLayout {
  static constexpr int kKeyElems = kTile * kMmaLd<kDh>, kQElems = kTileQ * kMmaLd<kDh>;
  static constexpr int kStageElems = 2 * kQElems + 4 * kTileQ;  // Q, d_out, then lse and delta as floats
  static constexpr int kAccFloats = 2 * (kDh / 8) * 4;           // d_k and d_v fragments per thread
  static constexpr int64_t kBytes = int64_t{sizeof(bf16)} * (2 * kKeyElems + 2 * kGroups * kStageElems);
  static_assert(int64_t{sizeof(float)} * kAccFloats * kMmaThreads * (kGroups / 2) <=
                    int64_t{sizeof(bf16)} * 2 * kGroups * kStageElems,
                "the hand-over of partial sums reuses the stages");
};

template <int kGroups>
__device__ __forceinline__ void group_barrier(int wg) {
  static_assert(kGroups <= 4, "barriers 1..4");
  if (wg == 0) named_barrier<1, kMmaThreads>();
  if (kGroups > 1 && wg == 1) named_barrier<2, kMmaThreads>();
  if (kGroups > 2 && wg == 2) named_barrier<3, kMmaThreads>();
  if (kGroups > 3 && wg == 3) named_barrier<4, kMmaThreads>();
}

// One streamed query tile of a d_k/d_v block, for the warp's 16 keys (key index j0 + key_row0 ..):
// pᵀ and dsᵀ from sᵀ = k·qᵀ and dpᵀ = v·d_outᵀ, then acc[1] (d_v) += pᵀ·d_out, acc[0] (d_k) += dsᵀ·q.
// `stage` holds the tile's q, d_out, lse and delta; queries from local row i0 + 0 at key index first_qi.
template <int kDh, int kTileQ, int kGroups>
__device__ __forceinline__ void dkdv_tile(const AttnParams& p, const bf16* s_k, const bf16* s_v, const bf16* stage,
                                          int j0, int key_row0, int first_qi, int n_rows,
                                          float (&acc)[2][kDh / 8][4]) {
  using L = DkdvLayout<kDh, kTileQ, kGroups>;
  const int lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const bf16* s_q = stage;
  const bf16* s_do = s_q + L::kQElems;
  const float* s_lse = reinterpret_cast<const float*>(s_q + 2 * L::kQElems);
  const float* s_delta = s_lse + kTileQ;
  float st[kTileQ / 8][4], dpt[kTileQ / 8][4];  // sᵀ, dpᵀ: 16 keys x kTileQ queries
  tile_abt<kDh, kTileQ / 8>(s_k, key_row0, s_q, st);
  tile_abt<kDh, kTileQ / 8>(s_v, key_row0, s_do, dpt);
  const bool unmasked = n_rows == kTileQ &&
                        attn_tile_unmasked(first_qi, first_qi + kTileQ - 1, j0, j0 + kTile - 1, p.window);
  const float scale_log2 = p.scale * kLog2e;
#pragma unroll
  for (int nt = 0; nt < kTileQ / 8; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = 8 * nt + 2 * t4 + e % 2, j = j0 + key_row0 + g + 8 * (e / 2);
      const bool seen = unmasked || (r < n_rows && attn_visible(first_qi + r, j, p.window));
      st[nt][e] = seen ? fast_exp2(fmaf(st[nt][e], scale_log2, -s_lse[r] * kLog2e)) : 0.0f;  // pᵀ
      dpt[nt][e] = st[nt][e] * (dpt[nt][e] - s_delta[r]);                                      // dsᵀ
    }
  }
  tile_xb<kDh, kTileQ / 8, LeftOperand::kRounded>(st, s_do, acc[1]);
  tile_xb<kDh, kTileQ / 8, LeftOperand::kSplit>(dpt, s_q, acc[0]);
}

// Adds the partial sums of warp groups [half, 2·half) to groups [0, half), half = kGroups / 2, ...,
// 1, through `hand` (element i of thread gtid of group wg at hand[wg % half][i][gtid], conflict-free
// and in a fixed order). Group 0 ends with the block's sums.
template <int kDh, int kGroups>
__device__ __forceinline__ void hand_over_partials(float (&acc)[2][kDh / 8][4], float* hand, int wg, int gtid) {
  constexpr int kFloats = 2 * (kDh / 8) * 4;
#pragma unroll
  for (int half = kGroups / 2; half >= 1; half /= 2) {
    __syncthreads();  // the previous round's reads (or the main loop's stage reads) are done
    float* slot = hand + (wg % half) * kFloats * kMmaThreads + gtid;
    if (wg >= half && wg < 2 * half) {
#pragma unroll
      for (int a = 0; a < 2; ++a) {
#pragma unroll
        for (int dt = 0; dt < kDh / 8; ++dt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) slot[((a * (kDh / 8) + dt) * 4 + e) * kMmaThreads] = acc[a][dt][e];
        }
      }
    }
    __syncthreads();
    if (wg < half) {
#pragma unroll
      for (int a = 0; a < 2; ++a) {
#pragma unroll
        for (int dt = 0; dt < kDh / 8; ++dt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[a][dt][e] += slot[((a * (kDh / 8) + dt) * 4 + e) * kMmaThreads];
        }
      }
    }
  }
}

template <int kDh, int kTileQ, int kGroups>
__global__ void __launch_bounds__(kGroups * kMmaThreads) attention_backward_dkdv_mma_kernel(const AttnParams p) {
  int seq = 0, tile = 0;
  if (!attn_find_tile(p.k_starts, p.n_seqs, static_cast<int>(blockIdx.y), seq, tile)) return;
  using L = DkdvLayout<kDh, kTileQ, kGroups>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* s_k = reinterpret_cast<bf16*>(smem_raw);
  bf16* s_v = s_k + L::kKeyElems;
  bf16* s_stages = s_v + L::kKeyElems;  // [group][stage 2][kStageElems]
  const int kv_head = blockIdx.x, group = p.n_heads / p.n_heads_kv;
  const int wg = threadIdx.x / kMmaThreads, gtid = threadIdx.x % kMmaThreads;
  const int warp = gtid / 32;
  const int q_begin = p.q_starts[seq], q_len = p.q_starts[seq + 1] - q_begin;
  const int k_begin = p.k_starts[seq], k_len = p.k_starts[seq + 1] - k_begin, offset = k_len - q_len;
  const int j0 = tile * kTile, n_keys = min(kTile, k_len - j0);
  // Queries that see a key of [j0, j0 + n_keys): local i with j0 <= offset + i < last key + window.
  const int i_lo = max(0, j0 - offset);
  const int i_hi = p.window > 0 ? min(q_len, j0 + n_keys - 1 + p.window - offset) : q_len;
  const int n_qtiles = i_hi > i_lo ? (i_hi - i_lo + kTileQ - 1) / kTileQ : 0;
  const int n_mine = (n_qtiles * group - wg + kGroups - 1) / kGroups;  // tiles wg, wg + kGroups, ...
  auto query_tile = [&](int mine) {
    const int t_idx = wg + kGroups * mine, i0 = i_lo + (t_idx % n_qtiles) * kTileQ;
    return QueryTile{kv_head * group + t_idx / n_qtiles, i0, min(kTileQ, i_hi - i0)};
  };
  auto stage_of = [&](int mine) { return s_stages + (2 * wg + mine % 2) * L::kStageElems; };
  auto load_q = [&](int mine) {
    const QueryTile qt = query_tile(mine);
    bf16* stage = stage_of(mine);
    const int64_t q_at = int64_t{q_begin + qt.i0} * p.q_stride + int64_t{qt.h} * kDh;
    load_tile_async<kTileQ, kDh>(stage, p.q + q_at, p.q_stride, qt.n_rows, gtid);
    load_tile_async<kTileQ, kDh>(stage + L::kQElems, p.d_out + q_at, p.q_stride, qt.n_rows, gtid);
    float* stats = reinterpret_cast<float*>(stage + 2 * L::kQElems);
    if (gtid < kTileQ) {
      const int64_t stat = int64_t{q_begin + qt.i0 + min(gtid, qt.n_rows - 1)} * p.n_heads + qt.h;
      cp_async_4(stats + gtid, p.lse + stat, gtid < qt.n_rows);
      cp_async_4(stats + kTileQ + gtid, p.delta + stat, gtid < qt.n_rows);
    }
  };
  const int64_t kv_at = int64_t{k_begin + j0} * p.kv_stride + int64_t{kv_head} * kDh;
  load_tile_async<kTile, kDh, kGroups * kMmaThreads>(s_k, p.k + kv_at, p.kv_stride, n_keys);
  load_tile_async<kTile, kDh, kGroups * kMmaThreads>(s_v, p.v + kv_at, p.kv_stride, n_keys);
  if (n_mine > 0) load_q(0);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  float acc[2][kDh / 8][4];  // d_k, d_v of the warp's 16 keys
#pragma unroll
  for (int dt = 0; dt < kDh / 8; ++dt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[0][dt][e] = acc[1][dt][e] = 0.0f;
  }
  for (int mine = 0; mine < n_mine; ++mine) {  // pipeline as the forward's, per warp group
    if (mine + 1 < n_mine) {
      load_q(mine + 1);
      cp_async_commit();
    }
    const QueryTile qt = query_tile(mine);
    dkdv_tile<kDh, kTileQ, kGroups>(p, s_k, s_v, stage_of(mine), j0, 16 * warp, offset + qt.i0, qt.n_rows, acc);
    cp_async_wait<0>();
    group_barrier<kGroups>(wg);
  }
  hand_over_partials<kDh, kGroups>(acc, reinterpret_cast<float*>(s_stages), wg, gtid);
  if (wg != 0) return;
  store_rows<kDh>(p.d_k + kv_at, p.kv_stride, 16 * warp, n_keys, p.scale, acc[0]);
  store_rows<kDh>(p.d_v + kv_at, p.kv_stride, 16 * warp, n_keys, 1.0f, acc[1]);
}

template <int kDh, int kTileQ, int kGroups>
void launch(const AttnParams& p, int64_t tq, int64_t tk, CudaContext& ctx, const char* op) {
  const int64_t dq_smem = 6 * kTile * kMmaLd<kDh> * int64_t{sizeof(bf16)};
  const int64_t dkdv_smem = DkdvLayout<kDh, kTileQ, kGroups>::kBytes;
  auto* dq_kernel = &attention_backward_dq_mma_kernel<kDh>;
  auto* dkdv_kernel = &attention_backward_dkdv_mma_kernel<kDh, kTileQ, kGroups>;
  require_shared_memory(ctx, reinterpret_cast<const void*>(dq_kernel), dq_smem, op);
  require_shared_memory(ctx, reinterpret_cast<const void*>(dkdv_kernel), dkdv_smem, op);
  if (tq > 0) {
    const dim3 grid(static_cast<unsigned>(p.n_heads), static_cast<unsigned>((tq + kTile - 1) / kTile + p.n_seqs));
    dq_kernel<<<grid, kMmaThreads, static_cast<size_t>(dq_smem), stream_of(ctx)>>>(p);
    KTO_CUDA_CHECK_LAUNCH(op);
  }
  if (tk > 0) {
    const dim3 grid(static_cast<unsigned>(p.n_heads_kv), static_cast<unsigned>((tk + kTile - 1) / kTile + p.n_seqs));
    dkdv_kernel<<<grid, kGroups * kMmaThreads, static_cast<size_t>(dkdv_smem), stream_of(ctx)>>>(p);
    KTO_CUDA_CHECK_LAUNCH(op);
  }
}

}  // namespace

void attention_backward_mma_launch(const AttnParams& p, int64_t tq, int64_t tk, CudaContext& ctx, const char* op) {
  // d_k/d_v: four warp groups for head_dim 64 (32-query tiles keep a thread at 128 registers; on
  // an H200 that beat two groups with 64-query tiles by 10 % on Llama 1B and 12 % on Qwen 0.5B),
  // two for 128, whose accumulators do not fit 128 registers.
  if (p.head_dim == 64) return launch<64, 32, 4>(p, tq, tk, ctx, op);
  KTO_ASSERT(p.head_dim == 128, "attention_backward_mma_launch: head_dim ", p.head_dim);
  launch<128, 32, 2>(p, tq, tk, ctx, op);
}

}  // namespace kto::cuda
