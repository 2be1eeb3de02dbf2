// hub_ensure_local (hub_ensure.h).
#include "export/hub_ensure.h"

#include <filesystem>
#include <vector>

#include "export/hub_http.h"
#include "export/hub_pull.h"
#include "util/error.h"
#include "util/log.h"

namespace kto {

namespace {
constexpr const char* kModelGlobs[] = {"*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.tiktoken", "*.txt", nullptr};
constexpr const char* kModelConfigGlobs[] = {"*.json", "*.jinja", "tokenizer.model", "*.tiktoken", "*.txt", nullptr};
constexpr const char* kAdapterGlobs[] = {"*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.txt", "README.md", nullptr};
constexpr const char* kDatasetGlobs[] = {"*.json", "*.jsonl", "README.md", nullptr};

// Splits "ORG/NAME[/FILE...][@REV]" into the repository id and revision; false for what is not
// a hub id (paths).
bool parse_hub_name(const std::string& s, HubNeed need, std::string& id, std::string& revision) {
  if (s.empty() || s[0] == '/' || s[0] == '.' || s[0] == '~' || s.find('\\') != std::string::npos) return false;
  std::string rest = s;
  revision = "main";
  if (const size_t at = rest.find('@'); at != std::string::npos) revision = rest.substr(at + 1), rest = rest.substr(0, at);
  const size_t first = rest.find('/');
  if (first == std::string::npos) return false;
  const size_t second = rest.find('/', first + 1);
  if (second != std::string::npos && need != HubNeed::Dataset) return false;
  id = rest.substr(0, second);
  for (const char* ext : {".json", ".jsonl", ".parquet", ".csv", ".txt", ".yaml"}) {
    if (second == std::string::npos && id.ends_with(ext)) return false;  // a missing local file, not a repository
  }
  try {
    hub_repo_id_check(id);
  } catch (const Error&) {
    return false;
  }
  return !revision.empty();
}
}  // namespace

const char* const* hub_need_globs(HubNeed need) {
  switch (need) {
    case HubNeed::ModelConfig: return kModelConfigGlobs;
    case HubNeed::Adapter: return kAdapterGlobs;
    case HubNeed::Dataset: return kDatasetGlobs;
    case HubNeed::Model: break;
  }
  return kModelGlobs;
}

std::string hub_ensure_local(const std::string& name_or_path, HubNeed need) {
  std::error_code ec;
  if (name_or_path.empty() || std::filesystem::exists(name_or_path, ec)) return "";
  std::string id, revision;
  if (!parse_hub_name(name_or_path, need, id, revision)) return "";  // the library says what is wrong

  HubPullOptions o;
  o.repo = {id, need == HubNeed::Dataset ? HubRepoType::Dataset : HubRepoType::Model};
  o.revision = revision;
  for (const char* const* g = hub_need_globs(need); *g; ++g) o.include.emplace_back(*g);
  o.cached_check = HubCachedCheck::Size;
  const HubEnv env = hub_env_from_environment();
  std::vector<std::string> missing;
  const std::string cached = hub_cached_snapshot(env, o.repo, revision, o.include, &missing);
  if (!cached.empty() && missing.empty()) return cached;
  if (env.offline || !hub_client_available()) return cached;  // the library reports the missing files
  log_info(cached.empty() ? "downloading " : "completing ", hub_repo_type_name(o.repo.type), " ", id,
           revision == "main" ? "" : "@" + revision, " from ", env.endpoint, " into ", env.cache_dir);
  HubPullResult r;
  try {
    r = hub_pull(o, env);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
    fail(ErrorKind::NotFound, "'", name_or_path, "' is not a local path, and as a Hub ", hub_repo_type_name(o.repo.type), " id: ", e.what());
  }
  log_info("  ", r.n_files, " files (", r.n_downloaded, " downloaded) in ", r.snapshot_dir);
  return r.snapshot_dir;
}

}  // namespace kto
