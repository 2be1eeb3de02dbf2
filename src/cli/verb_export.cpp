// `kto export gguf` (a model, optionally with a LoRA adapter merged in, as a GGUF file for
// llama.cpp plus an Ollama Modelfile) and `kto export gguf-lora` (a GGUF LoRA adapter), written
// in-process (export/gguf_export.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "cli/app.h"
#include "export/gguf_export.h"
#include "export/merge.h"
#include "formats/hf_cache.h"
#include "model/model.h"
#include "util/error.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct ExportArgs {
  std::string model, adapter, output, outtype = "f16", name;
};

GgufOutType parse_outtype(const std::string& s, const char* choices) {
  std::optional<GgufOutType> t = gguf_outtype_parse(s);
  if (!t) fail(ErrorKind::InvalidArgument, "--outtype ", s, ": expected one of ", choices);
  return *t;
}

std::string dir_name(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().filename().string();
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

void run_gguf(const ExportArgs& args) {
  const GgufOutType outtype = parse_outtype(args.outtype, "f32, f16, bf16, q8_0, q4_k_m, q5_k_m, q6_k");
  const std::string dir = hf_resolve_model(args.model);
  Model model = Model::load(dir);
  if (weights_have_nf4(model.weights())) {
    log_info(dir, " holds bitsandbytes 4-bit (NF4) projections: dequantising them to f32 before exporting, as "
             "PEFT's merge_and_unload does on a 4-bit base");
    weights_dequantize_nf4(model.mutable_weights());
  }
  if (!args.adapter.empty()) {
    const LoraAdapter adapter = lora_load_peft(hf_resolve_model(args.adapter), model.config());
    log_info("merging the LoRA adapter ", args.adapter, " (scale ", adapter.config.scale(), ") before export");
    merge_lora_into(model.mutable_weights(), adapter);
  }
  GgufExportOptions options;
  options.outtype = outtype;
  options.name = args.name.empty() ? dir_name(args.adapter.empty() ? dir : args.adapter) : args.name;
  options.output = args.output.empty() ? options.name + "-" + upper(args.outtype) + ".gguf" : args.output;
  gguf_export_model(model.config(), model.weights(), dir, options);
}

void run_gguf_lora(const ExportArgs& args) {
  const GgufOutType outtype = parse_outtype(args.outtype, "f32, f16, bf16, q8_0");
  const ModelConfig config = model_config_load(hf_resolve_model(args.model));
  const std::string adapter_dir = hf_resolve_model(args.adapter);
  const LoraAdapter adapter = lora_load_peft(adapter_dir, config);
  const std::string name = args.name.empty() ? dir_name(adapter_dir) : args.name;
  const std::string output = args.output.empty() ? name + "-LoRA-" + upper(args.outtype) + ".gguf" : args.output;
  gguf_export_lora(config, adapter, output, outtype, name);
}
}  // namespace

void add_export_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Export a model or adapter for llama.cpp / Ollama (GGUF)");
  cmd->require_subcommand(1);

  auto g = std::make_shared<ExportArgs>();
  auto* gguf = cmd->add_subcommand("gguf", "Write a GGUF model (+ an Ollama Modelfile beside it)");
  gguf->add_option("-m,--model", g->model, "Model directory or hub id (HF cache)")->required();
  gguf->add_option("-a,--adapter", g->adapter, "Merge this PEFT LoRA adapter into the model first");
  gguf->add_option("--outtype", g->outtype, "f32, f16 (default), bf16, q8_0, q4_k_m, q5_k_m or q6_k");
  gguf->add_option("-o,--output", g->output, "The .gguf file (default NAME-OUTTYPE.gguf in the current directory)");
  gguf->add_option("--name", g->name, "general.name (default: the model or adapter directory's name)");
  gguf->callback([g] { run_gguf(*g); });

  auto l = std::make_shared<ExportArgs>();
  auto* lora = cmd->add_subcommand("gguf-lora", "Write a PEFT LoRA adapter as a GGUF adapter (llama.cpp --lora)");
  lora->add_option("-a,--adapter", l->adapter, "PEFT LoRA adapter directory or hub id")->required();
  lora->add_option("-m,--model", l->model, "Its base model (only config.json is read)")->required();
  lora->add_option("--outtype", l->outtype, "f32, f16 (default), bf16 or q8_0");
  lora->add_option("-o,--output", l->output, "The .gguf file (default NAME-LoRA-OUTTYPE.gguf)");
  lora->add_option("--name", l->name, "general.name (default: the adapter directory's name)");
  lora->callback([l] { run_gguf_lora(*l); });
}

}  // namespace kto::cli
