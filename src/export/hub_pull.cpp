// hub_pull (hub_pull.h). Blob download with resume and verification per file; the snapshot
// walk around it. Order of cache writes as huggingface_hub: tree cache, ref, then per file the
// blob (under its lock) and the snapshot link.
#include "export/hub_pull.h"

#include <fnmatch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "export/hub_cache.h"
#include "export/hub_hash.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace fs = std::filesystem;

namespace kto {

std::vector<HubFile> hub_filter_files(const std::vector<HubFile>& files, const std::vector<std::string>& include) {
  if (include.empty()) return files;
  std::vector<HubFile> out;
  for (const HubFile& f : files) {
    for (std::string p : include) {
      if (!p.empty() && p.back() == '/') p += '*';
      if (::fnmatch(p.c_str(), f.path.c_str(), FNM_NOESCAPE) == 0) {
        out.push_back(f);
        break;
      }
    }
  }
  return out;
}

namespace {

int64_t size_of(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  return ec ? -1 : static_cast<int64_t>(n);
}

// Whether the blob at `path` holds exactly the file's content.
bool blob_ok(const std::string& path, const HubFile& f, HubCachedCheck check) {
  if (size_of(path) != f.content_size()) return false;
  if (check == HubCachedCheck::Size) return true;
  return f.is_lfs() ? sha256_file_hex(path) == f.lfs_sha256 : git_blob_sha1_file_hex(path) == f.oid;
}

struct FileJob {
  const HubApi& api;
  const HubCacheRepo& cache;
  const HubPullOptions& options;
  const std::string& commit;
  const HubFile& file;
};

// One GET of `url` appending to `part` from its current size. Returns the bytes received; a
// transport error after some bytes is swallowed (the caller resumes), before any is rethrown.
int64_t fetch_once(const FileJob& job, const std::string& url, const std::string& part, ProgressBar& bar) {
  int64_t offset = std::max<int64_t>(size_of(part), 0);
  HttpRequest req;
  req.url = url;
  req.follow_redirects = true;
  req.stall_timeout_s = job.api.env().download_timeout_s;
  req.headers.push_back("Accept-Encoding: identity");
  if (offset > 0) req.headers.push_back("Range: bytes=" + std::to_string(offset) + "-");
  std::FILE* out = std::fopen(part.c_str(), offset > 0 ? "ab" : "wb");
  if (!out) fail(ErrorKind::Io, part, ": cannot open for writing (check permissions of HF_HUB_CACHE)");
  int64_t received = 0;
  bool first = true;
  auto sink = [&](long status, const char* data, size_t n) {
    if (first && offset > 0 && status == 200) {  // the server ignored the Range: start over
      if (std::fflush(out) != 0 || ::ftruncate(fileno(out), 0) != 0) fail(ErrorKind::Io, part, ": cannot truncate");
      std::fseek(out, 0, SEEK_SET);
      offset = 0;
    }
    first = false;
    if (std::fwrite(data, 1, n, out) != n) fail(ErrorKind::Io, part, ": write failed (disk full?)");
    received += static_cast<int64_t>(n);
    bar.update(offset + received);
  };
  HttpResponse r;
  try {
    r = job.api.send(req, sink);
  } catch (const Error& e) {
    std::fclose(out);
    if (received == 0 || e.kind() != ErrorKind::Io) throw;
    log_warn(job.file.path, ": connection lost after ", progress_bytes(static_cast<double>(offset + received)), " (",
             hub_redact(e.what(), job.api.env().token), "); resuming");
    return received;
  }
  if (std::fclose(out) != 0) fail(ErrorKind::Io, part, ": write failed (disk full?)");
  if (r.status == 416 && offset > 0) {  // nothing left to send: the part file may be complete or wrong
    return 0;
  }
  if (r.status >= 300) job.api.fail_status(r, url, str_cat("download of ", job.file.path, " from ", job.api.env().endpoint));
  return received;
}

// Downloads the file into blobs/<etag> (resuming a .incomplete), verifies it, returns the etag.
std::string download_blob(const FileJob& job, int64_t& bytes) {
  const HubFile& f = job.file;
  const HubFileMeta meta = job.api.file_meta(job.options.repo, job.commit, f.path);
  if (meta.etag != f.etag()) {
    log_debug(f.path, ": the Hub's ETag ", meta.etag, " differs from the file list's ", f.etag(), "; the blob is named by the ETag");
  }
  const int64_t expected = f.content_size();
  HubFileLock lock(job.cache.lock_path(meta.etag));
  const std::string blob = job.cache.blob_path(meta.etag);
  if (fs::exists(blob) && blob_ok(blob, f, HubCachedCheck::Hash)) return meta.etag;  // another process got it
  const std::string part = blob + ".incomplete";
  std::error_code ec;
  fs::create_directories(fs::path(blob).parent_path(), ec);
  if (size_of(part) > expected) fs::remove(part, ec);
  ProgressBar bar(f.path, expected, ProgressStyle::Auto, ProgressUnit::Bytes);
  bar.set_initial(std::max<int64_t>(size_of(part), 0));
  for (int attempt = 1;; ++attempt) {
    int64_t got = 0;
    try {
      if (size_of(part) != expected) got = fetch_once(job, meta.download_url, part, bar);
    } catch (const Error& e) {  // refused, reset before any byte, 5xx, 429: retry; 4xx: no
      if (e.kind() != ErrorKind::Io || attempt >= job.options.max_attempts) throw;
      log_warn(f.path, ": ", hub_redact(e.what(), job.api.env().token), "; retrying");
    }
    bytes += got;
    const int64_t have = size_of(part);
    if (have == expected) {
      if (blob_ok(part, f, HubCachedCheck::Hash)) break;
      fs::remove(part, ec);
      log_warn(f.path, ": the downloaded bytes do not match the file's ", f.is_lfs() ? "sha256 " + f.lfs_sha256 : "git sha1 " + f.oid,
               attempt < job.options.max_attempts ? "; downloading again" : "");
    } else if (have > expected) {
      fs::remove(part, ec);
    }
    if (attempt >= job.options.max_attempts) {
      fail(ErrorKind::Io, "could not download ", f.path, " of ", job.options.repo.id, " intact after ", attempt, " attempts (",
           std::max<int64_t>(size_of(part), 0), " of ", expected, " bytes kept in ", part,
           "; run the command again to resume)");
    }
    if (got == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
  bar.finish();
  fs::rename(part, blob, ec);
  if (ec) fail(ErrorKind::Io, blob, ": cannot move the finished download into place (", ec.message(), ")");
  return meta.etag;
}

// Makes snapshots/<commit>/<path> point at an intact blob. Returns whether it downloaded.
bool pull_file(const FileJob& job, int64_t& bytes) {
  const HubFile& f = job.file;
  const std::string pointer = job.cache.pointer_path(job.commit, f.path);
  const std::string blob = job.cache.blob_path(f.etag());
  std::error_code ec;
  if (fs::exists(blob)) {
    if (blob_ok(blob, f, job.options.cached_check)) {
      if (!fs::is_symlink(pointer, ec) || !fs::exists(pointer, ec)) job.cache.link(job.commit, f.path, f.etag());
      return false;
    }
    log_warn(f.path, ": the cached blob ", blob, " is corrupt (size or hash differs); downloading it again");
    fs::remove(blob, ec);
  }
  const std::string etag = download_blob(job, bytes);
  job.cache.link(job.commit, f.path, etag);
  return true;
}

std::string offline_snapshot(const HubEnv& env, const HubPullOptions& o) {
  std::vector<std::string> missing;
  const std::string snap = hub_cached_snapshot(env, o.repo, o.revision, o.include, &missing);
  if (!snap.empty() && missing.empty()) return snap;
  fail(ErrorKind::NotFound, hub_repo_type_name(o.repo.type), " ", o.repo.id, " at ", o.revision,
       snap.empty() ? " is not in the cache " : str_cat(" is incomplete in the cache (missing ", missing.front(),
                                                         missing.size() > 1 ? str_cat(" and ", missing.size() - 1, " more") : "", ") "),
       "(", env.cache_dir, ") and HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE to download it");
}

}  // namespace

std::string hub_cached_snapshot(const HubEnv& env, const HubRepo& repo, const std::string& revision,
                                const std::vector<std::string>& include, std::vector<std::string>* missing) {
  const HubCacheRepo cache(env.cache_dir, repo);
  std::string commit = revision;
  if (!hub_is_commit_hash(revision)) {
    const std::optional<std::string> ref = cache.read_ref(revision);
    if (!ref) return "";
    commit = *ref;
  }
  const std::string snap = cache.snapshot_dir(commit);
  std::error_code ec;
  if (!fs::is_directory(snap, ec)) return "";
  if (const std::optional<std::vector<HubFile>> tree = cache.read_tree(commit); tree && missing) {
    for (const HubFile& f : hub_filter_files(*tree, include)) {
      if (!fs::exists(cache.pointer_path(commit, f.path), ec)) missing->push_back(f.path);
    }
  }
  return snap;
}

HubPullResult hub_pull(const HubPullOptions& options, const HubEnv& env) {
  hub_repo_id_check(options.repo.id);
  if (options.revision.empty() || options.revision.find("..") != std::string::npos) {
    fail(ErrorKind::InvalidArgument, "'", options.revision, "' is not a revision (a branch, tag or commit hash)");
  }
  HubPullResult result;
  if (env.offline) {
    result.snapshot_dir = offline_snapshot(env, options);
    result.commit = fs::path(result.snapshot_dir).filename().string();
    return result;
  }
  const HubApi api(env);
  const HubCacheRepo cache(env.cache_dir, options.repo);
  result.commit = hub_is_commit_hash(options.revision) ? options.revision : api.resolve_commit(options.repo, options.revision);
  std::vector<HubFile> tree;
  if (std::optional<std::vector<HubFile>> cached = cache.read_tree(result.commit)) {
    tree = std::move(*cached);
  } else {
    tree = api.list_files(options.repo, result.commit);
    cache.write_tree(result.commit, tree);
  }
  const std::vector<HubFile> files = hub_filter_files(tree, options.include);
  if (files.empty() && !options.include.empty()) {
    log_warn("no file of ", options.repo.id, " at ", options.revision, " matches --include (", tree.size(), " files)");
  }
  cache.write_ref(options.revision, result.commit);
  hub_cache_tag(env.cache_dir);
  std::error_code ec;
  fs::create_directories(cache.snapshot_dir(result.commit), ec);
  for (const HubFile& f : files) {
    const FileJob job{api, cache, options, result.commit, f};
    result.n_downloaded += pull_file(job, result.bytes_downloaded) ? 1 : 0;
  }
  result.n_files = static_cast<int64_t>(files.size());
  result.snapshot_dir = cache.snapshot_dir(result.commit);
  return result;
}

}  // namespace kto
