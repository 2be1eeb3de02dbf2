// Finding a model on disk: a local directory, or a hub id already downloaded into the Hugging Face
// cache (huggingface_hub `constants.py` for the cache root, `file_download.py` for the
// models--ORG--NAME/{refs,snapshots} layout). Downloads: export/hub_pull.h (kto pull).
#pragma once

#include <string>

namespace kto {

// Returns `name_or_path` itself when it is an existing directory; otherwise resolves a hub id
// "ORG/NAME" or "ORG/NAME@REVISION" (a branch, tag or commit hash; default "main") to
// CACHE/models--ORG--NAME/snapshots/<commit>/, where CACHE is $HF_HUB_CACHE, else
// $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else ${XDG_CACHE_HOME:-~/.cache}/huggingface/hub.
// Throws kto::Error(NotFound) saying where it looked, or InvalidArgument for a malformed id.
std::string hf_resolve_model(const std::string& name_or_path);

// The same for datasets: an existing file or directory is returned as is; a hub id resolves to
// CACHE/datasets--ORG--NAME/snapshots/<commit>/ (its JSON/JSONL files are the dataset).
std::string hf_resolve_dataset(const std::string& name_or_path);

// The cache root as described above (it need not exist).
std::string hf_hub_cache_dir();

}  // namespace kto
