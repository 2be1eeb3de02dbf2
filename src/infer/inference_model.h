// InferenceModel: what generation and chat read from a model directory, loaded once: the
// weights, the tokenizer, generation_config.json's defaults and an optional PEFT LoRA adapter
// applied unmerged. Defaults mirror transformers' GenerationConfig (greedy unless do_sample;
// eos ids from generation_config.json, else config.json, else the tokenizer).
// Immutable once loaded: const methods and generation over it may run concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "infer/generate.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kto {

struct InferenceModel {
  std::string dir;  // the resolved model directory
  Model model;
  Tokenizer tokenizer;
  GenerationConfig generation;
  std::optional<LoraAdapter> adapter;

  // A local directory or a hub id in the HF cache; `adapter` likewise ("" = none); the model
  // runs on `device`. Throws kto::Error (NotFound, Format, Unsupported, Cuda) as Model::load and
  // lora_load_peft do.
  static InferenceModel load(const std::string& name_or_path, const std::string& adapter = "", DeviceChoice device = {});

  const LoraAdapter* lora() const { return adapter ? &*adapter : nullptr; }
  SamplingOptions default_sampling() const;  // generation_config.json's do_sample/temperature/top_k/top_p
  std::vector<int32_t> eos_ids() const;
  // default_sampling, eos_ids as stop ids and the adapter; max_new_tokens as given.
  GenerateOptions generate_options(int64_t max_new_tokens = 128) const;
};

}  // namespace kto
