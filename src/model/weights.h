// Weights: every tensor of a Hugging Face decoder checkpoint as f32 host tensors, named and
// shaped as transformers' LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM /
// Qwen3ForCausalLM state dicts (spec/formats.md §1.5). Loading validates every shape against
// the ModelConfig; a tied head (tie_word_embeddings, or no lm_head.weight) reuses the embedding.
// The seven projections may instead be NF4 (bitsandbytes Linear4bit: quantised on load with
// load_in_4bit, or read from a pre-quantised "-bnb-4bit" checkpoint); embeddings, norms, biases and
// the head stay dense, as bitsandbytes leaves them.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "model/config.h"
#include "tensor/nf4.h"
#include "tensor/tensor.h"

namespace kto {

class SafetensorsCheckpoint;

constexpr size_t kProjectionCount = 7;  // q, k, v, o, gate, up, down (= kLoraModuleCount)

// One decoder layer. Optional tensors (biases, q/k norms) are empty() when the config has none.
struct LayerWeights {
  HostTensor input_norm;           // [D]      input_layernorm.weight
  HostTensor q_proj, q_bias;       // [H*Dh, D], [H*Dh]
  HostTensor k_proj, k_bias;       // [Hkv*Dh, D], [Hkv*Dh]
  HostTensor v_proj, v_bias;       // [Hkv*Dh, D], [Hkv*Dh]
  HostTensor o_proj, o_bias;       // [D, H*Dh], [D]
  HostTensor q_norm, k_norm;       // [Dh] each (Qwen3)
  HostTensor post_attention_norm;  // [D]      post_attention_layernorm.weight
  HostTensor gate_proj, gate_bias; // [F, D], [F]
  HostTensor up_proj, up_bias;     // [F, D], [F]
  HostTensor down_proj, down_bias; // [D, F], [D]
  // Projections held in NF4, indexed in LoraModule order (q, k, v, o, gate, up, down). When
  // nf4[i] is set, the dense member of projection i above is empty.
  std::array<Nf4Tensor, kProjectionCount> nf4;

  HostTensor& projection(size_t index);  // the dense member of projection `index` (LoraModule order)
  const HostTensor& projection(size_t index) const;
  int64_t projection_rows(size_t index) const;  // N of projection `index`, dense or NF4
};

// A parameter's HF state-dict name and a view of its data.
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct Weights {
  HostTensor embed;          // [V, D]  model.embed_tokens.weight
  std::vector<LayerWeights> layers;
  HostTensor final_norm;     // [D]     model.norm.weight
  HostTensor lm_head;        // [V, D]  lm_head.weight; empty when tied to the embedding

  // The output projection: lm_head, or the embedding when tied.  [V, D] f32
  Tensor head() const { return lm_head.empty() ? embed.view() : lm_head.view(); }
  bool head_tied() const { return lm_head.empty(); }
  // Every parameter by HF name, in state-dict order; a tied head appears once, as the embedding.
  std::vector<NamedTensor> parameters() const;
};

struct WeightsLoadOptions {
  bool load_in_4bit = false;  // quantise every dense projection to NF4 as it is read (one at a time)
  Nf4QuantizeOptions nf4;     // blocksize / double_quant for load_in_4bit (dtype: the tensor's own)
};

// Reads every tensor the config calls for from `checkpoint`, converting F32/BF16/F16 to f32;
// a projection stored as a bitsandbytes 4-bit layer (formats/bnb4.h) is read as NF4.
// Throws kto::Error(Format) naming the tensor, the expected and the actual shape on a mismatch,
// or a missing tensor. Tensors the config does not use are reported with a warning and skipped.
Weights weights_load(const ModelConfig& config, const SafetensorsCheckpoint& checkpoint,
                     const WeightsLoadOptions& options = {});

// Quantises every dense projection to NF4 in place (bitsandbytes quantize_4bit; its dense
// tensor is freed). Projections already in NF4 are kept.
void weights_quantize_nf4(Weights& weights, const Nf4QuantizeOptions& options);
// Replaces every NF4 projection by its dequantised f32 values (for merging or exporting).
void weights_dequantize_nf4(Weights& weights);
// True when any projection is NF4.
bool weights_have_nf4(const Weights& weights);

// Zero-filled tensors of the same shapes (full fine-tuning's gradient buffers and optimizer
// moments); tensors empty in `weights` stay empty. parameters() of the result lists the same
// names in the same order.
Weights weights_zeros_like(const Weights& weights);
// A deep copy (e.g. to merge an adapter into, leaving the original untouched).
Weights weights_copy(const Weights& weights);
// Every parameter as F32 under its HF state-dict name in one `model.safetensors` file, as
// transformers' save_pretrained writes an unsharded float32 checkpoint (a tied head is not
// written; metadata {"format": "pt"}). Throws kto::Error(Io).
void weights_save_safetensors(const Weights& weights, const std::string& path);

}  // namespace kto
