// `kto pull`: a repository snapshot (all files, or those matching --include globs) into the
// Hugging Face cache (hub_cache.h), as huggingface_hub's snapshot_download does: the revision
// resolved to a commit, the commit's file list, then per file a HEAD on the resolve URL (ETag,
// size, redirect to the CDN) and a GET into blobs/<etag>.incomplete that resumes with a Range
// request after a cut connection (and in a later run). Every blob is checked against the file
// list's sha256 (LFS) or git blob sha1 before it is moved into place; a corrupt blob (downloaded
// or already cached) is fetched again.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "export/hub_api.h"
#include "export/hub_env.h"

namespace kto {

enum class HubCachedCheck { Hash, Size };  // how cached blobs are checked: full hash, or size only

struct HubPullOptions {
  HubRepo repo;
  std::string revision = "main";        // branch, tag or commit
  std::vector<std::string> include;     // fnmatch globs ("*" crosses '/'); empty = every file
  int max_attempts = 5;                 // per file: resumes after a cut, re-fetches a corrupt blob
  HubCachedCheck cached_check = HubCachedCheck::Hash;
};

struct HubPullResult {
  std::string snapshot_dir;             // CACHE/<folder>/snapshots/<commit>
  std::string commit;
  int64_t n_files = 0;                  // files of the snapshot that matched
  int64_t n_downloaded = 0;             // of them fetched now (the rest were in the cache)
  int64_t bytes_downloaded = 0;
};

HubPullResult hub_pull(const HubPullOptions& options, const HubEnv& env);

// The files of `files` that match any of `include` (all when it is empty); a pattern ending in
// '/' matches everything below that folder (huggingface_hub's filter_repo_objects).
std::vector<HubFile> hub_filter_files(const std::vector<HubFile>& files, const std::vector<std::string>& include);

// The snapshot of `revision` already in the cache, complete for `include` as far as the cached
// file list tells; "" when there is none. `missing` receives the listed files that are absent.
std::string hub_cached_snapshot(const HubEnv& env, const HubRepo& repo, const std::string& revision,
                                const std::vector<std::string>& include, std::vector<std::string>* missing);

}  // namespace kto
