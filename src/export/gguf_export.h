// GGUF export of a decoder model (and of a LoRA adapter) for llama.cpp / Ollama, in-process:
// what `convert_hf_to_gguf.py --outtype f32|f16|bf16|q8_0` followed by `llama-quantize … Q4_K_M`
// produce, in one step. Architecture keys, llama.cpp tensor names, the Q/K row permutation of the
// llama architecture and per-tensor type choice: spec/formats.md §5; tokenizer keys:
// export/gguf_tokenizer.h; block encodings: export/gguf_quant.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "export/gguf_writer.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/weights.h"

namespace kto {

// --outtype values and the llama_ftype (general.file_type) each stands for.
enum class GgufOutType { F32, F16, BF16, Q8_0, Q4_K_M, Q5_K_M, Q6_K };
std::optional<GgufOutType> gguf_outtype_parse(std::string_view name);  // "f16", "q4_k_m", … (any case)
const char* gguf_outtype_name(GgufOutType type);                        // "f16", "q4_k_m", …
uint32_t gguf_file_type(GgufOutType type);  // 0, 1, 32, 7, 15, 17, 18

// The GGUF architecture for a model: llama (Llama, Mistral — as convert_hf_to_gguf maps
// MistralForCausalLM), qwen2, qwen3. Unsupported otherwise.
std::string gguf_arch(const ModelConfig& config);

// The role of a tensor for llama.cpp's per-tensor type choice (llama-quant.cpp).
enum class GgufTensorRole { TokenEmbd, Output, AttnQ, AttnK, AttnV, AttnOutput, FfnGate, FfnUp, FfnDown, Other };

// The ggml type a 2-D weight of `n_cols` columns gets in a file of `out` type, as
// convert_hf_to_gguf (f32/f16/bf16/q8_0) or llama_model_quantize without an importance matrix
// (q4_k_m, q5_k_m, q6_k: llama_tensor_get_type + tensor_type_fallback) choose it. `layer` is the
// block index (attn_v / ffn_down use_more_bits), `tied` whether the model has no output.weight.
GgmlType gguf_weight_type(GgufOutType out, GgufTensorRole role, int64_t layer, int64_t n_layers, int64_t n_cols,
                          bool tied);

struct GgufExportOptions {
  GgufOutType outtype = GgufOutType::F16;
  std::string output;  // the .gguf file to write
  std::string name;    // general.name; "" = the model directory's name
};

// Writes `weights` (HF names and shapes, f32; e.g. a merged adapter) of a model whose
// tokenizer and config files live in `model_dir`. Throws kto::Error (Unsupported, NotFound, Io).
void gguf_export_model(const ModelConfig& config, const Weights& weights, const std::string& model_dir,
                       const GgufExportOptions& options);

// A GGUF LoRA adapter as convert_lora_to_gguf writes it: general.type "adapter", adapter.type
// "lora", adapter.lora.alpha (alpha·√r for rsLoRA, since llama.cpp scales by alpha/rank),
// tensors <name>.weight.lora_a [in, r] and .lora_b [r, out] (B's rows permuted for q/k of the
// llama architecture) in `outtype` (f32, f16, bf16 or q8_0; LoRA tensors are never k-quantized).
void gguf_export_lora(const ModelConfig& config, const LoraAdapter& adapter, const std::string& output,
                      GgufOutType outtype, const std::string& name);

}  // namespace kto
