// A minimal GGUF v3 reader for the export tests: every key's raw value bytes and every tensor's
// bytes, with the layout rules ggml's gguf.cpp enforces (alignment, packed offsets, padding after
// the last tensor) checked while reading. Plus FNV-1a-64, the hash the fixtures record
// (tools/reference/gguf_common.py computes it over the bytes llama.cpp's tools wrote).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kto::test {

struct GgufKvRaw {
  int32_t type = -1;
  std::string raw;  // the value's bytes (after the type field)
};

struct GgufTensorRaw {
  int32_t type = -1;
  std::vector<int64_t> ne;
  std::string data;
};

struct GgufFileRaw {
  std::map<std::string, GgufKvRaw> kv;
  std::map<std::string, GgufTensorRaw> tensors;
  std::string layout_error;  // "" when the file obeys ggml's layout rules

  std::string string_value(const std::string& key) const;  // "" when absent or not a string
  uint64_t array_count(const std::string& key) const;      // 0 when absent or not an array
  float f32_value(const std::string& key) const;            // NaN when absent or not F32
};

// Parses `path`; throws std::runtime_error on a truncated or malformed file.
GgufFileRaw gguf_read_raw(const std::string& path);

std::string fnv1a64(std::string_view bytes);  // 16 lower-case hex digits
std::string read_binary(const std::string& path);

}  // namespace kto::test
