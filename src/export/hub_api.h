// The Hub's HTTP API as the client reads it (huggingface_hub `hf_api.py`, `file_download.py`):
//   GET  /api/{models|datasets}/{id}/revision/{rev}        -> {"sha": commit, ...}
//   GET  /api/{models|datasets}/{id}/tree/{commit}?recursive=true   (pages linked by Link: rel="next")
//        -> [{"type":"file","path","size","oid"(git blob sha1),"lfs":{"oid"(sha256),"size"}}, ...]
//   HEAD {endpoint}[/datasets]/{id}/resolve/{commit}/{path} -> X-Repo-Commit, X-Linked-Etag | ETag,
//        X-Linked-Size | Content-Length; LFS files answer 302 to a CDN (another origin): the
//        metadata is on the 302 itself, and the download goes there without the token.
// The token goes only to the endpoint's origin; errors name the URL (never the token), the HTTP
// status and what to do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "export/hub_env.h"
#include "export/hub_http.h"

namespace kto {

enum class HubRepoType { Model, Dataset };

struct HubRepo {
  std::string id;  // "ORG/NAME" (or "NAME")
  HubRepoType type = HubRepoType::Model;
};

const char* hub_repo_type_name(HubRepoType type);  // "model" | "dataset"
// Parses "model" | "dataset" (InvalidArgument otherwise).
HubRepoType hub_repo_type_parse(const std::string& name);
// Checks an id as huggingface_hub's validate_repo_id does; InvalidArgument saying what is wrong.
void hub_repo_id_check(const std::string& id);

// One file of a repository at a commit, as the tree endpoint lists it.
struct HubFile {
  std::string path;
  int64_t size = 0;
  std::string oid;          // git blob sha1 (for LFS files: of the pointer file)
  std::string lfs_sha256;   // "" for regular files
  int64_t lfs_size = -1;
  std::string xet_hash;     // kept for the tree cache; downloads use plain HTTP
  bool is_lfs() const { return !lfs_sha256.empty(); }
  int64_t content_size() const { return is_lfs() ? lfs_size : size; }
  // The ETag the Hub gives this file (sha256 for LFS, the git blob id otherwise): its blob name.
  const std::string& etag() const { return is_lfs() ? lfs_sha256 : oid; }
};

struct HubFileMeta {
  std::string commit;       // X-Repo-Commit
  std::string etag;         // normalised: no W/ prefix, no quotes
  int64_t size = -1;        // -1 when the server did not say
  std::string download_url; // the resolve URL, or where it redirects (CDN)
};

// "a%2Fb" style escaping; `/` kept when keep_slash.
std::string hub_url_quote(const std::string& s, bool keep_slash);
// The ETag header as huggingface_hub's _normalize_etag leaves it.
std::string hub_normalize_etag(std::string etag);

class HubApi {
 public:
  explicit HubApi(HubEnv env);
  const HubEnv& env() const { return env_; }

  std::string resolve_commit(const HubRepo& repo, const std::string& revision) const;
  std::vector<HubFile> list_files(const HubRepo& repo, const std::string& commit) const;
  HubFileMeta file_meta(const HubRepo& repo, const std::string& commit, const std::string& path) const;
  std::string resolve_url(const HubRepo& repo, const std::string& revision, const std::string& path) const;

  // A request with the token when `url` is on the endpoint's origin. Throws for transport errors
  // (and offline mode); returns any status.
  HttpResponse send(HttpRequest request, const HttpSink& sink = nullptr) const;
  // Throws kto::Error for a non-2xx `response` to `what` (e.g. "repository org/name"): the URL,
  // the status, the server's message and what to do.
  [[noreturn]] void fail_status(const HttpResponse& response, const std::string& url, const std::string& what) const;
  // "/api/models/ORG/NAME" style prefix.
  std::string api_url(const HubRepo& repo) const;
  // Whether a redirect from `url` to `target` stays on the Hub (same origin, the endpoint's, or
  // huggingface.co / hf.co), as huggingface_hub's _is_same_or_hub_host decides.
  bool is_hub_origin(const std::string& url, const std::string& target) const;

 private:
  HubEnv env_;
};

}  // namespace kto
