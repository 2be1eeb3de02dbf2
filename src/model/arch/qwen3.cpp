// Qwen3 (transformers Qwen3Config, Qwen3Attention): Qwen2's defaults and sliding windows, but
// head_dim defaults to 128 (not hidden/heads), `attention_bias` switches q/k/v/o biases, and a
// per-head RMSNorm (q_norm, k_norm, weight [head_dim]) runs on q and k before RoPE.
#include "model/arch/arch.h"

namespace kto {

namespace {
void qwen3_defaults(ModelConfig& config) {
  kArchQwen2.set_defaults(config);
  config.head_dim = 128;
}

void qwen3_apply(const ConfigJson& json, ModelConfig& config) {
  config.qkv_bias = config.o_bias = json.get_bool("attention_bias", false);
  config.qk_norm = true;
  qwen2_layer_windows(json, config);
}
}  // namespace

const ArchSpec kArchQwen3 = {"qwen3", qwen3_defaults, qwen3_apply};

}  // namespace kto
