// The generation flags `kto generate` and `kto chat` share (--max-new-tokens, --temperature,
// --top-k, --top-p, --seed, --greedy): registered on a CLI11 subcommand and applied over the
// model's generation_config.json defaults, so that a flag given always wins.
#pragma once

#include <cstdint>

#include "infer/generate.h"

namespace CLI {
class App;
}

namespace kto::cli {

struct SamplingFlags {
  int64_t max_new_tokens = 128;
  double temperature = 0.0, top_p = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 42;
  bool greedy = false;
};

// Adds the flags to `cmd`, storing into `flags` (which must outlive parsing).
void sampling_flags_add(CLI::App& cmd, SamplingFlags& flags);

// `defaults` (InferenceModel::generate_options) with every flag the user gave applied.
GenerateOptions sampling_flags_apply(const SamplingFlags& flags, const CLI::App& cmd, GenerateOptions defaults);

}  // namespace kto::cli
