// GGUF v3 writer: key/value metadata and tensor infos in insertion order, then the tensor data,
// each tensor padded to general.alignment (32) — the last one too — as ggml's gguf.cpp and
// gguf-py's GGUFWriter lay a file out (spec/formats.md §5.1). Tensor data is produced one tensor
// at a time while writing, so memory stays O(largest tensor). Not thread-safe; one writer per file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kto {

// ggml_type ids (ggml.h) of the types kto writes.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
};
const char* ggml_type_name(GgmlType type);  // "f16", "q4_K", … as ggml names them
int64_t ggml_type_block_elems(GgmlType type);   // elements per block (1, 32 or 256)
size_t ggml_type_block_bytes(GgmlType type);    // bytes per block
size_t ggml_row_bytes(GgmlType type, int64_t n_cols);  // n_cols must be a multiple of the block

// gguf_type ids (gguf.h) of metadata values.
enum class GgufValueType : int32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
  U64 = 10, I64 = 11, F64 = 12,
};

constexpr uint32_t kGgufAlignment = 32;

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_i32(const std::string& key, int32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_f32s(const std::string& key, const std::vector<float>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);
  bool has_key(const std::string& key) const;

  // A tensor of ggml dims `ne` (ne[0] fastest: HF [out, in] is ne {in, out}) whose `nbytes`
  // bytes `produce` appends to its argument when the file is written. InvalidArgument for a
  // duplicate or over-long name (ggml's limit is 63 bytes) or a size not matching type and ne.
  void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                  std::function<void(std::vector<uint8_t>&)> produce);

  // Writes PATH.tmp and renames it over PATH. Io on failure; InvalidArgument when a producer
  // yields a size other than announced.
  void write(const std::string& path) const;

 private:
  struct Kv {
    std::string key;
    std::string encoded;  // value type + value, little-endian
  };
  struct TensorInfo {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    size_t nbytes;
    std::function<void(std::vector<uint8_t>&)> produce;
  };
  void add_kv(const std::string& key, std::string encoded);

  std::vector<Kv> kvs_;
  std::vector<TensorInfo> tensors_;
};

}  // namespace kto
