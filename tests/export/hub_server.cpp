// The stand-in Hub (hub_server.h): sockets, HTTP parsing, and the download side. The headers
// mirror what huggingface.co answers (huggingface_hub `file_download.py` reads them).
#include "hub_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "export/hub_hash.h"

namespace kto::test {

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> seg;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    seg.push_back(url_decode(path.substr(start, slash - start)));
    start = slash + 1;
  }
  return seg;
}

std::string join(const std::vector<std::string>& seg, size_t from, size_t to) {
  std::string s;
  for (size_t i = from; i < to && i < seg.size(); ++i) s += (s.empty() ? "" : "/") + seg[i];
  return s;
}

std::string lfs_pointer(const StubFile& f) {
  return "version https://git-lfs.github.com/spec/v1\noid sha256:" + sha256_hex(f.content) + "\nsize " +
         std::to_string(f.content.size()) + "\n";
}

StubHttpReply json_reply(int status, const nlohmann::json& j, std::vector<std::pair<std::string, std::string>> h = {}) {
  StubHttpReply r;
  r.status = status;
  r.headers = std::move(h);
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = j.dump();
  return r;
}

StubHttpReply error_reply(int status, const std::string& code, const std::string& message) {
  return json_reply(status, {{"error", message}}, {{"X-Error-Code", code}, {"X-Error-Message", message}});
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 302: return "Found";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 416: return "Range Not Satisfiable";
    default: return "Status";
  }
}

bool send_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t k = ::send(fd, data, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    data += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}
}  // namespace

std::string stub_base64_decode(const std::string& in) {
  static const std::string k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const size_t v = k.find(c);
    if (v == std::string::npos) continue;
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

HubServer::HubServer() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("stand-in hub: cannot listen on 127.0.0.1");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

HubServer::~HubServer() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::string HubServer::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

void HubServer::serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    handle(fd);
    ::close(fd);
  }
}

void HubServer::handle(int fd) {
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string buf;
  char chunk[65536];
  size_t head_end;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return;
    buf.append(chunk, static_cast<size_t>(n));
  }
  RecordedRequest req;
  const std::string head = buf.substr(0, head_end);
  size_t line_end = head.find("\r\n");
  const std::string first = head.substr(0, line_end);
  const size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
  req.method = first.substr(0, sp1);
  req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
  for (size_t at = line_end + 2; at < head.size();) {
    size_t end = head.find("\r\n", at);
    if (end == std::string::npos) end = head.size();
    const std::string line = head.substr(at, end - at);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      size_t v = colon + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      req.headers[lower(line.substr(0, colon))] = line.substr(v);
    }
    at = end + 2;
  }
  if (req.headers["expect"] == "100-continue") send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  const size_t length = req.headers.count("content-length") ? std::stoul(req.headers["content-length"]) : 0;
  req.body = buf.substr(head_end + 4);
  while (req.body.size() < length) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return;
    req.body.append(chunk, static_cast<size_t>(n));
  }
  StubHttpReply reply;
  {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back(req);
    reply = route(req);
  }
  std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " + reason(reply.status) + "\r\n";
  bool has_length = false;
  for (const auto& [k, v] : reply.headers) {
    out += k + ": " + v + "\r\n";
    has_length |= lower(k) == "content-length";
  }
  if (!has_length) out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  if (req.method != "HEAD") out += reply.body.substr(0, reply.send_bytes);
  send_all(fd, out.data(), out.size());
  ::shutdown(fd, SHUT_WR);
}

HubServer::Repo* HubServer::find_repo(const std::string& key) {
  auto it = repos_.find(key);
  return it == repos_.end() ? nullptr : &it->second;
}

std::string HubServer::resolve_rev(Repo& repo, const std::string& rev) {
  if (auto it = repo.branches.find(rev); it != repo.branches.end()) return it->second;
  return repo.commits.count(rev) ? rev : "";
}

StubHttpReply HubServer::route(const RecordedRequest& req) {
  const std::string path = req.target.substr(0, req.target.find('?'));
  const std::vector<std::string> seg = split_path(path);
  const bool cdn = !seg.empty() && seg[0] == "cdn";
  if (!token_.empty() && !cdn) {
    auto it = req.headers.find("authorization");
    if (it == req.headers.end() || it->second != "Bearer " + token_) {
      return error_reply(401, "", "Invalid credentials in Authorization header");
    }
  }
  if (cdn && seg.size() == 2) {  // the CDN: LFS objects by sha256, Range-capable, no auth
    for (auto& [key, repo] : repos_) {
      for (auto& [commit, files] : repo.commits) {
        for (auto& [p, f] : files) {
          if (f.lfs && sha256_hex(f.content) == seg[1]) return serve_content(req, p, f.content, {{"ETag", "\"" + seg[1] + "\""}});
        }
      }
    }
    return error_reply(404, "EntryNotFound", "no such object");
  }
  if (!seg.empty() && seg[0] == "api") return route_api(req, seg);
  const bool dataset = !seg.empty() && seg[0] == "datasets";
  const size_t base = dataset ? 1 : 0;
  if (seg.size() >= base + 5 && seg[base + 2] == "resolve") {
    return route_resolve(req, std::string(dataset ? "dataset:" : "model:") + join(seg, base, base + 2), seg[base + 3],
                         join(seg, base + 4, seg.size()));
  }
  return route_push(req, seg);
}

