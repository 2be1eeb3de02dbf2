// Token embedding lookup over a packed batch; mirrors HF nn.Embedding (LlamaModel.embed_tokens).
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

}  // namespace kto
