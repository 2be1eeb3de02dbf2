// The Hugging Face cache, written exactly as huggingface_hub writes it (`file_download.py`
// `_hf_hub_download_to_cache_dir`, `_snapshot_download.py`, `_tree_cache.py`), so Python tools
// and kto share one cache:
//   CACHE/CACHEDIR.TAG
//   CACHE/.locks/<folder>/<etag>.lock                  (flock'ed while a blob is written)
//   CACHE/<folder>/blobs/<etag>                         the file's bytes, named by its ETag
//   CACHE/<folder>/blobs/<etag>.incomplete              a download in progress (resumed)
//   CACHE/<folder>/snapshots/<commit>/<path>            relative symlink to ../../blobs/<etag>
//   CACHE/<folder>/refs/<revision>                      the commit hash, no newline
//   CACHE/<folder>/trees/<commit>.json                  the commit's file list (format_version 1)
// where <folder> is "models--ORG--NAME" or "datasets--ORG--NAME".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "export/hub_api.h"

namespace kto {

class HubCacheRepo {
 public:
  HubCacheRepo(std::string cache_dir, const HubRepo& repo);
  const std::string& dir() const { return dir_; }        // CACHE/<folder>
  const std::string& folder() const { return folder_; }  // <folder>
  const std::string& cache_dir() const { return cache_dir_; }
  std::string blob_path(const std::string& etag) const;
  std::string snapshot_dir(const std::string& commit) const;
  std::string pointer_path(const std::string& commit, const std::string& file) const;
  std::string ref_path(const std::string& revision) const;
  std::string tree_path(const std::string& commit) const;
  std::string lock_path(const std::string& etag) const;

  // refs/<revision> := commit (atomically, without a newline); nothing when revision is the commit.
  void write_ref(const std::string& revision, const std::string& commit) const;
  std::optional<std::string> read_ref(const std::string& revision) const;
  // snapshots/<commit>/<file> -> relative path to blobs/<etag> (replaces what is there).
  void link(const std::string& commit, const std::string& file, const std::string& etag) const;
  void write_tree(const std::string& commit, const std::vector<HubFile>& files) const;
  std::optional<std::vector<HubFile>> read_tree(const std::string& commit) const;

 private:
  std::string cache_dir_, folder_, dir_;
};

// Writes CACHE/CACHEDIR.TAG (huggingface_hub's text) when missing.
void hub_cache_tag(const std::string& cache_dir);

// Whether `s` is a full commit hash (40 lower-case hex digits).
bool hub_is_commit_hash(const std::string& s);

// An exclusive flock on a lock file (created with its folders), as huggingface_hub's
// WeakFileLock (filelock) takes on the same path: downloads of one blob by kto and by Python
// processes wait for each other. Released by the destructor.
class HubFileLock {
 public:
  explicit HubFileLock(const std::string& path);
  ~HubFileLock();
  HubFileLock(const HubFileLock&) = delete;
  HubFileLock& operator=(const HubFileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace kto
