// Training-memory estimate for one GPU: base weights, LoRA parameters with their gradients and
// AdamW states, saved activations of the policy's main pass, the chunked log-prob head and a
// fixed runtime overhead. `kto inspect` prints it; the CUDA trainer (issue #5/#7) plans its
// arena from the same function and checks it against what it measures.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace kto {

enum class BaseWeights { Bf16, Nf4 };
enum class Checkpointing { Off, On };

struct TrainMemoryInputs {
  BaseWeights base = BaseWeights::Bf16;
  Checkpointing checkpointing = Checkpointing::On;
  int64_t lora_rank = 16;             // LoRA on all seven projections
  int64_t batch_size = 8;             // sequences per micro-batch (each also has a KL sequence)
  int64_t seq_len = 1024;             // tokens per sequence
  int64_t head_chunk_tokens = 1024;   // rows of the log-prob head computed at once
};

struct TrainMemoryPlan {  // bytes
  int64_t base_weights = 0;
  int64_t lora = 0;         // fp32 master weights + gradients + AdamW m and v, and a bf16 copy
  int64_t activations = 0;  // saved for the backward of the policy pass on the main sequences
  int64_t head = 0;         // fp32 logits chunk and its gradient
  int64_t overhead = 0;     // CUDA context, cuBLAS workspaces (a measured constant, estimate)
  int64_t total() const { return base_weights + lora + activations + head + overhead; }
};

int64_t lora_param_count(const ModelConfig& config, int64_t rank);
TrainMemoryPlan plan_training_memory(const ModelConfig& config, const TrainMemoryInputs& inputs);

}  // namespace kto
