// `kto pull ORG/NAME`: download a model or dataset repository from the Hugging Face Hub into
// the shared HF cache (export/hub_pull.h), exactly where huggingface_hub puts it.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/app.h"
#include "export/hub_env.h"
#include "export/hub_pull.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace kto::cli {

namespace {
struct PullArgs {
  std::string id, revision = "main", repo_type = "model";
  std::vector<std::string> include;
  bool size_only = false;
};

void run_pull(const PullArgs& args) {
  HubPullOptions o;
  o.repo.type = hub_repo_type_parse(args.repo_type);
  o.repo.id = args.id;
  o.revision = args.revision;
  if (const size_t at = args.id.find('@'); at != std::string::npos && args.revision == "main") {
    o.repo.id = args.id.substr(0, at);
    o.revision = args.id.substr(at + 1);
  }
  o.include = args.include;
  o.cached_check = args.size_only ? HubCachedCheck::Size : HubCachedCheck::Hash;
  const HubEnv env = hub_env_from_environment();
  log_info("pulling ", o.repo.type == HubRepoType::Dataset ? "dataset " : "", o.repo.id, "@", o.revision,
           env.offline ? " (HF_HUB_OFFLINE: cache only)" : " from " + env.endpoint, " into ", env.cache_dir);
  const HubPullResult r = hub_pull(o, env);
  log_info(r.n_files, " files at commit ", r.commit, ": ", r.n_downloaded, " downloaded (", progress_bytes(static_cast<double>(r.bytes_downloaded)),
           "), ", r.n_files - r.n_downloaded, " already cached");
  std::printf("%s\n", r.snapshot_dir.c_str());
}
}  // namespace

void add_pull_verb(CLI::App& app) {
  auto args = std::make_shared<PullArgs>();
  auto* cmd = app.add_subcommand("pull", "Download a model or dataset from the Hugging Face Hub into the HF cache");
  cmd->add_option("repo", args->id, "Repository id ORG/NAME (or ORG/NAME@REVISION)")->required();
  cmd->add_option("--revision", args->revision, "Branch, tag or commit (default main)");
  cmd->add_option("--include", args->include, "Only files matching this glob (repeatable; '*' also crosses '/')");
  cmd->add_option("--repo-type", args->repo_type, "model or dataset")->check(CLI::IsMember({"model", "dataset"}));
  cmd->add_flag("--size-only", args->size_only, "Check cached files by size only (default: by sha256 / git sha1)");
  cmd->footer("Prints the snapshot directory. Honours HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE and HF_ENDPOINT;\n"
              "an interrupted download resumes on the next run. model_name_or_path, adapter_name_or_path and\n"
              "dataset_name (and -m / -a of the other verbs) pull a hub id on first use the same way.");
  cmd->callback([args] { run_pull(*args); });
}

}  // namespace kto::cli
