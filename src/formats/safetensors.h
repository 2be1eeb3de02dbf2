// safetensors reader (zero-copy over a read-only mmap) and writer, plus model directories made of
// one file or an index + shards. Mirrors huggingface/safetensors `tensor.rs` (`read_metadata`,
// `Metadata::validate`, `prepare`) and transformers' sharded layout; spec/formats.md §1.
// Thread-safety: a SafetensorsFile / SafetensorsCheckpoint is immutable after open and may be read
// from many threads. Tensor data pointers live as long as the object that handed them out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/dtype.h"
#include "util/mapped_file.h"

namespace kto {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // "F32", "BF16", "F16", "U8", "I64", … as written in the header
  std::vector<int64_t> shape;  // [] is a scalar (one element)
  const uint8_t* data = nullptr;  // into the mapping; NOT necessarily aligned to the element size
  size_t nbytes = 0;

  int64_t numel() const;  // product of shape (1 for a scalar)
};

class SafetensorsFile {
 public:
  // Maps and validates `path` (§1.2). Throws kto::Error: NotFound/Io from the mapping, Format for
  // anything wrong inside the file; messages start with the path.
  static SafetensorsFile open(const std::string& path);

  const SafetensorsTensor* find(std::string_view name) const;  // nullptr when absent
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }  // in data order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // __metadata__
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
  std::map<std::string, std::string> metadata_;
};

// A Hugging Face model directory: `model.safetensors`, or `model.safetensors.index.json` whose
// `weight_map` names the shard of every tensor (§1.4). Move-only.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open_dir(const std::string& dir);

  const SafetensorsTensor* find(std::string_view name) const;  // nullptr when absent
  const SafetensorsTensor& get(std::string_view name) const;   // NotFound naming tensor and dir
  std::vector<std::string> names() const;                      // sorted
  const std::string& dir() const { return dir_; }
  size_t n_files() const { return files_.size(); }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsTensor*, std::less<>> by_name_;
};

// Converts F32 / BF16 / F16 data to f32 (out has t.numel() floats); Unsupported otherwise.
void safetensors_to_f32(const SafetensorsTensor& t, float* out);

// The kto DType for a safetensors dtype string (F32, BF16, F16, I32, I64, U8), else nullopt.
std::optional<DType> safetensors_dtype_to_kto(std::string_view dtype);
// The safetensors dtype string for a kto DType; Unsupported for NF4 (stored as U8 by bnb).
const char* safetensors_dtype_name(DType dtype);

struct SafetensorsWriteTensor {
  std::string name;
  std::string dtype;           // safetensors dtype string
  std::vector<int64_t> shape;
  const void* data = nullptr;  // nbytes of little-endian row-major data
  size_t nbytes = 0;
};

// Writes a file byte-identical to `safetensors.torch.save_file(tensors, path, metadata)` (§1.3):
// tensors ordered by dtype (descending enum order) then name, compact header padded with spaces to
// a multiple of 8. An empty `metadata` writes no "__metadata__" (save_file's metadata=None).
// Written to PATH.tmp, fsynced and renamed over PATH. Throws InvalidArgument for a bad tensor
// (unknown dtype, size not matching the shape, duplicate name) and Io for write failures.
void safetensors_write(const std::string& path, std::vector<SafetensorsWriteTensor> tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace kto
