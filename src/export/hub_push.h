// `kto push DIR ORG/NAME`: one commit of a folder's files to a Hub repository, as
// huggingface_hub's upload_folder makes it (`_commit_api.py`, `lfs.py`):
//   POST /api/repos/create {"name","organization","private","type"}   (409: exists, fine)
//   POST /api/{t}s/{id}/branch/{rev}                                   (a revision other than main)
//   POST /api/{t}s/{id}/preupload/{rev} {"files":[{"path","sample"(base64, 512 B),"size"}]}
//        -> uploadMode "lfs" | "regular" per file
//   POST {endpoint}/[datasets/]{id}.git/info/lfs/objects/batch  (git-lfs batch API, basic and
//        multipart transfers) -> PUT the bytes where it says, POST its verify action
//   POST /api/{t}s/{id}/commit/{rev}  application/x-ndjson: a "header" line, then "file"
//        (base64 content) and "lfsFile" (sha256 oid, size) lines.
// A model card README.md is written into DIR first when DIR has none (hub_card.h).
#pragma once

#include <cstdint>
#include <string>

#include "export/hub_api.h"
#include "export/hub_env.h"

namespace kto {

struct HubPushOptions {
  std::string dir;
  HubRepo repo;
  bool private_repo = false;
  std::string revision = "main";
  std::string commit_message;  // "" = "Upload with kto push"
  bool with_checkpoints = false;  // also top-level checkpoint-*/ and _* (skipped as transformers does)
};

struct HubPushResult {
  std::string commit_oid, commit_url;
  int64_t n_regular = 0, n_lfs = 0, n_lfs_uploaded = 0;  // lfs objects the Hub did not have yet
  bool card_written = false;
};

HubPushResult hub_push(const HubPushOptions& options, const HubEnv& env);

}  // namespace kto
