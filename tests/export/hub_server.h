// A stand-in Hugging Face Hub for the Hub client tests: an HTTP/1.1 server on 127.0.0.1 (an
// ephemeral port) run by a thread of the test, serving the endpoints and headers the client
// and huggingface_hub use: revision info, the recursive tree listing (paged with Link), resolve
// with ETag / X-Repo-Commit / X-Linked-* and a 302 to a CDN-like path for LFS files, Range
// requests, and the push side (repos/create, preupload, git-lfs batch with basic and multipart
// transfers, verify, NDJSON commit, branch). Knobs inject failures: a transfer cut after half its
// bytes, a corrupted transfer, a required token. Every request is recorded.
// One connection at a time, `Connection: close`; loopback only; never the real internet.
#pragma once

#include <atomic>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace kto::test {

struct StubFile {
  std::string path, content;
  bool lfs = false;
};

struct RecordedRequest {
  std::string method, target, body;           // target: path and query, as sent
  std::map<std::string, std::string> headers;  // names lower-cased
};

struct StubHttpReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  size_t send_bytes = std::string::npos;  // a cut transfer: send only this many body bytes
};

class HubServer {
 public:
  HubServer();
  ~HubServer();
  HubServer(const HubServer&) = delete;
  HubServer& operator=(const HubServer&) = delete;

  std::string endpoint() const;  // "http://127.0.0.1:PORT"

  // Commits `files` as the new head of `branch` of repository (type "model" | "dataset", id);
  // returns the commit hash (deterministic: sha1 of the parent and the contents).
  std::string add_commit(const std::string& type, const std::string& id, const std::vector<StubFile>& files,
                         const std::string& branch = "main");
  std::map<std::string, std::string> files_at(const std::string& type, const std::string& id, const std::string& branch);

  void require_token(const std::string& token);  // every request but /cdn/ needs "Bearer <token>"
  void cut_next(const std::string& path);        // the next content GET of this file stops halfway
  void corrupt_next(const std::string& path);    // the next content GET of this file has a flipped byte
  void set_tree_page_size(size_t n);
  void set_multipart_chunk(size_t bytes);        // LFS uploads as multipart with this part size (0: basic)

  std::vector<RecordedRequest> requests() const;
  void clear_requests();
  std::vector<std::string> commit_bodies() const;  // NDJSON bodies of the commits received

 private:
  struct Repo {
    std::map<std::string, std::string> branches;                         // branch -> commit
    std::map<std::string, std::map<std::string, StubFile>> commits;      // commit -> path -> file
    bool private_repo = false;
  };
  void serve();
  void handle(int fd);
  StubHttpReply route(const RecordedRequest& req);
  StubHttpReply route_api(const RecordedRequest& req, const std::vector<std::string>& seg);
  StubHttpReply route_resolve(const RecordedRequest& req, const std::string& key, const std::string& rev,
                              const std::string& path);
  StubHttpReply serve_content(const RecordedRequest& req, const std::string& path, std::string content,
                              std::vector<std::pair<std::string, std::string>> headers);
  StubHttpReply route_push(const RecordedRequest& req, const std::vector<std::string>& seg);
  StubHttpReply route_lfs(const RecordedRequest& req, const std::vector<std::string>& seg, const nlohmann::json& body);
  StubHttpReply commit(const std::string& key, const std::string& rev, const std::string& body);
  Repo* find_repo(const std::string& key);
  std::string resolve_rev(Repo& repo, const std::string& rev);
  std::string store_commit(Repo& repo, const std::string& branch, std::map<std::string, StubFile> files, const std::string& salt);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::map<std::string, Repo> repos_;                 // "model:org/name"
  std::map<std::string, std::string> lfs_objects_;    // sha256 -> bytes
  std::map<std::string, std::map<int, std::string>> lfs_parts_;
  std::set<std::string> cut_, corrupt_;
  std::string token_;
  size_t page_size_ = 1000, multipart_chunk_ = 0;
  std::vector<RecordedRequest> log_;
  std::vector<std::string> commit_bodies_;
};

// Base64 decoding for the commit payload (and tests).
std::string stub_base64_decode(const std::string& in);

// The repository the tests and tools/reference/check_hub_cache.py pull: model "kto-test/tiny"
// with a regular JSON file, a nested one, and an LFS safetensors file (deterministic bytes, so
// the commit hash is the same in every run).
std::vector<StubFile> stub_tiny_model_files();

}  // namespace kto::test
