// hub_push (hub_push.h): the folder walk, repository creation, preupload, LFS uploads and the
// NDJSON commit.
#include "export/hub_push.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>

#include "export/hub_card.h"
#include "export/hub_hash.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"
#include "util/progress.h"

namespace fs = std::filesystem;

namespace kto {

namespace {
struct LocalFile {
  std::string path;  // in the repository ('/'-separated)
  std::string abs;
  int64_t size = 0;
  bool lfs = false;
  std::string sha256;  // LFS files only
};

std::string base64(const std::string& in) {
  static const char* const k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t)in[i] << 16 | (uint8_t)in[i + 1] << 8 | (uint8_t)in[i + 2];
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += k[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = (uint8_t)in[i] << 16;
    out += k[v >> 18], out += k[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t)in[i] << 16 | (uint8_t)in[i + 1] << 8;
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += '=';
  }
  return out;
}

std::string read_head(const std::string& path, size_t n) {
  std::string s = file_read_text(path);
  return s.size() > n ? s.substr(0, n) : s;
}

// Every file under dir except .git/ and .cache/huggingface/ (upload_folder's default ignores)
// and, unless asked, top-level checkpoint-*/ and _* (transformers' Trainer.push_to_hub ignores).
std::vector<LocalFile> list_folder(const std::string& dir, bool with_checkpoints) {
  std::vector<LocalFile> files;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(ErrorKind::NotFound, dir, ": not a directory (kto push DIR ORG/NAME)");
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().lexically_relative(dir).generic_string();  // links kept as named
    const bool trainer_private = it.depth() == 0 && (rel.rfind("checkpoint-", 0) == 0 || rel.rfind('_', 0) == 0);
    if ((it->is_directory() && (rel == ".git" || rel == ".cache/huggingface")) || (trainer_private && !with_checkpoints)) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    files.push_back({rel, it->path().string(), static_cast<int64_t>(it->file_size()), false, ""});
  }
  std::sort(files.begin(), files.end(), [](const LocalFile& a, const LocalFile& b) { return a.path < b.path; });
  return files;
}

nlohmann::json post_json(const HubApi& api, const std::string& url, const nlohmann::json& body, const std::string& what,
                         const std::vector<std::string>& extra_headers = {}, long ok_conflict = 0) {
  HttpRequest req;
  req.method = "POST";
  req.url = url;
  req.body = body.dump();
  req.headers = extra_headers;
  if (extra_headers.empty()) req.headers.push_back("Content-Type: application/json");
  const HttpResponse r = api.send(req);
  if (ok_conflict && r.status == ok_conflict) return nlohmann::json();
  if (r.status < 200 || r.status >= 300) api.fail_status(r, url, what);
  return nlohmann::json::parse(r.body, nullptr, false);
}

void create_repo(const HubApi& api, const HubPushOptions& o) {
  const size_t slash = o.repo.id.find('/');
  nlohmann::ordered_json body = {{"name", slash == std::string::npos ? o.repo.id : o.repo.id.substr(slash + 1)}};
  if (slash != std::string::npos) body["organization"] = o.repo.id.substr(0, slash);
  body["private"] = o.private_repo;
  if (o.repo.type != HubRepoType::Model) body["type"] = hub_repo_type_name(o.repo.type);
  post_json(api, api.env().endpoint + "/api/repos/create", body, "creating repository " + o.repo.id, {}, 409);
  if (o.revision != "main") {
    post_json(api, api.api_url(o.repo) + "/branch/" + hub_url_quote(o.revision, false), nlohmann::json::object(),
              "creating branch " + o.revision + " of " + o.repo.id, {}, 409);
  }
}

