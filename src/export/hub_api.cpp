// HubApi (hub_api.h): revision → commit, the recursive tree listing with Link pagination, the
// resolve endpoint's metadata (following relative redirects only, as huggingface_hub's
// `_httpx2_follow_hub_redirects_with_backoff` does), and the error messages.
#include "export/hub_api.h"

#include <cctype>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace kto {

const char* hub_repo_type_name(HubRepoType type) { return type == HubRepoType::Dataset ? "dataset" : "model"; }

HubRepoType hub_repo_type_parse(const std::string& name) {
  if (name == "model") return HubRepoType::Model;
  if (name == "dataset") return HubRepoType::Dataset;
  fail(ErrorKind::InvalidArgument, "repository type '", name, "' is not supported: use model or dataset");
}

void hub_repo_id_check(const std::string& id) {
  const size_t slash = id.find('/');
  const bool bad_shape = id.empty() || id.size() > 96 || (slash != std::string::npos && id.find('/', slash + 1) != std::string::npos);
  bool bad_char = false;
  for (char c : id) bad_char |= !(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/');
  const bool bad_seq = id.find("--") != std::string::npos || id.find("..") != std::string::npos || id.front() == '-' ||
                       id.front() == '.' || id.back() == '-' || id.back() == '.' || id.front() == '/' || id.back() == '/';
  if (bad_shape || bad_char || bad_seq) {
    fail(ErrorKind::InvalidArgument, "'", id, "' is not a Hub repository id: expected ORG/NAME (letters, digits, '-', '_', '.'; ",
         "no '--' or '..', not starting or ending with '-' or '.')");
  }
}

std::string hub_url_quote(const std::string& s, bool keep_slash) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%', out += kHex[c >> 4], out += kHex[c & 15];
    }
  }
  return out;
}

std::string hub_normalize_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  while (!etag.empty() && etag.front() == '"') etag.erase(etag.begin());
  while (!etag.empty() && etag.back() == '"') etag.pop_back();
  return etag;
}

HubApi::HubApi(HubEnv env) : env_(std::move(env)) {}

std::string HubApi::api_url(const HubRepo& repo) const {
  return env_.endpoint + "/api/" + hub_repo_type_name(repo.type) + "s/" + repo.id;
}

std::string HubApi::resolve_url(const HubRepo& repo, const std::string& revision, const std::string& path) const {
  return env_.endpoint + (repo.type == HubRepoType::Dataset ? "/datasets/" : "/") + repo.id + "/resolve/" +
         hub_url_quote(revision, false) + "/" + hub_url_quote(path, true);
}

HttpResponse HubApi::send(HttpRequest request, const HttpSink& sink) const {
  if (env_.offline) {
    fail(ErrorKind::NotFound, "HF_HUB_OFFLINE is set, so kto does not contact ", http_origin(request.url),
         "; unset it to download, or use what is already in the cache (", env_.cache_dir, ")");
  }
  if (!env_.token.empty() && http_origin(request.url) == http_origin(env_.endpoint)) {
    request.headers.push_back("Authorization: Bearer " + env_.token);
  }
  return http_send(request, sink);
}

void HubApi::fail_status(const HttpResponse& r, const std::string& url, const std::string& what) const {
  std::string server = r.header("X-Error-Message");
  if (server.empty() && !r.body.empty()) {
    const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) server = j["error"].get<std::string>();
    else if (r.body.size() < 300 && r.body.find('<') == std::string::npos) server = r.body;
  }
  const std::string code = r.header("X-Error-Code");
  std::string todo;
  ErrorKind kind = ErrorKind::Io;
  if (r.status == 401 || r.status == 403 || code == "GatedRepo") {
    kind = ErrorKind::InvalidArgument;
    todo = env_.token.empty() ? "the repository may be private or gated: set HF_TOKEN to a token with read access"
                              : "the token in HF_TOKEN has no access: check its permissions, and for a gated model accept "
                                "its license on the model page";
    if (code == "GatedRepo") todo = "the repository is gated: accept its license on its Hub page and set HF_TOKEN";
  } else if (r.status == 404) {
    kind = ErrorKind::NotFound;
    todo = code == "RevisionNotFound" ? "check the revision (branch, tag or commit)"
         : code == "EntryNotFound"    ? "the file is not in this revision"
                                      : "check the repository id, its type (--repo-type) and the revision; a private "
                                        "repository also answers 404 without a token";
  } else if (r.status == 429) {
    todo = "rate limited by the Hub: wait and retry";
  } else if (r.status >= 500) {
    todo = "the Hub had a server error: retry later";
  }
  fail(kind, what, ": HTTP ", r.status, " from ", hub_redact(url, env_.token),
       server.empty() ? "" : " (" + hub_redact(server, env_.token) + ")", todo.empty() ? "" : "; " + todo);
}

std::string HubApi::resolve_commit(const HubRepo& repo, const std::string& revision) const {
  HttpRequest req;
  req.url = api_url(repo) + "/revision/" + hub_url_quote(revision, false);
  req.stall_timeout_s = env_.etag_timeout_s;
  const HttpResponse r = send(req);
  if (r.status != 200) fail_status(r, req.url, str_cat(hub_repo_type_name(repo.type), " ", repo.id, " at ", revision));
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("sha") || !j["sha"].is_string()) {
    fail(ErrorKind::Format, req.url, ": the answer has no commit \"sha\"; is HF_ENDPOINT (", env_.endpoint, ") a Hugging Face Hub?");
  }
  return j["sha"].get<std::string>();
}

