// Mistral (transformers MistralConfig / MistralAttention): Llama without any biases, plus one
// sliding window for every layer. `sliding_window` absent means the class default 4096; null
// means full attention (v0.2+).
#include "model/arch/arch.h"

namespace kto {

namespace {
void mistral_defaults(ModelConfig& config) {
  config.max_position_embeddings = 4096 * 32;
}

void mistral_apply(const ConfigJson& json, ModelConfig& config) {
  int64_t window = 0;
  if (!json.json().contains("sliding_window")) {
    window = 4096;
  } else if (auto w = json.opt_int("sliding_window")) {
    window = *w;
  }
  config.layer_window.assign(static_cast<size_t>(config.n_layers), window);
}
}  // namespace

const ArchSpec kArchMistral = {"mistral", mistral_defaults, mistral_apply};

}  // namespace kto
