// `kto push DIR ORG/NAME`: upload a folder (an adapter, a merged model) to the Hugging Face Hub
// as one commit, creating the repository when needed (export/hub_push.h).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/app.h"
#include "export/hub_env.h"
#include "export/hub_push.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct PushArgs {
  std::string dir, id, revision = "main", message, repo_type = "model", gguf;
  bool private_repo = false, with_checkpoints = false;
};

void run_push(const PushArgs& args) {
  if (!args.gguf.empty()) {
    fail(ErrorKind::Unsupported, "--gguf is not available yet (GGUF export comes with `kto export gguf`); export the GGUF files into ",
         "the folder first, then push it");
  }
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
  cmd->add_option("--gguf", args->gguf, "GGUF types to export and upload as well (not available yet: comes with kto export gguf)");
  cmd->footer("Needs HF_TOKEN (write access). Writes a model card README.md into DIR when it has none (base model,\n"
              "data, KTO hyper-parameters, final metrics from adapter_config.json, train_config.yaml, trainer_state.json).\n"
              "The token is never printed or written.");
  cmd->callback([args] { run_push(*args); });
}

}  // namespace kto::cli
