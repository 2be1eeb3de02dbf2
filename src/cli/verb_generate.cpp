// `kto generate`: continue a prompt with the model, streaming text to stdout. Defaults come from
// generation_config.json as in transformers; greedy output equals `generate(do_sample=False)`.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/app.h"
#include "formats/hf_cache.h"
#include "infer/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct GenerateArgs {
  std::string model, prompt;
  int64_t max_new_tokens = 128;
  double temperature = 0.0, top_p = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 42;
  bool greedy = false;
  bool no_special = false;
};

// Sampling settings: the model's generation_config.json, overridden by any flag given.
SamplingOptions sampling_options(const GenerateArgs& args, const GenerationConfig& gen, const CLI::App& cmd) {
  SamplingOptions s;
  s.seed = args.seed;
  if (gen.do_sample) {
    s.temperature = gen.temperature.value_or(1.0);
    s.top_k = gen.top_k.value_or(50);  // transformers' default top_k
    s.top_p = gen.top_p.value_or(1.0);
  }
  if (cmd.count("--temperature")) s.temperature = args.temperature;
  if (cmd.count("--top-k")) s.top_k = args.top_k;
  if (cmd.count("--top-p")) s.top_p = args.top_p;
  if (args.greedy) s.temperature = 0.0;
  return s;
}

std::vector<int32_t> stop_ids(const ModelConfig& config, const GenerationConfig& gen, const Tokenizer& tokenizer) {
  const std::vector<int64_t>& from = !gen.eos_token_ids.empty() ? gen.eos_token_ids : config.eos_token_ids;
  std::vector<int32_t> ids(from.begin(), from.end());
  if (ids.empty() && tokenizer.eos_id()) ids.push_back(*tokenizer.eos_id());
  return ids;
}

void run_generate(const GenerateArgs& args, const CLI::App& cmd) {
  const std::string dir = hf_resolve_model(args.model);
  Tokenizer tokenizer = Tokenizer::load(dir);
  Model model = Model::load(dir);
  const GenerationConfig gen = generation_config_load(dir);

  GenerateOptions options;
  options.sampling = sampling_options(args, gen, cmd);
  options.max_new_tokens = args.max_new_tokens;
  options.stop_ids = stop_ids(model.config(), gen, tokenizer);

  std::vector<int32_t> prompt = tokenizer.encode(args.prompt, args.no_special ? AddSpecial::No : AddSpecial::Yes);
  if (prompt.empty()) fail(ErrorKind::InvalidArgument, "the prompt encodes to no tokens; give a non-empty --prompt");

  GenerateResult result = generate(model, tokenizer, prompt, options, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  const char* why = result.stop == StopReason::EndOfSequence ? "end of sequence"
                    : result.stop == StopReason::MaxTokens   ? "max new tokens"
                                                             : "context full";
  const double rate = result.decode_seconds > 0 ? static_cast<double>(result.tokens.size()) / result.decode_seconds : 0.0;
  log_info(prompt.size(), " prompt tokens, ", result.tokens.size(), " new tokens (", why, "), ",
           static_cast<int64_t>(rate), " tokens/s");
}
}  // namespace

void add_generate_verb(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Continue a prompt with a model (streams the text)");
  cmd->add_option("-m,--model", args->model, "Model directory or hub id (HF cache)")->required();
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text")->required();
  cmd->add_option("-n,--max-new-tokens", args->max_new_tokens, "Most tokens to generate")->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", args->temperature, "Sampling temperature; 0 = greedy")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", args->top_k, "Sample only from the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", args->seed, "Random seed for sampling");
  cmd->add_flag("--greedy", args->greedy, "Always take the most likely token (overrides sampling)");
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS to the prompt");
  cmd->callback([args, cmd] { run_generate(*args, *cmd); });
}

}  // namespace kto::cli
