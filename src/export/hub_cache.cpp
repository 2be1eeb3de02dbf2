// The cache layout of hub_cache.h. Mirrors huggingface_hub: `repo_folder_name`,
// `_cache_commit_hash_for_specific_revision` (ref text without newline), `_create_symlink`
// (os.path.relpath from the link's folder), `write_tree_cache` (json.dump indent=1, files sorted)
// and `_create_cachedir_tag`.
#include "export/hub_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace kto {

namespace {
constexpr const char* kCacheDirTag =
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/\n";

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorKind::Io, dir.string(), ": cannot create the folder (", ec.message(), "); check HF_HUB_CACHE / HF_HOME");
}
}  // namespace

HubCacheRepo::HubCacheRepo(std::string cache_dir, const HubRepo& repo) : cache_dir_(std::move(cache_dir)) {
  folder_ = std::string(hub_repo_type_name(repo.type)) + "s";
  size_t start = 0;
  for (size_t slash; (slash = repo.id.find('/', start)) != std::string::npos; start = slash + 1) {
    folder_ += "--" + repo.id.substr(start, slash - start);
  }
  folder_ += "--" + repo.id.substr(start);
  dir_ = path_join(cache_dir_, folder_);
}

std::string HubCacheRepo::blob_path(const std::string& etag) const { return dir_ + "/blobs/" + etag; }
std::string HubCacheRepo::snapshot_dir(const std::string& commit) const { return dir_ + "/snapshots/" + commit; }
std::string HubCacheRepo::pointer_path(const std::string& commit, const std::string& file) const {
  return snapshot_dir(commit) + "/" + file;
}
std::string HubCacheRepo::ref_path(const std::string& revision) const { return dir_ + "/refs/" + revision; }
std::string HubCacheRepo::tree_path(const std::string& commit) const { return dir_ + "/trees/" + commit + ".json"; }
std::string HubCacheRepo::lock_path(const std::string& etag) const {
  return cache_dir_ + "/.locks/" + folder_ + "/" + etag + ".lock";
}

void HubCacheRepo::write_ref(const std::string& revision, const std::string& commit) const {
  if (revision == commit) return;
  const std::string path = ref_path(revision);
  if (read_ref(revision) == commit) return;  // unchanged: do not write (read-only caches stay usable)
  make_dirs(fs::path(path).parent_path());
  file_write_atomic(path, commit);
}

std::optional<std::string> HubCacheRepo::read_ref(const std::string& revision) const {
  const std::string path = ref_path(revision);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  return file_read_text(path);
}

void HubCacheRepo::link(const std::string& commit, const std::string& file, const std::string& etag) const {
  const fs::path pointer = pointer_path(commit, file);
  make_dirs(pointer.parent_path());
  const fs::path target = fs::path(blob_path(etag)).lexically_relative(pointer.parent_path());
  std::error_code ec;
  fs::remove(pointer, ec);
  fs::create_symlink(target, pointer, ec);
  if (ec) fail(ErrorKind::Io, pointer.string(), ": cannot create the snapshot link (", ec.message(), ")");
}

void HubCacheRepo::write_tree(const std::string& commit, const std::vector<HubFile>& files) const {
  std::vector<const HubFile*> sorted;
  for (const HubFile& f : files) sorted.push_back(&f);
  std::sort(sorted.begin(), sorted.end(), [](const HubFile* a, const HubFile* b) { return a->path < b->path; });
  nlohmann::ordered_json entries = nlohmann::ordered_json::object();
  for (const HubFile* f : sorted) {
    nlohmann::ordered_json e = {{"size", f->size}, {"blob_id", f->oid}};
    if (f->is_lfs()) e["lfs_sha256"] = f->lfs_sha256, e["lfs_size"] = f->lfs_size;
    if (!f->xet_hash.empty()) e["xet_hash"] = f->xet_hash;
    entries[f->path] = e;
  }
  const nlohmann::ordered_json doc = {{"format_version", 1}, {"files", entries}};
  const std::string path = tree_path(commit);
  make_dirs(fs::path(path).parent_path());
  file_write_atomic(path, doc.dump(1, ' ', true));
}

std::optional<std::vector<HubFile>> HubCacheRepo::read_tree(const std::string& commit) const {
  const std::string path = tree_path(commit);
  if (!file_exists(path)) return std::nullopt;
  const nlohmann::json doc = nlohmann::json::parse(file_read_text(path), nullptr, false);
  if (!doc.is_object() || doc.value("format_version", 0) != 1 || !doc.contains("files") || !doc["files"].is_object()) {
    return std::nullopt;
  }
  std::vector<HubFile> files;
  for (const auto& [name, e] : doc["files"].items()) {
    if (!e.is_object() || !e.contains("size") || !e.contains("blob_id")) return std::nullopt;
    HubFile f;
    f.path = name;
    f.size = e["size"].get<int64_t>();
    f.oid = e["blob_id"].get<std::string>();
    if (e.contains("lfs_sha256")) f.lfs_sha256 = e["lfs_sha256"].get<std::string>(), f.lfs_size = e.value("lfs_size", f.size);
    if (e.contains("xet_hash")) f.xet_hash = e["xet_hash"].get<std::string>();
    files.push_back(std::move(f));
  }
  return files;
}

void hub_cache_tag(const std::string& cache_dir) {
  const std::string path = path_join(cache_dir, "CACHEDIR.TAG");
  if (file_exists(path)) return;
  try {
    file_write_atomic(path, kCacheDirTag);
  } catch (const Error&) {  // best effort, as huggingface_hub
  }
}

bool hub_is_commit_hash(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

HubFileLock::HubFileLock(const std::string& path) {
  make_dirs(fs::path(path).parent_path());
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(ErrorKind::Io, path, ": cannot open the lock file");
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      ::close(fd_);
      fail(ErrorKind::Io, path, ": cannot lock");
    }
  }
}

HubFileLock::~HubFileLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

}  // namespace kto
