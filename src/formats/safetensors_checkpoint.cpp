// A model directory as transformers' `save_pretrained` writes it: `model.safetensors`, or
// `model.safetensors.index.json` ({"metadata": {...}, "weight_map": {tensor: shard}}) + shards
// (transformers `load_sharded_checkpoint`, huggingface_hub serialization/_base.py; formats.md §1.4).
#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {

namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

// Shard names are plain file names inside the directory; refuse anything that walks out of it.
void check_shard_name(const std::string& index, const std::string& tensor, const std::string& shard) {
  std::filesystem::path p(shard);
  bool escapes = shard.empty() || p.is_absolute();
  for (const auto& part : p) escapes = escapes || part == "..";
  if (escapes) {
    fail(ErrorKind::Format, index, ": weight_map maps tensor '", tensor, "' to \"", shard,
         "\", which is not a file name inside the model directory; fix or re-download the index");
  }
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open_dir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    fail(ErrorKind::NotFound, dir, ": no such model directory; pass a Hugging Face model directory");
  }
  SafetensorsCheckpoint ck;
  ck.dir_ = dir;
  const std::string index_path = path_join(dir, kIndex);
  if (!file_exists(index_path)) {
    const std::string single = path_join(dir, kSingle);
    if (!file_exists(single)) {
      fail(ErrorKind::NotFound, dir, ": neither ", kSingle, " nor ", kIndex,
           " is here; kto reads safetensors checkpoints only (convert PyTorch .bin weights with "
           "transformers' save_pretrained(..., safe_serialization=True))");
    }
    ck.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(single)));
    for (const SafetensorsTensor& t : ck.files_.back()->tensors()) ck.by_name_.emplace(t.name, &t);
    return ck;
  }

  nlohmann::json index = json_read_file(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    fail(ErrorKind::Format, index_path, ": has no \"weight_map\" object mapping tensor names to shard files; "
         "re-download the index");
  }
  std::map<std::string, size_t> shard_slot;
  for (const auto& [tensor, shard_json] : index["weight_map"].items()) {
    if (!shard_json.is_string()) {
      fail(ErrorKind::Format, index_path, ": weight_map entry for '", tensor, "' is ", shard_json.type_name(),
           ", not a shard file name; re-download the index");
    }
    const std::string shard = shard_json.get<std::string>();
    check_shard_name(index_path, tensor, shard);
    auto slot = shard_slot.find(shard);
    if (slot == shard_slot.end()) {
      const std::string shard_path = path_join(dir, shard);
      if (!file_exists(shard_path)) {
        fail(ErrorKind::NotFound, index_path, ": tensor '", tensor, "' is in shard ", shard,
             ", but ", shard_path, " does not exist; the download is incomplete: download the missing shard");
      }
      ck.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(shard_path)));
      slot = shard_slot.emplace(shard, ck.files_.size() - 1).first;
    }
    const SafetensorsFile& file = *ck.files_[slot->second];
    const SafetensorsTensor* t = file.find(tensor);
    if (!t) {
      fail(ErrorKind::Format, index_path, ": weight_map puts tensor '", tensor, "' in ", file.path(),
           ", which does not contain it; the index and the shards disagree: re-download them together");
    }
    ck.by_name_.emplace(tensor, t);
  }
  return ck;
}

const SafetensorsTensor* SafetensorsCheckpoint::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const SafetensorsTensor& SafetensorsCheckpoint::get(std::string_view name) const {
  const SafetensorsTensor* t = find(name);
  if (!t) {
    fail(ErrorKind::NotFound, "tensor '", name, "' is not in the checkpoint at ", dir_,
         " (", by_name_.size(), " tensors); the config.json and the weights may belong to different models");
  }
  return *t;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) out.push_back(name);
  return out;
}

}  // namespace kto
