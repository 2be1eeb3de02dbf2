// ModelConfig: one description of a decoder-only transformer, filled from a Hugging Face
// config.json (transformers' LlamaConfig / MistralConfig / Qwen2Config / Qwen3Config).
// Architecture differences live in model/arch/<name>.cpp; this header is the common shape.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kto {

enum class RopeType { Default, Linear, Llama3 };

// RoPE frequencies as transformers' `ROPE_INIT_FUNCTIONS` compute them (formats.md §2.3).
struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double factor = 1.0;              // linear, llama3
  double low_freq_factor = 1.0;     // llama3
  double high_freq_factor = 4.0;    // llama3
  int64_t original_max_position = 8192;  // llama3
};

struct ModelConfig {
  std::string model_type;    // "llama", "mistral", "qwen2", "qwen3"
  std::string architecture;  // architectures[0], e.g. "LlamaForCausalLM"
  std::string source;        // path of the config.json it came from (for messages)

  int64_t vocab_size = 0;         // V
  int64_t hidden_size = 0;        // D
  int64_t intermediate_size = 0;  // F
  int64_t n_layers = 0;           // L
  int64_t n_heads = 0;            // H
  int64_t n_heads_kv = 0;         // Hkv (defaults to H)
  int64_t head_dim = 0;           // Dh (explicit head_dim, else D / H)
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;

  bool qkv_bias = false;     // Qwen2 always; Llama/Mistral when attention_bias
  bool o_bias = false;       // Llama attention_bias also puts a bias on o_proj
  bool mlp_bias = false;
  bool qk_norm = false;      // Qwen3: RMSNorm over each head of q and k before RoPE
  bool tie_word_embeddings = false;
  // Sliding-window size per layer; 0 = full causal attention. Key j is visible from query i
  // (same sequence) when i - window < j <= i, as in transformers' sliding-window mask.
  std::vector<int64_t> layer_window;

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json may hold an int or a list
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype;  // "bfloat16", "float32", … ("dtype" in newer configs), may be empty

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_heads_kv * head_dim; }
  int64_t n_params() const;  // parameter count of the base model (tied head counted once)
};

// Parses a config.json object. `source` names the file in error messages. Throws kto::Error:
// Unsupported for an unknown model_type, Format for a missing or ill-typed required field.
ModelConfig model_config_from_json(const nlohmann::json& json, const std::string& source);
// Reads DIR/config.json.
ModelConfig model_config_load(const std::string& model_dir);
// The config.json transformers' LlamaConfig.save_pretrained writes for `config` (llama only,
// default RoPE, float32; what model_config_from_json reads back to the same ModelConfig).
// Unsupported for other model types: copy their original config.json instead.
nlohmann::json model_config_to_json(const ModelConfig& config);

// RoPE inverse frequencies, head_dim/2 values: inv_freq[k] = 1 / theta^(2k/head_dim) (the
// exponent rounded to f32 as transformers' int64 arange → float does), then scaled for linear
// and llama3 (spec/formats.md §2.3). transformers keeps them as f32: the values here round to its
// `rotary_emb.inv_freq` within an ulp or two.
std::vector<double> rope_inv_freq(const ModelConfig& config);

// Sampling defaults and stop tokens from generation_config.json (all optional).
struct GenerationConfig {
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> pad_token_id;
  bool do_sample = false;
  std::optional<double> temperature, top_p;
  std::optional<int64_t> top_k, max_new_tokens;
};
// Reads DIR/generation_config.json; a missing file gives the defaults.
GenerationConfig generation_config_load(const std::string& model_dir);

}  // namespace kto
