// Llama 2 / 3 / 3.x (transformers LlamaConfig, LlamaAttention, LlamaMLP): the base every other
// architecture is described against. Its defaults are ModelConfig's; only the bias switches are
// Llama-specific (`attention_bias` puts a bias on q/k/v/o, `mlp_bias` on gate/up/down).
#include "model/arch/arch.h"

namespace kto {

namespace {
void llama_defaults(ModelConfig&) {}

void llama_apply(const ConfigJson& json, ModelConfig& config) {
  config.qkv_bias = config.o_bias = json.get_bool("attention_bias", false);
  config.mlp_bias = json.get_bool("mlp_bias", false);
}
}  // namespace

const ArchSpec kArchLlama = {"llama", llama_defaults, llama_apply};

}  // namespace kto
