// The decoder program on one GPU (internal to model/gpu/): the same order of operations as the
// CPU reference (model/decoder_forward.cpp, decoder_backward.cpp), over bf16 device tensors the
// caller carves from planned arenas (gpu_arena.h). Three forms of the forward share one layer
// function: inference (one set of layer temporaries reused by every layer, the residual stream
// updated in place), training (every tensor the backward reads kept per layer, llm.c style) and
// KV-cache decoding (keys and values written straight into the cache).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backend/cuda/context.h"
#include "model/config.h"
#include "model/gpu/gpu_arena.h"
#include "model/gpu/gpu_weights.h"
#include "model/lora.h"

namespace kto {

// Recompute: a training layer's tensors carved once for every layer (the widest LoRA ranks), for
// gradient checkpointing's forward and the backward's recomputation.
enum class GpuPassKind { Inference, Training, Decode, Recompute };

// What every op of a pass reads besides its tensors.
struct GpuDecoder {
  CudaContext* ctx = nullptr;
  const ModelConfig* config = nullptr;
  const GpuWeights* weights = nullptr;
  const GpuLora* lora = nullptr;  // nullptr = the base model
};

// The packed batch on the device.
struct GpuPassInputs {
  int64_t n_tokens = 0;  // T
  Tensor tokens;         // [T] i32
  Tensor positions;      // [T] i32
  Tensor q_starts;       // [S+1] i32
  Tensor k_starts;       // [S+1] i32 (== q_starts except when decoding)
};

// One layer's tensors. In a training pass each is the layer's own (what the backward reads:
// x, x_norm1, q_raw/k_raw, q, k, v, attn, h_mid, x_norm2, gate, up, act, xa, mask); in an
// inference pass every layer shares one set and x, h_mid and next are the same residual buffer.
struct GpuLayerTensors {
  Tensor x;             // [T, D]      residual stream entering the layer
  Tensor x_norm1;       // [T, D]      input_layernorm output
  Tensor q_raw, k_raw;  // [T, H*Dh], [T, Hkv*Dh] before q/k norm (Qwen3, training), else == q, k
  Tensor q, k, v;       // [T, H*Dh], [T, Hkv*Dh] ×2 after norm and RoPE (decode: k, v are cache rows)
  Tensor attn;          // [T, H*Dh]   attention output
  Tensor h_mid;         // [T, D]      residual stream after attention
  Tensor x_norm2;       // [T, D]      post_attention_layernorm output
  Tensor gate, up, act; // [T, F] ×3   (inference: act == gate)
  Tensor next;          // [T, D]      residual stream after the layer (the next layer's x)
  std::array<Tensor, kLoraModuleCount> xa;    // [T, R] bf16 per wrapped module
  std::array<Tensor, kLoraModuleCount> mask;  // [T, in] bf16 dropout masks (training with dropout)
};

// Scratch a layer's forward needs beyond its tensors (shared by all layers).
struct GpuLayerScratch {
  Tensor o, down;     // [T, D] o_proj and down_proj outputs before the residual add
  Tensor lora_ws;     // u8, lora_linear_workspace_bytes_cuda for the widest input
};

// Carving (see gpu_arena.h: the same calls size the arenas). A training pass carves each layer's
// own tensors; an inference or decode pass one shared set (`layer` is then ignored).
GpuLayerTensors gpu_carve_layer(GpuArena& arena, const ModelConfig& config, const GpuLora* lora, int64_t layer,
                                int64_t n_tokens, GpuPassKind kind, bool with_masks);
// An inference or decode pass's shared tensors as layer `layer` uses them (its LoRA ranks).
GpuLayerTensors gpu_layer_view(const GpuLayerTensors& shared, const GpuLora* lora, int64_t layer);
GpuLayerScratch gpu_carve_layer_scratch(GpuArena& arena, const ModelConfig& config, const GpuLora* lora,
                                        int64_t n_tokens);
GpuPassInputs gpu_carve_inputs(GpuArena& arena, int64_t n_tokens, int64_t n_sequences);

// Keys and values assembled from two sources before the attention (a pass over completions
// whose prompts' keys and values were kept): k_all[r] = kept_k[index[r]] for index[r] >= 0, else
// the pass's own row t.k[-1 - index[r]]; the same for v.
struct GpuKeyAssembly {
  Tensor kept_k, kept_v;  // [P, Hkv*Dh] bf16, this layer's kept rows
  Tensor index;           // [ΣL] i32
};

// The layer's forward: reads t.x, writes t.next (and every other tensor of t). For decoding,
// t.k / t.v are the cache rows of the new tokens and k_all / v_all every cached row so far; with
// `assemble`, k_all / v_all are built as it says once t.k / t.v are computed.
void gpu_layer_forward(const GpuDecoder& d, int64_t layer, const GpuPassInputs& in, const GpuLayerTensors& t,
                       const GpuLayerScratch& scratch, const Tensor& k_all, const Tensor& v_all,
                       const GpuKeyAssembly* assemble = nullptr);

// Backward scratch: gradients of one layer's tensors, reused by every layer.
struct GpuBackwardScratch {
  Tensor d_h;                   // [T, D] ∂/∂residual stream
  Tensor d_x1, d_x2;            // [T, D]
  Tensor d_attn, d_q;           // [T, H*Dh]
  Tensor d_k, d_v;              // [T, Hkv*Dh]
  Tensor d_act, d_up;           // [T, F]
  Tensor attn_ws, lora_ws;      // u8
  Tensor norm_ws;               // u8, rms_norm_weight_backward's (full fine-tuning; T*H rows)
};
GpuBackwardScratch gpu_carve_backward(GpuArena& arena, const ModelConfig& config, const GpuLora* lora,
                                      int64_t n_tokens);

// One layer's backward (LoRA gradients into d.lora's d_a / d_b): d_h holds ∂/∂t.next on entry and
// ∂/∂t.x on return (layer 0 leaves it: the embedding is frozen).
void gpu_layer_backward(const GpuDecoder& d, int64_t layer, const GpuPassInputs& in, const GpuLayerTensors& t,
                        const GpuBackwardScratch& s);

// Full fine-tuning's layer backward: gradients of every weight of the layer, accumulated (fp32)
// into `grads` (shaped as the layer's weights); d_h as above, and also at layer 0 (the embedding
// is trained).
void gpu_layer_backward_full(const GpuDecoder& d, int64_t layer, const GpuPassInputs& in, const GpuLayerTensors& t,
                             const GpuBackwardScratch& s, const GpuLayerWeights& grads);

}  // namespace kto
