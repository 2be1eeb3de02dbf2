// Shared generation flags: registration and application over generation_config.json defaults.
#include "cli/sampling_flags.h"

#include <CLI/CLI.hpp>

namespace kto::cli {

void sampling_flags_add(CLI::App& cmd, SamplingFlags& flags) {
  cmd.add_option("-n,--max-new-tokens", flags.max_new_tokens, "Most tokens to generate (per answer)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--temperature", flags.temperature, "Sampling temperature; 0 = greedy")->check(CLI::NonNegativeNumber);
  cmd.add_option("--top-k", flags.top_k, "Sample only from the k most likely tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--top-p", flags.top_p, "Nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--seed", flags.seed, "Random seed for sampling");
  cmd.add_flag("--greedy", flags.greedy, "Always take the most likely token (overrides sampling)");
}

GenerateOptions sampling_flags_apply(const SamplingFlags& flags, const CLI::App& cmd, GenerateOptions defaults) {
  GenerateOptions options = std::move(defaults);
  options.max_new_tokens = flags.max_new_tokens;
  SamplingOptions& s = options.sampling;
  s.seed = flags.seed;
  if (cmd.count("--temperature")) s.temperature = flags.temperature;
  if (cmd.count("--top-k")) s.top_k = flags.top_k;
  if (cmd.count("--top-p")) s.top_p = flags.top_p;
  if (flags.greedy) s.temperature = 0.0;
  return options;
}

}  // namespace kto::cli
