// Token embedding lookup over a packed batch (HF nn.Embedding): bf16 table rows into bf16 out.
// Threads: one block per token; its threads stride over the D columns, with 16-byte vectors when
// D % 8 == 0 and both bases are 16-byte aligned. Precondition: ids in [0, V) (the data layer
// checks); an id outside writes a row of NaN instead of reading out of bounds, so the bug shows.
// Backward (full fine-tuning): fp32 table gradient, one thread per column.
#include <cmath>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;

__global__ void embedding_kernel(const int32_t* tokens, const bf16* table, bf16* out, int64_t vocab, int64_t dim) {
  const int64_t t = blockIdx.x;
  const int32_t id = tokens[t];
  bf16* dst = out + t * dim;
  if (id < 0 || id >= vocab) {
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = cuda::to_bf16(NAN);
    return;
  }
  const bf16* src = table + int64_t{id} * dim;
  if (dim % 8 == 0 && (reinterpret_cast<uintptr_t>(table) | reinterpret_cast<uintptr_t>(out)) % 16 == 0) {
    const auto* s4 = reinterpret_cast<const uint4*>(src);
    auto* d4 = reinterpret_cast<uint4*>(dst);
    for (int64_t i = threadIdx.x; i < dim / 8; i += blockDim.x) d4[i] = s4[i];
    return;
  }
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = src[d];
}

// d_table[tokens[t], d] += d_out[t, d]: one thread per column d walking the tokens in order, so
// repeated tokens add in the CPU reference's order (deterministic, no atomics).
__global__ void embedding_backward_kernel(const int32_t* tokens, const bf16* d_out, float* d_table, int64_t n_tokens,
                                          int64_t dim) {
  const int64_t d = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (d >= dim) return;
  for (int64_t t = 0; t < n_tokens; ++t) d_table[int64_t{tokens[t]} * dim + d] += cuda::to_f32(d_out[t * dim + d]);
}

}  // namespace

void embedding_backward_cuda(const EmbeddingBackwardArgs& args, CudaContext& ctx) {
  const int64_t n_tokens = args.tokens.shape[0], vocab = args.d_table.shape[0], dim = args.d_table.shape[1];
  cuda::check_tensor(args.tokens, "embedding_backward tokens", DType::I32, {n_tokens});
  cuda::check_tensor(args.d_out, "embedding_backward d_out", DType::BF16, {n_tokens, dim});
  cuda::check_tensor(args.d_table, "embedding_backward d_table", DType::F32, {vocab, dim});
  if (n_tokens == 0) return;
  embedding_backward_kernel<<<cuda::grid_for(dim, 128), 128, 0, cuda::stream_of(ctx)>>>(
      args.tokens.as<int32_t>(), args.d_out.as<bf16>(), args.d_table.as<float>(), n_tokens, dim);
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
