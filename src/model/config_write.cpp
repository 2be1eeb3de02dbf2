// ModelConfig → config.json for models kto creates itself (the demo's tiny Llama): the keys
// transformers' LlamaConfig.to_dict() writes that matter for loading, in its names.
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "util/error.h"

namespace kto {

nlohmann::json model_config_to_json(const ModelConfig& c) {
  if (c.model_type != "llama" || c.rope.type != RopeType::Default || c.qk_norm) {
    fail(ErrorKind::Unsupported, "writing config.json for model_type ", c.model_type,
         " is not supported; keep the model's original config.json");
  }
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"vocab_size", c.vocab_size},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.n_layers},
                      {"num_attention_heads", c.n_heads},
                      {"num_key_value_heads", c.n_heads_kv},
                      {"head_dim", c.head_dim},
                      {"hidden_act", "silu"},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"rms_norm_eps", c.rms_norm_eps},
                      {"rope_theta", c.rope.theta},
                      {"rope_scaling", nullptr},
                      {"attention_bias", c.qkv_bias},
                      {"mlp_bias", c.mlp_bias},
                      {"tie_word_embeddings", c.tie_word_embeddings},
                      {"torch_dtype", "float32"},
                      {"initializer_range", 0.02},
                      {"use_cache", true}};
  j["bos_token_id"] = c.bos_token_id ? nlohmann::json(*c.bos_token_id) : nlohmann::json(nullptr);
  j["pad_token_id"] = c.pad_token_id ? nlohmann::json(*c.pad_token_id) : nlohmann::json(nullptr);
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else j["eos_token_id"] = c.eos_token_ids;
  return j;
}

}  // namespace kto
