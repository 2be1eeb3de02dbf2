// Qwen2 / Qwen2.5 (transformers Qwen2Config, Qwen2Attention): q/k/v always carry a bias (o_proj
// none, there is no attention_bias key); no default bos/eos; sliding windows only when
// use_sliding_window, on layers listed as "sliding_attention" (v5 `layer_types`) or, in older
// configs, on layers i >= max_window_layers.
#include "model/arch/arch.h"

namespace kto {

void qwen2_layer_windows(const ConfigJson& json, ModelConfig& config) {
  const size_t n = static_cast<size_t>(config.n_layers);
  config.layer_window.assign(n, 0);
  if (!json.get_bool("use_sliding_window", false)) return;
  if (json.json().contains("sliding_window") && !json.has("sliding_window")) return;  // null: none
  const int64_t window = json.get_int("sliding_window", 4096);
  const nlohmann::json* types = json.find("layer_types");
  if (!types) {
    const int64_t first = json.get_int("max_window_layers", 28);
    for (size_t i = 0; i < n; ++i) config.layer_window[i] = static_cast<int64_t>(i) >= first ? window : 0;
    return;
  }
  if (!types->is_array() || types->size() != n) {
    json.fail_key("layer_types", "must list one attention type per layer (" + std::to_string(n) + ")");
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& t = (*types)[i];
    const std::string type = t.is_string() ? t.get<std::string>() : std::string();
    if (type != "sliding_attention" && type != "full_attention") {
      json.fail_key("layer_types", "holds " + t.dump() + "; expected \"full_attention\" or \"sliding_attention\"");
    }
    config.layer_window[i] = type == "sliding_attention" ? window : 0;
  }
}

namespace {
void qwen2_defaults(ModelConfig& config) {
  config.max_position_embeddings = 32768;
  config.bos_token_id.reset();
  config.eos_token_ids.clear();
}

void qwen2_apply(const ConfigJson& json, ModelConfig& config) {
  config.qkv_bias = true;
  qwen2_layer_windows(json, config);
}
}  // namespace

const ArchSpec kArchQwen2 = {"qwen2", qwen2_defaults, qwen2_apply};

}  // namespace kto
