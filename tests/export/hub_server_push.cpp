// The stand-in Hub's repository store and push side (hub_server.h): repos/create, branch,
// preupload, the git-lfs batch API (basic and multipart), uploads, verify and the NDJSON commit,
// answering as huggingface.co does for huggingface_hub's `_commit_api.py` and `lfs.py`.
#include <nlohmann/json.hpp>
#include <sstream>

#include "export/hub_hash.h"
#include "hub_server.h"

namespace kto::test {

namespace {
StubHttpReply json_ok(const nlohmann::json& j, int status = 200) {
  StubHttpReply r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = j.dump();
  return r;
}

StubHttpReply fail_reply(int status, const std::string& message) {
  StubHttpReply r = json_ok({{"error", message}}, status);
  r.headers.emplace_back("X-Error-Message", message);
  return r;
}

std::string join(const std::vector<std::string>& seg, size_t from, size_t to) {
  std::string s;
  for (size_t i = from; i < to && i < seg.size(); ++i) s += (s.empty() ? "" : "/") + seg[i];
  return s;
}

bool is_lfs_path(const std::string& p) {
  for (const char* ext : {".safetensors", ".bin", ".gguf", ".pt"}) {
    const std::string e = ext;
    if (p.size() >= e.size() && p.compare(p.size() - e.size(), e.size(), e) == 0) return true;
  }
  return false;
}
}  // namespace

std::vector<StubFile> stub_tiny_model_files() {
  std::string weights;
  for (int i = 0; i < 3000; ++i) weights += static_cast<char>((i * 131 + 7) % 251);  // binary, 3 kB
  return {{"config.json", "{\"model_type\": \"llama\", \"hidden_size\": 8}\n", false},
          {"tokenizer/tokenizer_config.json", "{\"bos_token\": \"<s>\"}\n", false},
          {"model.safetensors", weights, true}};
}

std::string HubServer::store_commit(Repo& repo, const std::string& branch, std::map<std::string, StubFile> files,
                                    const std::string& salt) {
  std::string text = repo.branches.count(branch) ? repo.branches[branch] : "root";
  for (const auto& [p, f] : files) text += "\n" + p + " " + sha256_hex(f.content) + (f.lfs ? " lfs" : "");
  const std::string commit = git_blob_sha1_hex(text + "\n" + salt);
  repo.commits[commit] = std::move(files);
  repo.branches[branch] = commit;
  return commit;
}

std::string HubServer::add_commit(const std::string& type, const std::string& id, const std::vector<StubFile>& files,
                                  const std::string& branch) {
  std::lock_guard<std::mutex> lock(mu_);
  Repo& repo = repos_[type + ":" + id];
  std::map<std::string, StubFile> next;
  if (repo.branches.count(branch)) next = repo.commits[repo.branches[branch]];
  for (const StubFile& f : files) next[f.path] = f;
  return store_commit(repo, branch, std::move(next), "");
}

std::map<std::string, std::string> HubServer::files_at(const std::string& type, const std::string& id, const std::string& branch) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> out;
  Repo* repo = find_repo(type + ":" + id);
  if (!repo || !repo->branches.count(branch)) return out;
  for (const auto& [p, f] : repo->commits[repo->branches[branch]]) out[p] = f.content;
  return out;
}

StubHttpReply HubServer::route_push(const RecordedRequest& req, const std::vector<std::string>& seg) {
  const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  if (req.method == "POST" && seg.size() == 3 && seg[0] == "api" && seg[1] == "repos" && seg[2] == "create") {
    const std::string type = body.value("type", "model");
    const std::string id = (body.contains("organization") ? body["organization"].get<std::string>() + "/" : "") + body.value("name", "");
    if (repos_.count(type + ":" + id)) return fail_reply(409, "You already created this " + type + " repo");
    Repo& repo = repos_[type + ":" + id];
    repo.private_repo = body.value("private", false);
    store_commit(repo, "main", {{".gitattributes", {".gitattributes", "*.safetensors filter=lfs diff=lfs merge=lfs -text\n", false}}}, "init");
    return json_ok({{"url", endpoint() + "/" + id}, {"name", id}});
  }
  if (req.method == "POST" && seg.size() >= 6 && seg[0] == "api" && (seg[1] == "models" || seg[1] == "datasets")) {
    const std::string key = (seg[1] == "models" ? "model:" : "dataset:") + join(seg, 2, 4);
    Repo* repo = find_repo(key);
    if (!repo) return fail_reply(404, "Repository not found");
    const std::string rev = join(seg, 5, seg.size());
    if (seg[4] == "branch") {
      if (repo->branches.count(rev)) return fail_reply(409, "Reference already exists");
      repo->branches[rev] = repo->branches["main"];
      return json_ok(nlohmann::json::object());
    }
    if (seg[4] == "preupload") {
      nlohmann::json files = nlohmann::json::array();
      for (const nlohmann::json& f : body["files"]) {
        const bool lfs = is_lfs_path(f["path"]) || f["size"].get<size_t>() >= 10 * 1000 * 1000 ||
                         stub_base64_decode(f["sample"].get<std::string>()).find('\0') != std::string::npos;
        files.push_back({{"path", f["path"]}, {"uploadMode", lfs ? "lfs" : "regular"}, {"shouldIgnore", false}});
      }
      return json_ok({{"files", files}});
    }
    if (seg[4] == "commit") return commit(key, rev, req.body);
  }
  return route_lfs(req, seg, body);
}