void preupload(const HubApi& api, const HubPushOptions& o, std::vector<LocalFile>& files) {
  for (size_t start = 0; start < files.size(); start += 256) {
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = start; i < std::min(files.size(), start + 256); ++i) {
      list.push_back({{"path", files[i].path}, {"sample", base64(read_head(files[i].abs, 512))}, {"size", files[i].size}});
    }
    const std::string url = api.api_url(o.repo) + "/preupload/" + hub_url_quote(o.revision, false);
    const nlohmann::json r = post_json(api, url, {{"files", list}}, "preupload of " + o.repo.id);
    if (!r.is_object() || !r.contains("files") || !r["files"].is_array()) fail(ErrorKind::Format, url, ": no \"files\" in the answer");
    for (const nlohmann::json& f : r["files"]) {
      for (LocalFile& lf : files) {
        if (f.is_object() && f.value("path", "") == lf.path) lf.lfs = f.value("uploadMode", "regular") == "lfs";
      }
    }
  }
}

std::vector<std::string> action_headers(const nlohmann::json& action) {
  std::vector<std::string> h;
  if (action.contains("header") && action["header"].is_object()) {
    for (const auto& [k, v] : action["header"].items()) {
      if (v.is_string() && !std::all_of(k.begin(), k.end(), ::isdigit) && k != "chunk_size") h.push_back(k + ": " + v.get<std::string>());
    }
  }
  return h;
}

void put_checked(const HubApi& api, HttpRequest req, const std::string& what, std::string* etag = nullptr) {
  req.method = "PUT";
  const HttpResponse r = api.send(req);
  if (r.status < 200 || r.status >= 300) api.fail_status(r, req.url, what);
  if (etag) *etag = r.header("ETag");
}

// One object through the batch answer's actions: basic PUT, or multipart (header.chunk_size and
// part URLs under numeric keys, then a completion POST), then verify.
void upload_object(const HubApi& api, const LocalFile& f, const nlohmann::json& actions) {
  const nlohmann::json& up = actions["upload"];
  const std::string href = up.value("href", "");
  const nlohmann::json header = up.value("header", nlohmann::json::object());
  ProgressBar bar(f.path, f.size, ProgressStyle::Auto, ProgressUnit::Bytes);
  if (header.contains("chunk_size")) {
    const int64_t chunk = header["chunk_size"].is_string() ? std::stoll(header["chunk_size"].get<std::string>())
                                                           : header["chunk_size"].get<int64_t>();
    std::vector<std::pair<int, std::string>> parts;
    for (const auto& [k, v] : header.items()) {
      if (!k.empty() && std::all_of(k.begin(), k.end(), ::isdigit)) parts.emplace_back(std::stoi(k), v.get<std::string>());
    }
    std::sort(parts.begin(), parts.end());
    nlohmann::json done = nlohmann::json::array();
    for (size_t i = 0; i < parts.size(); ++i) {
      HttpRequest req;
      req.url = parts[i].second;
      req.body_file = f.abs;
      req.body_offset = static_cast<int64_t>(i) * chunk;
      req.body_size = std::min<int64_t>(chunk, f.size - req.body_offset);
      std::string etag;
      put_checked(api, req, "upload of part " + std::to_string(parts[i].first) + " of " + f.path, &etag);
      done.push_back({{"partNumber", parts[i].first}, {"etag", etag}});
      bar.update(req.body_offset + req.body_size);
    }
    post_json(api, href, {{"oid", f.sha256}, {"parts", done}}, "completing the upload of " + f.path);
  } else {
    HttpRequest req;
    req.url = href;
    req.body_file = f.abs;
    req.headers = action_headers(up);
    put_checked(api, req, "upload of " + f.path);
  }
  bar.finish();
  if (actions.contains("verify")) {
    std::vector<std::string> h = action_headers(actions["verify"]);
    h.push_back("Content-Type: application/json");
    post_json(api, actions["verify"].value("href", ""), {{"oid", f.sha256}, {"size", f.size}}, "verifying the upload of " + f.path, h);
  }
}

