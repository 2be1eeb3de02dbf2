// `kto push DIR ORG/NAME`: upload a folder (an adapter, a merged model) to the Hugging Face Hub
// as one commit, creating the repository when needed (export/hub_push.h).
#include <CLI/CLI.hpp>
#include <cstdio>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/app.h"
#include "export/gguf_export.h"
#include "export/hub_ensure.h"
#include "export/hub_env.h"
#include "export/hub_push.h"
#include "export/merge.h"
#include "model/model.h"
#include "util/files.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct PushArgs {
  std::string dir, id, revision = "main", message, repo_type = "model", gguf;
  bool private_repo = false, with_checkpoints = false;
};

// --gguf TYPES: the model in DIR — or, when DIR holds a PEFT adapter, its base model with the
// adapter merged — written into DIR as NAME-TYPE.gguf (+ the Ollama Modelfile) for each type, so
// that the commit carries them (as `kto export gguf` writes them).
void export_gguf_files(const PushArgs& args) {
  std::vector<GgufOutType> types;
  std::stringstream list(args.gguf);
  for (std::string t; std::getline(list, t, ',');) {
    const std::optional<GgufOutType> type = gguf_outtype_parse(t);
    if (!type) fail(ErrorKind::InvalidArgument, "--gguf ", t, ": expected f32, f16, bf16, q8_0, q4_k_m, q5_k_m or q6_k");
    types.push_back(*type);
  }
  const bool is_model = file_exists(path_join(args.dir, "config.json"));
  const std::string adapter_config = path_join(args.dir, "adapter_config.json");
  if (!is_model && !file_exists(adapter_config)) {
    fail(ErrorKind::InvalidArgument, "--gguf: ", args.dir, " holds neither a model (config.json) nor a PEFT adapter "
         "(adapter_config.json)");
  }
  std::string base_dir = args.dir;
  if (!is_model) {
    const std::string base = json_read_file(adapter_config).value("base_model_name_or_path", "");
    if (base.empty()) fail(ErrorKind::Format, adapter_config, ": no base_model_name_or_path to merge the adapter into");
    base_dir = hub_ensure_local(base, HubNeed::Model);
  }
  Model model = Model::load(base_dir);
  if (weights_have_nf4(model.weights())) weights_dequantize_nf4(model.mutable_weights());
  if (!is_model) merge_lora_into(model.mutable_weights(), lora_load_peft(args.dir, model.config()));
  const std::string name = args.id.substr(args.id.find('/') + 1);
  for (GgufOutType type : types) {
    std::string suffix = gguf_outtype_name(type);
    for (char& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    GgufExportOptions options;
    options.outtype = type, options.name = name, options.output = path_join(args.dir, name + "-" + suffix + ".gguf");
    log_info("writing ", options.output, is_model ? "" : " (base model with the adapter merged)");
    gguf_export_model(model.config(), model.weights(), base_dir, options);
  }
}

void run_push(const PushArgs& args) {
  if (!args.gguf.empty()) export_gguf_files(args);
  HubPushOptions o;
  o.dir = args.dir;
  o.repo = {args.id, hub_repo_type_parse(args.repo_type)};
  o.private_repo = args.private_repo;
  o.revision = args.revision;
  o.commit_message = args.message;
  o.with_checkpoints = args.with_checkpoints;
  const HubEnv env = hub_env_from_environment();
  log_info("pushing ", args.dir, " to ", o.repo.id, "@", o.revision, " on ", env.endpoint);
  const HubPushResult r = hub_push(o, env);
  log_info("committed ", r.n_regular + r.n_lfs, " files (", r.n_lfs, " large-file objects, ", r.n_lfs_uploaded, " uploaded now)",
           r.commit_oid.empty() ? "" : " as " + r.commit_oid);
  std::printf("%s\n", r.commit_url.empty() ? (env.endpoint + "/" + o.repo.id).c_str() : r.commit_url.c_str());
}
}  // namespace

void add_push_verb(CLI::App& app) {
  auto args = std::make_shared<PushArgs>();
  auto* cmd = app.add_subcommand("push", "Upload a folder (adapter or model) to the Hugging Face Hub as one commit");
  cmd->add_option("dir", args->dir, "Folder to upload (e.g. a training output_dir)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("repo", args->id, "Repository id ORG/NAME (created when missing)")->required();
  cmd->add_flag("--private", args->private_repo, "Create the repository as private");
  cmd->add_option("--revision", args->revision, "Branch to commit to (default main; created when missing)");
  cmd->add_option("--commit-message", args->message, "Commit message");
  cmd->add_flag("--with-checkpoints", args->with_checkpoints, "Also upload checkpoint-*/ and _* folders (skipped as transformers' push_to_hub does)");
  cmd->add_option("--repo-type", args->repo_type, "model or dataset")->check(CLI::IsMember({"model", "dataset"}));
  cmd->add_option("--gguf", args->gguf, "Also write and upload GGUF files of these types, comma-separated (e.g. q4_k_m,q8_0): "
                                       "DIR's model, or its adapter merged into the base model");
  cmd->footer("Needs HF_TOKEN (write access). Writes a model card README.md into DIR when it has none (base model,\n"
              "data, KTO hyper-parameters, final metrics from adapter_config.json, train_config.yaml, trainer_state.json).\n"
              "The token is never printed or written.");
  cmd->callback([args] { run_push(*args); });
}

}  // namespace kto::cli
