// `kto generate`: continue a prompt with the model, streaming text to stdout. Defaults come from
// generation_config.json as in transformers; greedy output equals `generate(do_sample=False)`,
// and with --adapter equals PEFT's PeftModel.generate (the LoRA path applied, not merged).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/app.h"
#include "export/hub_ensure.h"
#include "cli/sampling_flags.h"
#include "infer/generate.h"
#include "infer/inference_model.h"
#include "model/device.h"
#include "util/error.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct GenerateArgs {
  std::string device = "auto";
  std::string model, adapter, prompt;
  SamplingFlags sampling;
  bool no_special = false;
};

void run_generate(const GenerateArgs& args, const CLI::App& cmd) {
  hub_ensure_local(args.model, HubNeed::Model);  // hub ids not in the cache are pulled first
  hub_ensure_local(args.adapter, HubNeed::Adapter);
  const InferenceModel loaded = InferenceModel::load(args.model, args.adapter, device_resolve(args.device));
  const GenerateOptions options = sampling_flags_apply(args.sampling, cmd, loaded.generate_options());

  std::vector<int32_t> prompt =
      loaded.tokenizer.encode(args.prompt, args.no_special ? AddSpecial::No : AddSpecial::Yes);
  if (prompt.empty()) fail(ErrorKind::InvalidArgument, "the prompt encodes to no tokens; give a non-empty --prompt");

  GenerateResult result = generate(loaded.model, loaded.tokenizer, prompt, options, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  const double rate = result.decode_seconds > 0 ? static_cast<double>(result.tokens.size()) / result.decode_seconds : 0.0;
  log_info(prompt.size(), " prompt tokens, ", result.tokens.size(), " new tokens (", stop_reason_name(result.stop),
           "), ", static_cast<int64_t>(rate), " tokens/s");
}
}  // namespace

void add_generate_verb(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Continue a prompt with a model (streams the text)");
  cmd->add_option("-m,--model", args->model, "Model directory or hub id (HF cache)")->required();
  cmd->add_option("-a,--adapter", args->adapter, "Apply this PEFT LoRA adapter (directory or hub id) without merging");
  cmd->add_option("--device", args->device, "auto (the GPU when present), cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text")->required();
  sampling_flags_add(*cmd, args->sampling);
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS to the prompt");
  cmd->callback([args, cmd] { run_generate(*args, *cmd); });
}

}  // namespace kto::cli