StubHttpReply HubServer::route_api(const RecordedRequest& req, const std::vector<std::string>& seg) {
  if (seg.size() >= 6 && (seg[1] == "models" || seg[1] == "datasets") && req.method == "GET") {
    const std::string key = (seg[1] == "models" ? "model:" : "dataset:") + join(seg, 2, 4);
    Repo* repo = find_repo(key);
    if (!repo) return error_reply(404, "RepoNotFound", "Repository not found");
    const std::string commit = resolve_rev(*repo, seg[5]);
    if (commit.empty()) return error_reply(404, "RevisionNotFound", "Invalid rev id: " + seg[5]);
    const auto& files = repo->commits[commit];
    if (seg[4] == "revision") {
      nlohmann::json siblings = nlohmann::json::array();
      for (const auto& [p, f] : files) siblings.push_back({{"rfilename", p}});
      return json_reply(200, {{"id", join(seg, 2, 4)}, {"sha", commit}, {"private", repo->private_repo}, {"siblings", siblings}});
    }
    if (seg[4] == "tree") {
      nlohmann::json all = nlohmann::json::array();
      std::set<std::string> dirs;
      for (const auto& [p, f] : files) {
        for (size_t s = p.find('/'); s != std::string::npos; s = p.find('/', s + 1)) dirs.insert(p.substr(0, s));
      }
      for (const std::string& d : dirs) all.push_back({{"type", "directory"}, {"oid", git_blob_sha1_hex(d)}, {"size", 0}, {"path", d}});
      for (const auto& [p, f] : files) {
        nlohmann::json e = {{"type", "file"}, {"size", f.content.size()}, {"path", p}};
        e["oid"] = git_blob_sha1_hex(f.lfs ? lfs_pointer(f) : f.content);
        if (f.lfs) e["lfs"] = {{"oid", sha256_hex(f.content)}, {"size", f.content.size()}, {"pointerSize", lfs_pointer(f).size()}};
        all.push_back(e);
      }
      const size_t q = req.target.find("cursor=");
      const size_t from = q == std::string::npos ? 0 : std::stoul(req.target.substr(q + 7));
      nlohmann::json page = nlohmann::json::array();
      for (size_t i = from; i < std::min(all.size(), from + page_size_); ++i) page.push_back(all[i]);
      std::vector<std::pair<std::string, std::string>> h;
      if (from + page_size_ < all.size()) {
        const std::string base = req.target.substr(0, req.target.find('?'));
        h.emplace_back("Link", "<" + endpoint() + base + "?recursive=true&cursor=" + std::to_string(from + page_size_) + ">; rel=\"next\"");
      }
      return json_reply(200, page, h);
    }
  }
  return route_push(req, seg);
}

StubHttpReply HubServer::route_resolve(const RecordedRequest& req, const std::string& key, const std::string& rev,
                                       const std::string& path) {
  Repo* repo = find_repo(key);
  if (!repo) return error_reply(404, "RepoNotFound", "Repository not found");
  const std::string commit = resolve_rev(*repo, rev);
  if (commit.empty()) return error_reply(404, "RevisionNotFound", "Invalid rev id: " + rev);
  auto& files = repo->commits[commit];
  auto it = files.find(path);
  if (it == files.end()) {
    StubHttpReply r = error_reply(404, "EntryNotFound", "Entry not found");
    r.headers.emplace_back("X-Repo-Commit", commit);
    return r;
  }
  const StubFile& f = it->second;
  if (f.lfs) {  // the Hub redirects LFS files to its CDN, telling the object's sha256 and size
    const std::string sha = sha256_hex(f.content);
    StubHttpReply r;
    r.status = 302;
    // Another origin (localhost, not 127.0.0.1), as the Hub's CDN is: clients must not send it the token.
    r.headers = {{"Location", "http://localhost:" + std::to_string(port_) + "/cdn/" + sha + "?X-Signature=stub"},
                 {"X-Repo-Commit", commit},
                 {"ETag", "\"" + git_blob_sha1_hex(lfs_pointer(f)) + "\""},
                 {"X-Linked-Etag", "\"" + sha + "\""},
                 {"X-Linked-Size", std::to_string(f.content.size())}};
    return r;
  }
  return serve_content(req, path, f.content, {{"ETag", "\"" + git_blob_sha1_hex(f.content) + "\""}, {"X-Repo-Commit", commit}});
}

StubHttpReply HubServer::serve_content(const RecordedRequest& req, const std::string& path, std::string content,
                                       std::vector<std::pair<std::string, std::string>> headers) {
  StubHttpReply r;
  r.headers = std::move(headers);
  r.headers.emplace_back("Accept-Ranges", "bytes");
  const bool get = req.method == "GET";
  if (get && corrupt_.erase(path)) content[content.size() / 2] ^= 0x5a;
  size_t from = 0;
  if (auto it = req.headers.find("range"); it != req.headers.end() && it->second.rfind("bytes=", 0) == 0) {
    from = std::stoul(it->second.substr(6));
    if (from >= content.size()) {
      r.status = 416;
      r.headers.emplace_back("Content-Range", "bytes */" + std::to_string(content.size()));
      return r;
    }
    r.status = 206;
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(from) + "-" + std::to_string(content.size() - 1) + "/" +
                                                std::to_string(content.size()));
  }
  r.body = content.substr(from);
  if (get && cut_.erase(path)) r.send_bytes = r.body.size() / 2;  // headers promise all, half arrives
  return r;
}

void HubServer::require_token(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  token_ = token;
}
void HubServer::cut_next(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  cut_.insert(path);
}
void HubServer::corrupt_next(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  corrupt_.insert(path);
}
void HubServer::set_tree_page_size(size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  page_size_ = n;
}
void HubServer::set_multipart_chunk(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  multipart_chunk_ = bytes;
}
std::vector<RecordedRequest> HubServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}
void HubServer::clear_requests() {
  std::lock_guard<std::mutex> lock(mu_);
  log_.clear();
}
std::vector<std::string> HubServer::commit_bodies() const {
  std::lock_guard<std::mutex> lock(mu_);
  return commit_bodies_;
}

}  // namespace kto::test