int64_t upload_lfs(const HubApi& api, const HubPushOptions& o, std::vector<LocalFile>& files) {
  nlohmann::json objects = nlohmann::json::array();
  std::set<std::string> seen;  // identical files are one object
  for (LocalFile& f : files) {
    if (!f.lfs) continue;
    f.sha256 = sha256_file_hex(f.abs);
    if (seen.insert(f.sha256).second) objects.push_back({{"oid", f.sha256}, {"size", f.size}});
  }
  if (objects.empty()) return 0;
  const std::string url = api.env().endpoint + (o.repo.type == HubRepoType::Dataset ? "/datasets/" : "/") + o.repo.id +
                          ".git/info/lfs/objects/batch";
  const nlohmann::json body = {{"operation", "upload"}, {"transfers", {"basic", "multipart"}}, {"objects", objects},
                               {"hash_algo", "sha256"}, {"ref", {{"name", o.revision}}}};
  const nlohmann::json r = post_json(api, url, body, "large-file batch request for " + o.repo.id,
                                     {"Accept: application/vnd.git-lfs+json", "Content-Type: application/vnd.git-lfs+json"});
  if (!r.is_object() || !r.contains("objects") || !r["objects"].is_array()) fail(ErrorKind::Format, url, ": no \"objects\" in the answer");
  int64_t uploaded = 0;
  for (const nlohmann::json& obj : r["objects"]) {
    const std::string oid = obj.value("oid", "");
    if (obj.contains("error")) fail(ErrorKind::Io, url, ": the Hub refused object ", oid, ": ", obj["error"].dump());
    if (!obj.contains("actions") || !obj["actions"].contains("upload")) continue;  // already stored
    for (const LocalFile& f : files) {
      if (f.lfs && f.sha256 == oid) {
        upload_object(api, f, obj["actions"]);
        ++uploaded;
        break;
      }
    }
  }
  return uploaded;
}
}  // namespace

HubPushResult hub_push(const HubPushOptions& o, const HubEnv& env) {
  hub_repo_id_check(o.repo.id);
  if (env.token.empty()) {
    fail(ErrorKind::InvalidArgument, "pushing needs a Hub token with write access: set HF_TOKEN (or log in with `hf auth login`)");
  }
  HubPushResult result;
  const std::string readme = path_join(o.dir, "README.md");
  std::error_code ec;
  if (fs::is_directory(o.dir, ec) && !file_exists(readme)) {
    file_write_atomic(readme, hub_model_card(o.dir, o.repo.id));
    result.card_written = true;
    log_info("wrote a model card to ", readme);
  }
  std::vector<LocalFile> files = list_folder(o.dir, o.with_checkpoints);
  const HubApi api(env);
  create_repo(api, o);
  preupload(api, o, files);
  result.n_lfs_uploaded = upload_lfs(api, o, files);

  const std::string message = o.commit_message.empty() ? "Upload with kto push" : o.commit_message;
  std::string ndjson = nlohmann::ordered_json{{"key", "header"}, {"value", {{"summary", message}, {"description", ""}}}}.dump() + "\n";
  for (const LocalFile& f : files) {
    nlohmann::ordered_json line;
    if (f.lfs) {
      line = {{"key", "lfsFile"}, {"value", {{"path", f.path}, {"algo", "sha256"}, {"oid", f.sha256}, {"size", f.size}}}};
      ++result.n_lfs;
    } else {
      line = {{"key", "file"}, {"value", {{"content", base64(file_read_text(f.abs))}, {"path", f.path}, {"encoding", "base64"}}}};
      ++result.n_regular;
    }
    ndjson += line.dump() + "\n";
  }
  HttpRequest req;
  req.method = "POST";
  req.url = api.api_url(o.repo) + "/commit/" + hub_url_quote(o.revision, false);
  req.headers.push_back("Content-Type: application/x-ndjson");
  req.body = std::move(ndjson);
  const HttpResponse r = api.send(req);
  if (r.status < 200 || r.status >= 300) api.fail_status(r, req.url, "commit to " + o.repo.id);
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object()) result.commit_oid = j.value("commitOid", ""), result.commit_url = j.value("commitUrl", "");
  return result;
}

}  // namespace kto
