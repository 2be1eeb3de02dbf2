// Token embedding lookup over a packed batch (HF nn.Embedding): bf16 table rows into bf16 out.
// Forward threads: one block per token; its threads stride over the D columns, with 16-byte vectors
// when D % 8 == 0 and both bases are 16-byte aligned. Precondition: ids in [0, V) (the data layer
// checks); an id outside writes a row of NaN instead of reading out of bounds, so the bug shows.
// Backward (full fine-tuning): fp32 table gradient, deterministic without atomics (see below).
#include <algorithm>
#include <cmath>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;
using cuda::Bf16Vec;
constexpr int kThreads = 256;
constexpr int kIdsPerRound = 4 * kThreads;  // token ids a backward block examines per round
constexpr int64_t kTargetBlocks = 1024;

__global__ void embedding_kernel(const int32_t* tokens, const bf16* table, bf16* out, int64_t vocab, int64_t dim) {
  const int64_t t = blockIdx.x;
  const int32_t id = tokens[t];
  bf16* dst = out + t * dim;
  if (id < 0 || id >= vocab) {
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = cuda::to_bf16(NAN);
    return;
  }
  const bf16* src = table + int64_t{id} * dim;
  if (dim % 8 == 0 && cuda::aligned16(table, out)) {
    const auto* s4 = reinterpret_cast<const uint4*>(src);
    auto* d4 = reinterpret_cast<uint4*>(dst);
    for (int64_t i = threadIdx.x; i < dim / 8; i += blockDim.x) d4[i] = s4[i];
    return;
  }
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = src[d];
}

// d_table[tokens[t], :] += d_out[t, :]. Block (column tile, id range): its threads own kVec columns
// each; per round the block lists, in token order, the tokens of the next kIdsPerRound whose id
// falls in its range (a stable compaction through warp ballots), then every thread adds those rows
// into its columns in list order. Each d_table element is updated by one thread, in the CPU
// reference's token order: deterministic, no atomics. Ids outside [0, V) are skipped.
template <int kVec>
__global__ void __launch_bounds__(kThreads) embedding_backward_kernel(const int32_t* tokens, const bf16* __restrict__ d_out,
                                                                      float* __restrict__ d_table, int64_t n_tokens,
                                                                      int64_t dim, int64_t vocab, int64_t ids_per_block) {
  __shared__ int32_t list_token[kIdsPerRound], list_id[kIdsPerRound];
  constexpr int kWarps = kThreads / 32, kSlots = kIdsPerRound / 32;
  __shared__ int counts[kSlots];  // matches per (k, warp) slot, in token order
  const int64_t col = (blockIdx.x * int64_t{kThreads} + threadIdx.x) * kVec;
  const int64_t lo = blockIdx.y * ids_per_block, hi = min(lo + ids_per_block, vocab);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t round = 0; round < n_tokens; round += kIdsPerRound) {
    int32_t id[4];
    unsigned match[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {  // token round + k·kThreads + threadIdx.x: slots in token order
      const int64_t t = round + k * kThreads + threadIdx.x;
      id[k] = t < n_tokens ? tokens[t] : -1;
      match[k] = __ballot_sync(0xffffffffu, id[k] >= lo && id[k] < hi);
      if (lane == 0) counts[k * kWarps + warp] = __popc(match[k]);
    }
    __syncthreads();
    int total = 0;
    for (int s = 0; s < kSlots; ++s) total += counts[s];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (!(match[k] >> lane & 1u)) continue;
      const int slot = k * kWarps + warp;
      int at = __popc(match[k] & ((1u << lane) - 1u));
      for (int s = 0; s < slot; ++s) at += counts[s];
      list_token[at] = static_cast<int32_t>(round + k * kThreads + threadIdx.x), list_id[at] = id[k];
    }
    __syncthreads();
    if (col < dim) {
      for (int e = 0; e < total; ++e) {
        const Bf16Vec<kVec> g = cuda::load_vec<kVec>(d_out + int64_t{list_token[e]} * dim + col);
        float* dst = d_table + int64_t{list_id[e]} * dim + col;
        if constexpr (kVec == 8) {  // 32-byte aligned: two float4 read-modify-writes
          auto* d4 = reinterpret_cast<float4*>(dst);
          float4 a = d4[0], b = d4[1];
          a.x += g[0], a.y += g[1], a.z += g[2], a.w += g[3], b.x += g[4], b.y += g[5], b.z += g[6], b.w += g[7];
          d4[0] = a, d4[1] = b;
        } else {
          dst[0] += g[0];
        }
      }
    }
    __syncthreads();
  }
}

}  // namespace

void embedding_backward_cuda(const EmbeddingBackwardArgs& args, CudaContext& ctx) {
  const int64_t n_tokens = args.tokens.shape[0], vocab = args.d_table.shape[0], dim = args.d_table.shape[1];
  cuda::check_tensor(args.tokens, "embedding_backward tokens", DType::I32, {n_tokens});
  cuda::check_tensor(args.d_out, "embedding_backward d_out", DType::BF16, {n_tokens, dim});
  cuda::check_tensor(args.d_table, "embedding_backward d_table", DType::F32, {vocab, dim});
  if (n_tokens == 0 || vocab == 0 || dim == 0) return;
  const bf16* d_out = args.d_out.as<bf16>();
  float* d_table = args.d_table.as<float>();
  const int vec = dim % 8 == 0 && cuda::aligned16(d_out, d_table) ? 8 : 1;
  const int64_t col_tiles = (dim + int64_t{kThreads} * vec - 1) / (int64_t{kThreads} * vec);
  const int64_t ranges = std::clamp<int64_t>(kTargetBlocks / col_tiles, 1, std::min<int64_t>(vocab, 65535));
  const int64_t ids_per_block = (vocab + ranges - 1) / ranges;
  KTO_ASSERT(col_tiles < (int64_t{1} << 31), "embedding_backward: too many columns for one launch");
  const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>((vocab + ids_per_block - 1) / ids_per_block));
  const int32_t* tokens = args.tokens.as<int32_t>();
  if (vec == 8) {
    embedding_backward_kernel<8><<<grid, kThreads, 0, cuda::stream_of(ctx)>>>(tokens, d_out, d_table, n_tokens, dim,
                                                                              vocab, ids_per_block);
  } else {
    embedding_backward_kernel<1><<<grid, kThreads, 0, cuda::stream_of(ctx)>>>(tokens, d_out, d_table, n_tokens, dim,
                                                                              vocab, ids_per_block);
  }
  KTO_CUDA_CHECK_LAUNCH("embedding_backward_cuda");
}

void embedding_forward_cuda(const EmbeddingArgs& args, CudaContext& ctx) {
  const int64_t n_tokens = args.tokens.shape[0], vocab = args.table.shape[0], dim = args.table.shape[1];
  cuda::check_tensor(args.tokens, "embedding tokens", DType::I32, {n_tokens});
  cuda::check_tensor(args.table, "embedding table", DType::BF16, {vocab, dim});
  cuda::check_tensor(args.out, "embedding out", DType::BF16, {n_tokens, dim});
  if (n_tokens == 0) return;
  KTO_ASSERT(n_tokens < (int64_t{1} << 31), "embedding: too many tokens for one launch");
  embedding_kernel<<<static_cast<unsigned>(n_tokens), 128, 0, cuda::stream_of(ctx)>>>(
      args.tokens.as<int32_t>(), args.table.as<bf16>(), args.out.as<bf16>(), vocab, dim);
  KTO_CUDA_CHECK_LAUNCH("embedding_forward_cuda");
}

}  // namespace kto