namespace {
// The rel="next" target of a Link header (GitHub style), or "".
std::string link_next(const std::string& link) {
  for (size_t at = 0; at < link.size();) {
    const size_t open = link.find('<', at), close = link.find('>', open);
    if (open == std::string::npos || close == std::string::npos) break;
    const size_t end = link.find(',', close);
    const std::string params = link.substr(close + 1, end == std::string::npos ? std::string::npos : end - close - 1);
    if (params.find("rel=\"next\"") != std::string::npos || params.find("rel=next") != std::string::npos) {
      return link.substr(open + 1, close - open - 1);
    }
    at = end == std::string::npos ? link.size() : end + 1;
  }
  return "";
}

// The absolute URL a Location header names, relative to `url` (urljoin); "" for none.
std::string redirect_target(const std::string& url, const std::string& location) {
  if (location.empty() || location.find("://") != std::string::npos) return location;
  if (location.front() == '/') return http_origin(url) + location;
  const size_t query = url.find('?');
  return url.substr(0, url.rfind('/', query) + 1) + location;
}

HubFile file_from_json(const nlohmann::json& e, const std::string& url) {
  HubFile f;
  try {
    f.path = e.at("path").get<std::string>();
    f.size = e.at("size").get<int64_t>();
    f.oid = e.at("oid").get<std::string>();
    if (e.contains("lfs") && e["lfs"].is_object()) {
      f.lfs_sha256 = e["lfs"].at("oid").get<std::string>();
      f.lfs_size = e["lfs"].at("size").get<int64_t>();
    }
    if (e.contains("xetHash") && e["xetHash"].is_string()) f.xet_hash = e["xetHash"].get<std::string>();
  } catch (const nlohmann::json::exception& ex) {
    fail(ErrorKind::Format, url, ": a tree entry lacks path / size / oid (", ex.what(), ")");
  }
  if (f.path.empty() || f.path.front() == '/' || f.path.find("..") != std::string::npos) {
    fail(ErrorKind::Format, url, ": refusing the file path '", f.path, "' (absolute or with '..')");
  }
  return f;
}
}  // namespace

std::vector<HubFile> HubApi::list_files(const HubRepo& repo, const std::string& commit) const {
  std::vector<HubFile> files;
  std::string url = api_url(repo) + "/tree/" + hub_url_quote(commit, false) + "?recursive=true&expand=false";
  for (int page = 0; !url.empty(); ++page) {
    if (page > 100000) fail(ErrorKind::Format, url, ": the tree listing does not end");
    HttpRequest req;
    req.url = url;
    req.stall_timeout_s = env_.etag_timeout_s;
    const HttpResponse r = send(req);
    if (r.status != 200) fail_status(r, url, str_cat("file list of ", repo.id, " at ", commit));
    const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_array()) fail(ErrorKind::Format, url, ": expected a JSON array of tree entries");
    for (const nlohmann::json& e : j) {
      if (e.is_object() && e.value("type", "") == "file") files.push_back(file_from_json(e, url));
    }
    url = link_next(r.header("Link"));
    if (!url.empty() && url.front() == '/') url = env_.endpoint + url;
  }
  return files;
}

bool HubApi::is_hub_origin(const std::string& url, const std::string& target) const {
  const std::string o = http_origin(target);
  return o == http_origin(url) || o == http_origin(env_.endpoint) || o == "https://huggingface.co" || o == "https://hf.co";
}

HubFileMeta HubApi::file_meta(const HubRepo& repo, const std::string& commit, const std::string& path) const {
  std::string url = resolve_url(repo, commit, path);
  HttpResponse r;
  for (int hop = 0;; ++hop) {
    HttpRequest req;
    req.method = "HEAD";
    req.url = url;
    req.headers.push_back("Accept-Encoding: identity");
    req.stall_timeout_s = env_.etag_timeout_s;
    r = send(req);
    // A redirect that stays on the Hub (same origin, or the endpoint's: a renamed repository) is
    // followed; one elsewhere (a CDN's signed URL) carries the metadata itself and is where the
    // download goes, without the token.
    const std::string target = redirect_target(url, r.header("Location"));
    if (r.status >= 300 && r.status < 400 && !target.empty() && is_hub_origin(url, target) && hop < 10) {
      url = target;
      continue;
    }
    break;
  }
  if (r.status >= 400) fail_status(r, url, str_cat("file ", path, " of ", repo.id));
  HubFileMeta m;
  m.commit = r.header("X-Repo-Commit");
  std::string etag = r.header("X-Linked-Etag");
  m.etag = hub_normalize_etag(etag.empty() ? r.header("ETag") : etag);
  std::string size = r.header("X-Linked-Size");
  if (size.empty() && !(r.status >= 300 && r.status < 400)) size = r.header("Content-Length");
  if (!size.empty()) m.size = std::strtoll(size.c_str(), nullptr, 10);
  const std::string target = redirect_target(url, r.header("Location"));
  m.download_url = r.status >= 300 && r.status < 400 && !target.empty() ? target : url;
  if (m.commit.empty() || m.etag.empty()) {
    fail(ErrorKind::Format, url, ": the answer lacks X-Repo-Commit or ETag; is HF_ENDPOINT (", env_.endpoint,
         ") a Hugging Face Hub (or a proxy that strips headers)?");
  }
  return m;
}

}  // namespace kto
