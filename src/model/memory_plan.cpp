// Memory arithmetic for a LoRA / QLoRA KTO step (DESIGN.md §3 "memory is planned").
// Per-token activation bytes follow what each layer's forward saves for its backward in bf16:
// two norm outputs, q/k/v after RoPE, the attention output, gate/up/activated MLP values, the
// seven LoRA intermediates, plus fp32 norm and softmax statistics.
#include "model/memory_plan.h"

#include <algorithm>

namespace kto {

namespace {
constexpr int64_t kBf16 = 2, kF32 = 4;
constexpr int64_t kNf4Block = 64;               // bitsandbytes blocksize for weights
constexpr int64_t kOverheadBytes = 600ll << 20;  // CUDA context + library workspaces

int64_t linear_params_per_layer(const ModelConfig& c) {
  const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  return d * q + 2 * d * kv + q * d + 3 * d * f;
}

// Bytes one layer keeps per token for its backward (bf16 values, fp32 statistics).
int64_t saved_bytes_per_token_per_layer(const ModelConfig& c, int64_t rank) {
  const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  const int64_t values = 2 * d + q + 2 * kv + q + 3 * f + 7 * rank;
  const int64_t stats = 2 + c.n_heads;  // two rms statistics, one log-sum-exp per head
  return values * kBf16 + stats * kF32;
}
}  // namespace

int64_t lora_param_count(const ModelConfig& c, int64_t rank) {
  const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  const int64_t per_layer = rank * ((d + q) + 2 * (d + kv) + (q + d) + 2 * (d + f) + (f + d));
  return per_layer * c.n_layers;
}

TrainMemoryPlan plan_training_memory(const ModelConfig& c, const TrainMemoryInputs& in) {
  TrainMemoryPlan plan;
  const int64_t linear = linear_params_per_layer(c) * c.n_layers;
  const int64_t other = c.n_params() - linear;  // embeddings, head, norms stay bf16
  if (in.base == BaseWeights::Nf4) {
    // 4 bits per weight + one double-quantised 8-bit absmax per block (+ its fp32 second level).
    plan.base_weights = linear / 2 + linear / kNf4Block + linear / (kNf4Block * 256) * kF32 + other * kBf16;
  } else {
    plan.base_weights = (linear + other) * kBf16;
  }
  plan.lora = lora_param_count(c, in.lora_rank) * (4 * kF32 + kBf16);

  const int64_t tokens = in.batch_size * in.seq_len;  // policy main pass (the only one with grad)
  const int64_t per_layer = saved_bytes_per_token_per_layer(c, in.lora_rank);
  if (in.checkpointing == Checkpointing::On) {
    // Layer inputs for every layer, plus one layer's full set while it is recomputed.
    plan.activations = tokens * (c.n_layers * c.hidden_size * kBf16 + per_layer);
  } else {
    plan.activations = tokens * c.n_layers * per_layer;
  }
  // The no-grad passes (reference, KL) reuse one layer's working set, smaller than the above.
  plan.activations += tokens * c.hidden_size * kBf16 * 2;  // residual stream and its gradient

  const int64_t chunk = std::min(in.head_chunk_tokens, tokens);
  plan.head = chunk * c.vocab_size * kF32 * 2;
  plan.overhead = kOverheadBytes;
  return plan;
}

}  // namespace kto
