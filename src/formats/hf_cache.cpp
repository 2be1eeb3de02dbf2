// Hugging Face cache lookup, mirroring huggingface_hub: cache root from `constants.py`
// (HF_HUB_CACHE / HUGGINGFACE_HUB_CACHE / HF_HOME / XDG_CACHE_HOME), repo folder
// `models--ORG--NAME`, `refs/<revision>` holding a commit hash, `snapshots/<commit>/` holding files
// (`file_download.py` `try_to_load_from_cache`).
#include "formats/hf_cache.h"

#include <cstdlib>
#include <filesystem>

#include "util/error.h"
#include "util/files.h"

namespace kto {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string expand_home(const std::string& p) {
  if (p == "~" || p.rfind("~/", 0) == 0) return env("HOME") + p.substr(1);
  return p;
}

bool is_dir(const std::string& p) {
  std::error_code ec;
  return std::filesystem::is_directory(p, ec);
}

// A hub repo id part: letters, digits, '-', '_', '.'; no "--" or ".." (huggingface_hub validate_repo_id).
bool valid_id_part(const std::string& s) {
  if (s.empty() || s.size() > 96 || s.find("--") != std::string::npos || s.find("..") != std::string::npos) {
    return false;
  }
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string hf_hub_cache_dir() {
  if (std::string v = env("HF_HUB_CACHE"); !v.empty()) return expand_home(v);
  if (std::string v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) return expand_home(v);
  if (std::string v = env("HF_HOME"); !v.empty()) return path_join(expand_home(v), "hub");
  std::string xdg = env("XDG_CACHE_HOME");
  std::string base = xdg.empty() ? path_join(env("HOME"), ".cache") : expand_home(xdg);
  return path_join(path_join(base, "huggingface"), "hub");
}

namespace {
// Resolves a hub id to its snapshot directory under CACHE/<kind>s--ORG--NAME (kind: "model" or
// "dataset"), as huggingface_hub lays the cache out for both repository types.
std::string resolve_repo(const std::string& name_or_path, const std::string& kind) {
  const std::string& s = name_or_path;
  const bool looks_like_path = s.empty() || s[0] == '/' || s[0] == '.' || s[0] == '~' ||
                               s.find('/') != s.rfind('/') || s.find('\\') != std::string::npos;
  if (looks_like_path) {
    fail(ErrorKind::NotFound, kind, " path ", s, " does not exist; pass an existing path or a hub id ORG/NAME");
  }
  std::string id = s, revision = "main";
  if (size_t at = s.find('@'); at != std::string::npos) {
    id = s.substr(0, at);
    revision = s.substr(at + 1);
  }
  size_t slash = id.find('/');
  std::string org = slash == std::string::npos ? "" : id.substr(0, slash);
  std::string name = slash == std::string::npos ? id : id.substr(slash + 1);
  if ((slash != std::string::npos && !valid_id_part(org)) || !valid_id_part(name) || revision.empty() ||
      revision.find("..") != std::string::npos) {
    fail(ErrorKind::InvalidArgument, "'", s, "' is neither an existing directory nor a hub id of the form ORG/NAME",
         " or ORG/NAME@REVISION");
  }

  const std::string cache = hf_hub_cache_dir();
  const std::string repo = path_join(cache, kind + "s--" + (org.empty() ? name : org + "--" + name));
  const std::string ref = path_join(path_join(repo, "refs"), revision);
  std::string commit = revision;  // a commit hash is used as is when no ref of that name exists
  if (file_exists(ref)) commit = trim(file_read_text(ref));
  const std::string snapshot = path_join(path_join(repo, "snapshots"), commit);
  if (!commit.empty() && is_dir(snapshot)) return snapshot;

  fail(ErrorKind::NotFound, kind, " '", s, "' is not a local path and is not in the Hugging Face cache (looked for ",
       file_exists(ref) ? snapshot : ref, ", cache root ", cache,
       " from HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME); download it with `kto pull ",
       kind == "dataset" ? "--repo-type dataset " : "", id, revision == "main" ? "" : " --revision " + revision,
       "` (or `huggingface-cli download`; HF_HUB_OFFLINE must be unset), or pass a local path");
}
}  // namespace

std::string hf_resolve_model(const std::string& name_or_path) {
  if (is_dir(name_or_path)) return name_or_path;
  return resolve_repo(name_or_path, "model");
}

std::string hf_resolve_dataset(const std::string& name_or_path) {
  std::error_code ec;
  if (std::filesystem::exists(name_or_path, ec)) return name_or_path;
  // ORG/NAME/FILE…: a file inside a cached dataset repository.
  const size_t first = name_or_path.find('/');
  const size_t second = first == std::string::npos ? first : name_or_path.find('/', first + 1);
  if (second != std::string::npos && name_or_path[0] != '/' && name_or_path[0] != '.') {
    const std::string file = path_join(resolve_repo(name_or_path.substr(0, second), "dataset"), name_or_path.substr(second + 1));
    if (!std::filesystem::exists(file, ec)) fail(ErrorKind::NotFound, "dataset file ", file, " does not exist");
    return file;
  }
  return resolve_repo(name_or_path, "dataset");
}

}  // namespace kto
