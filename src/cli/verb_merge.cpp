// `kto merge`: a PEFT LoRA adapter merged into its base model and saved as a complete Hugging
// Face checkpoint (export/merge.h: PEFT merge_and_unload + transformers save_pretrained).
#include <CLI/CLI.hpp>

#include "cli/app.h"
#include "export/merge.h"
#include "formats/hf_cache.h"
#include "model/model.h"
#include "util/error.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct MergeArgs {
  std::string model, adapter, output, dtype, max_shard_size = "5GB";
};

void run_merge(const MergeArgs& args) {
  const std::string dir = hf_resolve_model(args.model);
  Model model = Model::load(dir);
  if (weights_have_nf4(model.weights())) {
    log_info(dir, " holds bitsandbytes 4-bit (NF4) projections: dequantising them to f32 before merging, as "
             "PEFT's merge_and_unload does on a 4-bit base");
    weights_dequantize_nf4(model.mutable_weights());
  }
  const LoraAdapter adapter = lora_load_peft(hf_resolve_model(args.adapter), model.config());
  MergeOptions options;
  options.output_dir = args.output;
  options.base_model = args.model;
  options.adapter = args.adapter;
  options.max_shard_bytes = merge_parse_size(args.max_shard_size);
  if (args.dtype.empty()) {
    options.dtype = merge_dtype_default(model.config());
  } else if (std::optional<MergeDtype> d = merge_dtype_parse(args.dtype)) {
    options.dtype = *d;
  } else {
    fail(ErrorKind::InvalidArgument, "--dtype ", args.dtype, ": expected bf16, f16 or f32");
  }
  log_info("merging ", args.adapter, " (r = ", adapter.config.rank, ", alpha = ", adapter.config.alpha,
           adapter.config.use_rslora ? ", rsLoRA" : "", ", scale ", adapter.config.scale(), ") into ", args.model);
  merge_lora_into(model.mutable_weights(), adapter);
  merge_save_checkpoint(model.config(), model.weights(), dir, options);
}
}  // namespace

void add_merge_verb(CLI::App& app) {
  auto args = std::make_shared<MergeArgs>();
  auto* cmd = app.add_subcommand("merge", "Merge a LoRA adapter into its base model and save a Hugging Face checkpoint");
  cmd->add_option("-m,--model", args->model, "Base model directory or hub id (HF cache)")->required();
  cmd->add_option("-a,--adapter", args->adapter, "PEFT LoRA adapter directory or hub id")->required();
  cmd->add_option("-o,--output", args->output, "Directory to write the merged checkpoint to")->required();
  cmd->add_option("--dtype", args->dtype, "bf16, f16 or f32 (default: the base model's dtype, else bf16)");
  cmd->add_option("--max-shard-size", args->max_shard_size, "Largest safetensors shard, e.g. 5GB, 500MB (default 5GB)");
  cmd->callback([args] { run_merge(*args); });
}

}  // namespace kto::cli
