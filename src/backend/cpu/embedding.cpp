// Token embedding lookup over a packed batch and its backward (scatter-add into the table);
// mirrors HF nn.Embedding (LlamaModel.embed_tokens) and its autograd.
#include <cstring>

#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {

// One thread per block of tokens; each copies a D-float row.
void embedding_forward_cpu(const EmbeddingArgs& args) {
  const int64_t n_tokens = args.tokens.shape[0];
  const int64_t vocab = args.table.shape[0];
  const int64_t dim = args.table.shape[1];
  cpu::check_tensor(args.tokens, "embedding tokens", DType::I32, {n_tokens});
  cpu::check_tensor(args.table, "embedding table", DType::F32, {vocab, dim});
  cpu::check_tensor(args.out, "embedding out", DType::F32, {n_tokens, dim});
  const int32_t* tokens = args.tokens.as<int32_t>();
  const float* table = args.table.f32();
  float* out = args.out.f32();
  for (int64_t t = 0; t < n_tokens; ++t) {
    KTO_ASSERT(tokens[t] >= 0 && tokens[t] < vocab, "token id ", tokens[t], " outside [0, ", vocab, ")");
  }
#pragma omp parallel for schedule(static) if (n_tokens * dim >= cpu::kParallelMinWork)
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::memcpy(out + t * dim, table + tokens[t] * dim, static_cast<size_t>(dim) * sizeof(float));
  }
}

// Threads split the D columns; each thread walks every token in order, so repeated tokens add
// up in a fixed order (deterministic) without atomics.
void embedding_backward_cpu(const EmbeddingBackwardArgs& args) {
  const int64_t n_tokens = args.tokens.shape[0];
  const int64_t vocab = args.d_table.shape[0];
  const int64_t dim = args.d_table.shape[1];
  cpu::check_tensor(args.tokens, "embedding_backward tokens", DType::I32, {n_tokens});
  cpu::check_tensor(args.d_out, "embedding_backward d_out", DType::F32, {n_tokens, dim});
  cpu::check_tensor(args.d_table, "embedding_backward d_table", DType::F32, {vocab, dim});
  const int32_t* tokens = args.tokens.as<int32_t>();
  for (int64_t t = 0; t < n_tokens; ++t) {
    KTO_ASSERT(tokens[t] >= 0 && tokens[t] < vocab, "token id ", tokens[t], " outside [0, ", vocab, ")");
  }
  const float* d_out = args.d_out.f32();
  float* d_table = args.d_table.f32();
#pragma omp parallel for schedule(static) if (n_tokens * dim >= cpu::kParallelMinWork)
  for (int64_t d = 0; d < dim; ++d) {
    for (int64_t t = 0; t < n_tokens; ++t) d_table[tokens[t] * dim + d] += d_out[t * dim + d];
  }
}

}  // namespace kto
