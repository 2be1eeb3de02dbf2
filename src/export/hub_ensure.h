// Implicit downloads for the verbs: before the library resolves a model, adapter or dataset name
// (formats/hf_cache.h, which only reads the cache), make sure a hub id is in the cache, pulling
// what that kind needs when it is not. Local paths and cached snapshots cost no network access;
// with HF_HUB_OFFLINE set the network is never touched (the library then reports what is missing).
#pragma once

#include <string>

namespace kto {

// ModelConfig: config.json and the tokenizer files, no weights (dry runs and memory plans).
enum class HubNeed { Model, ModelConfig, Adapter, Dataset };

// `name_or_path`: a local path (left alone), "ORG/NAME", "ORG/NAME@REVISION", or for datasets
// also "ORG/NAME/FILE" (a file of the repository). Empty: nothing to do. Returns the snapshot
// directory when it pulled or found one, "" otherwise.
std::string hub_ensure_local(const std::string& name_or_path, HubNeed need);

// The globs an implicit pull fetches for each kind (config, weights, tokenizer files; the same
// without weights; the adapter's files; a dataset's JSON / JSONL files and card).
const char* const* hub_need_globs(HubNeed need);

}  // namespace kto