StubHttpReply HubServer::route_lfs(const RecordedRequest& req, const std::vector<std::string>& seg, const nlohmann::json& body) {
  // git-lfs batch: /[datasets/]ORG/NAME.git/info/lfs/objects/batch
  const std::string path = req.target.substr(0, req.target.find('?'));
  if (req.method == "POST" && path.ends_with(".git/info/lfs/objects/batch")) {
    nlohmann::json objects = nlohmann::json::array();
    for (const nlohmann::json& o : body["objects"]) {
      const std::string oid = o["oid"];
      const size_t size = o["size"];
      nlohmann::json e = {{"oid", oid}, {"size", size}};
      if (!lfs_objects_.count(oid)) {
        nlohmann::json upload = {{"href", endpoint() + "/lfs-upload/" + oid}, {"header", {{"X-Stub-Upload", "signed"}}}};
        if (multipart_chunk_ > 0) {
          nlohmann::json header = {{"chunk_size", std::to_string(multipart_chunk_)}};
          for (size_t i = 0; i * multipart_chunk_ < size; ++i) {
            char num[8];
            std::snprintf(num, sizeof num, "%05zu", i + 1);
            header[num] = endpoint() + "/lfs-part/" + oid + "/" + std::to_string(i + 1);
          }
          upload = {{"href", endpoint() + "/lfs-complete/" + oid}, {"header", header}};
        }
        e["actions"] = {{"upload", upload}, {"verify", {{"href", endpoint() + "/lfs-verify"}, {"header", {{"X-Stub-Verify", "1"}}}}}};
      }
      objects.push_back(e);
    }
    return json_ok({{"transfer", multipart_chunk_ ? "multipart" : "basic"}, {"objects", objects}});
  }
  if (req.method == "PUT" && seg.size() == 2 && seg[0] == "lfs-upload") {
    if (sha256_hex(req.body) != seg[1]) return fail_reply(400, "sha256 mismatch");
    lfs_objects_[seg[1]] = req.body;
    return json_ok(nlohmann::json::object());
  }
  if (req.method == "PUT" && seg.size() == 3 && seg[0] == "lfs-part") {
    lfs_parts_[seg[1]][std::stoi(seg[2])] = req.body;
    StubHttpReply r = json_ok(nlohmann::json::object());
    r.headers.emplace_back("ETag", "\"part-" + seg[2] + "\"");
    return r;
  }
  if (req.method == "POST" && seg.size() == 2 && seg[0] == "lfs-complete") {
    std::string all;
    for (const nlohmann::json& p : body["parts"]) {
      if (p["etag"] != "\"part-" + std::to_string(p["partNumber"].get<int>()) + "\"") return fail_reply(400, "bad part etag");
      all += lfs_parts_[seg[1]][p["partNumber"].get<int>()];
    }
    if (sha256_hex(all) != seg[1] || body.value("oid", "") != seg[1]) return fail_reply(400, "sha256 mismatch");
    lfs_objects_[seg[1]] = all;
    return json_ok(nlohmann::json::object());
  }
  if (req.method == "POST" && seg.size() == 1 && seg[0] == "lfs-verify") {
    const std::string oid = body.value("oid", "");
    if (!lfs_objects_.count(oid) || lfs_objects_[oid].size() != body.value("size", size_t{0})) return fail_reply(404, "object not found");
    return json_ok(nlohmann::json::object());
  }
  return fail_reply(404, "stand-in hub: no route for " + req.method + " " + req.target);
}

StubHttpReply HubServer::commit(const std::string& key, const std::string& rev, const std::string& body) {
  Repo& repo = repos_[key];
  if (!repo.branches.count(rev)) return fail_reply(404, "Invalid rev id: " + rev);
  commit_bodies_.push_back(body);
  std::map<std::string, StubFile> files = repo.commits[repo.branches[rev]];
  std::istringstream in(body);
  bool header = false;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) return fail_reply(400, "bad NDJSON line");
    const std::string k = j.value("key", "");
    const nlohmann::json& v = j["value"];
    if (k == "header") {
      header = true;
    } else if (k == "file" && header && v.value("encoding", "") == "base64") {
      files[v["path"]] = {v["path"], stub_base64_decode(v["content"]), false};
    } else if (k == "lfsFile" && header && v.value("algo", "") == "sha256") {
      const std::string oid = v["oid"];
      if (!lfs_objects_.count(oid)) return fail_reply(400, "lfs object " + oid + " was not uploaded");
      files[v["path"]] = {v["path"], lfs_objects_[oid], true};
    } else if (k == "deletedFile" && header) {
      files.erase(v["path"].get<std::string>());
    } else {
      return fail_reply(400, "unexpected commit line: " + line.substr(0, 80));
    }
  }
  const std::string id = key.substr(key.find(':') + 1);
  const std::string commit = store_commit(repo, rev, std::move(files), body);
  return json_ok({{"commitUrl", endpoint() + "/" + id + "/commit/" + commit}, {"commitOid", commit}, {"success", true}});
}

}  // namespace kto::test
