// GGUF reader for the export tests (see test_gguf_reader.h); follows ggml/src/gguf.cpp's checks.
#include "export/test_gguf_reader.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace kto::test {
namespace {

struct Cursor {
  const std::string& bytes;
  size_t pos = 0;

  void need(size_t n) const {
    if (pos + n > bytes.size()) throw std::runtime_error("GGUF truncated at byte " + std::to_string(pos));
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str() {
    const auto n = get<uint64_t>();
    need(n);
    std::string s = bytes.substr(pos, n);
    pos += n;
    return s;
  }
  void skip_value(int32_t type) {
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      str();
    } else if (type == 9) {
      const auto elem = get<int32_t>();
      const auto n = get<uint64_t>();
      for (uint64_t i = 0; i < n; ++i) skip_value(elem);
    } else if (type >= 0 && type <= 12) {
      need(sizes[type]);
      pos += sizes[type];
    } else {
      throw std::runtime_error("GGUF value type " + std::to_string(type));
    }
  }
};

// (elements per block, bytes per block) of the ggml types the exporter writes.
std::pair<int64_t, int64_t> block_of(int32_t type) {
  switch (type) {
    case 0: return {1, 4};
    case 1: case 30: return {1, 2};
    case 6: return {32, 22};
    case 7: return {32, 24};
    case 8: return {32, 34};
    case 12: return {256, 144};
    case 13: return {256, 176};
    case 14: return {256, 210};
    default: throw std::runtime_error("unexpected ggml type " + std::to_string(type));
  }
}

}  // namespace

std::string read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char b : bytes) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

GgufFileRaw gguf_read_raw(const std::string& path) {
  const std::string bytes = read_binary(path);
  Cursor c{bytes};
  GgufFileRaw f;
  if (bytes.compare(0, 4, "GGUF") != 0) throw std::runtime_error(path + ": no GGUF magic");
  c.pos = 4;
  if (c.get<uint32_t>() != 3) throw std::runtime_error(path + ": not GGUF version 3");
  const auto n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.str();
    const auto type = c.get<int32_t>();
    const size_t start = c.pos;
    c.skip_value(type);
    if (!f.kv.emplace(key, GgufKvRaw{type, bytes.substr(start, c.pos - start)}).second) f.layout_error = "duplicate key " + key;
  }
  struct Info {
    std::string name;
    std::vector<int64_t> ne;
    int32_t type;
    uint64_t offset;
  };
  std::vector<Info> infos;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Info info{c.str(), {}, 0, 0};
    const auto n_dims = c.get<uint32_t>();
    for (uint32_t d = 0; d < n_dims; ++d) info.ne.push_back(static_cast<int64_t>(c.get<uint64_t>()));
    info.type = c.get<int32_t>();
    info.offset = c.get<uint64_t>();
    if (info.name.size() >= 64) f.layout_error = "tensor name too long: " + info.name;
    infos.push_back(std::move(info));
  }
  const uint64_t align = 32;
  const uint64_t data_start = (c.pos + align - 1) / align * align;
  uint64_t expected_offset = 0;
  for (const Info& info : infos) {
    const auto [block, block_bytes] = block_of(info.type);
    if (info.ne.empty() || info.ne[0] % block != 0) f.layout_error = info.name + ": ne[0] not a multiple of its block";
    int64_t n = 1;
    for (int64_t d : info.ne) n *= d;
    const uint64_t size = static_cast<uint64_t>(n / block * block_bytes);
    if (info.offset != expected_offset) f.layout_error = info.name + ": offset is not the packed, 32-aligned one";
    c.pos = data_start + info.offset;
    c.need(size);
    f.tensors[info.name] = GgufTensorRaw{info.type, info.ne, bytes.substr(c.pos, size)};
    expected_offset += (size + align - 1) / align * align;
  }
  if (data_start + expected_offset != bytes.size()) f.layout_error = "file size is not data start + padded tensors";
  return f;
}

std::string GgufFileRaw::string_value(const std::string& key) const {
  auto it = kv.find(key);
  if (it == kv.end() || it->second.type != 8) return "";
  return it->second.raw.substr(8);
}

uint64_t GgufFileRaw::array_count(const std::string& key) const {
  auto it = kv.find(key);
  if (it == kv.end() || it->second.type != 9) return 0;
  uint64_t n;
  std::memcpy(&n, it->second.raw.data() + 4, 8);
  return n;
}

float GgufFileRaw::f32_value(const std::string& key) const {
  auto it = kv.find(key);
  if (it == kv.end() || it->second.type != 6) return std::nanf("");
  float v;
  std::memcpy(&v, it->second.raw.data(), 4);
  return v;
}

}  // namespace kto::test
