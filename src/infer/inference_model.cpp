// InferenceModel: loading a model (+ adapter) for generation and its generation_config defaults.
#include "infer/inference_model.h"

#include "formats/hf_cache.h"
#include "util/log.h"

namespace kto {

InferenceModel InferenceModel::load(const std::string& name_or_path, const std::string& adapter, DeviceChoice device) {
  const std::string dir = hf_resolve_model(name_or_path);
  InferenceModel loaded{dir, Model::load(dir, device), Tokenizer::load(dir), generation_config_load(dir), std::nullopt};
  if (!adapter.empty()) {
    std::string adapter_dir;
    try {
      adapter_dir = hf_resolve_model(adapter);
    } catch (const Error& e) {
      throw Error(e.kind(), str_cat("adapter ", adapter, ": ", e.what()));
    }
    loaded.adapter = lora_load_peft(adapter_dir, loaded.model.config());
    log_debug("LoRA adapter ", adapter, ": rank ", loaded.adapter->config.rank, ", scale ", loaded.adapter->scale());
  }
  return loaded;
}

SamplingOptions InferenceModel::default_sampling() const {
  SamplingOptions s;
  if (generation.do_sample) {
    s.temperature = generation.temperature.value_or(1.0);
    s.top_k = generation.top_k.value_or(50);  // transformers' default top_k
    s.top_p = generation.top_p.value_or(1.0);
  }
  return s;
}

std::vector<int32_t> InferenceModel::eos_ids() const {
  const std::vector<int64_t>& from =
      !generation.eos_token_ids.empty() ? generation.eos_token_ids : model.config().eos_token_ids;
  std::vector<int32_t> ids(from.begin(), from.end());
  if (ids.empty() && tokenizer.eos_id()) ids.push_back(*tokenizer.eos_id());
  return ids;
}

GenerateOptions InferenceModel::generate_options(int64_t max_new_tokens) const {
  GenerateOptions options;
  options.sampling = default_sampling();
  options.max_new_tokens = max_new_tokens;
  options.stop_ids = eos_ids();
  options.adapter = lora();
  return options;
}

}  // namespace kto
