// The decoder's forward program over a packed batch (DESIGN.md §3): embedding → L × (RMSNorm →
// attention with RoPE, GQA, optional bias / q-k norm / sliding window → residual → RMSNorm →
// SwiGLU MLP → residual) → final RMSNorm. Mirrors transformers' LlamaModel.forward and its
// Mistral / Qwen2 / Qwen3 variants. Forward only, fp32, CPU backend; the backward lives
// elsewhere.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/packed_batch.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace kto {

// Keys and values of one sequence's past tokens, per layer (after k-norm and RoPE).
struct KvCache {
  int64_t capacity = 0;  // tokens it can hold
  int64_t n_tokens = 0;  // tokens held so far (the next token's position)
  std::vector<HostTensor> k;  // L × [capacity, Hkv*Dh] f32
  std::vector<HostTensor> v;  // L × [capacity, Hkv*Dh] f32
};

KvCache kv_cache_new(const ModelConfig& config, int64_t capacity);

// What the forward reads; all owned by the caller (Model).
struct Decoder {
  const ModelConfig* config = nullptr;
  const Weights* weights = nullptr;
  Tensor inv_freq;  // [Dh/2] f32 RoPE frequencies, scaling applied
};

// Final-normed hidden states [T, D] f32 of a validated packed batch. With a cache, the batch
// must be one sequence continuing the cached one (positions cache->n_tokens …); its keys and
// values are appended and n_tokens advances. Without one (nullptr), sequences attend only to
// themselves.
HostTensor decoder_forward(const Decoder& decoder, const PackedBatch& batch, KvCache* cache);

}  // namespace kto
