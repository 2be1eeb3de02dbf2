// The decoder's forward program over a packed batch (DESIGN.md §3): embedding → L × (RMSNorm →
// attention with RoPE, GQA, optional bias / q-k norm / sliding window → residual → RMSNorm →
// SwiGLU MLP → residual) → final RMSNorm. Mirrors transformers' LlamaModel.forward and its
// Mistral / Qwen2 / Qwen3 variants, with an optional PEFT LoRA adapter on the projections.
// fp32, CPU backend. The training forward also keeps, in DecoderSaved, exactly the tensors
// model/decoder_backward.cpp needs (llm.c style); the backward lives there.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/lora.h"
#include "model/memory_plan.h"
#include "model/packed_batch.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace kto {

struct DeviceKvCache;  // an accelerator's cache (model/gpu/gpu_model.h)

// Keys and values of one sequence's past tokens, per layer (after k-norm and RoPE): on the host
// (k, v) for the CPU reference, on the device (`device`) for a model on an accelerator.
struct KvCache {
  int64_t capacity = 0;  // tokens it can hold
  int64_t n_tokens = 0;  // tokens held so far (the next token's position)
  std::vector<HostTensor> k;  // L × [capacity, Hkv*Dh] f32
  std::vector<HostTensor> v;  // L × [capacity, Hkv*Dh] f32
  std::shared_ptr<DeviceKvCache> device;
};

KvCache kv_cache_new(const ModelConfig& config, int64_t capacity);

// What the forward reads; all owned by the caller (Model).
struct Decoder {
  const ModelConfig* config = nullptr;
  const Weights* weights = nullptr;
  Tensor inv_freq;  // [Dh/2] f32 RoPE frequencies, scaling applied
  const LoraAdapter* lora = nullptr;  // optional; nullptr = the base model (KTO's reference)
};

// Final-normed hidden states [T, D] f32 of a validated packed batch. With a cache, the batch
// must be one sequence continuing the cached one (positions cache->n_tokens …); its keys and
// values are appended and n_tokens advances. Without one (nullptr), sequences attend only to
// themselves.
HostTensor decoder_forward(const Decoder& decoder, const PackedBatch& batch, KvCache* cache);

// What one LoRA-wrapped projection's backward needs beyond its input.
struct LoraSaved {
  HostTensor xa;            // [T, R] f32, dropout(x) · Aᵀ
  HostTensor dropout_mask;  // [T, in] f32, only when lora_dropout > 0
};

// The tensors one layer's backward reads (T tokens of the packed batch).
struct LayerSaved {
  HostTensor x;             // [T, D]     residual stream entering the layer (input_layernorm input)
  HostTensor x_norm1;       // [T, D]     input_layernorm output (q/k/v input)
  HostTensor q_raw, k_raw;  // [T, H*Dh], [T, Hkv*Dh] q/k before q/k-norm (Qwen3 only, else empty)
  HostTensor q, k, v;       // [T, H*Dh], [T, Hkv*Dh] ×2 attention inputs (after norm and RoPE)
  HostTensor attn;          // [T, H*Dh]  attention output (o_proj input)
  HostTensor h_mid;         // [T, D]     residual stream after attention (post_attention_layernorm input)
  HostTensor x_norm2;       // [T, D]     post_attention_layernorm output (gate/up input)
  HostTensor gate, up;      // [T, F] ×2  gate_proj / up_proj outputs
  HostTensor act;           // [T, F]     silu(gate) * up (down_proj input)
  std::array<LoraSaved, kLoraModuleCount> lora;  // per LoraModule; empty when not wrapped
};

struct DecoderSaved {
  std::vector<LayerSaved> layers;  // [L]
  HostTensor x_final;              // [T, D] residual stream before the final norm
  HostTensor hidden;               // [T, D] final-normed hidden states (the head's input)
};

struct DecoderTrainOptions {
  uint64_t dropout_seed = 0;  // LoRA dropout masks derive from (seed, layer, module); unused when p = 0
  // On: keep only each layer's input and recompute the layer in the backward (TRL's
  // gradient_checkpointing). Honoured on the GPU; the CPU reference always keeps everything.
  Checkpointing checkpointing = Checkpointing::Off;
};

// The training forward of a validated packed batch (no cache): the same program as
// decoder_forward with decoder.lora applied in training mode (dropout on), keeping what the
// backward needs in `saved` (saved.hidden is the result).
void decoder_forward_train(const Decoder& decoder, const PackedBatch& batch, const DecoderTrainOptions& options,
                           DecoderSaved& saved);

}  // namespace kto
