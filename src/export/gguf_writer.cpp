// GGUF v3 writer (ggml/src/gguf.cpp, gguf-py GGUFWriter): header, KV pairs, tensor infos with
// offsets that are the running sum of 32-aligned tensor sizes, zero padding to the alignment
// before the data and after every tensor (spec/formats.md §5.1, trap 13).
#include "export/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "util/error.h"

namespace kto {
namespace {

template <typename T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

std::string typed(GgufValueType type) {
  std::string out;
  put<int32_t>(out, static_cast<int32_t>(type));
  return out;
}

template <typename T>
std::string scalar(GgufValueType type, T value) {
  std::string out = typed(type);
  put(out, value);
  return out;
}

template <typename T>
std::string array_of(GgufValueType element, const std::vector<T>& values) {
  std::string out = typed(GgufValueType::Array);
  put<int32_t>(out, static_cast<int32_t>(element));
  put<uint64_t>(out, values.size());
  for (const T& v : values) put(out, v);
  return out;
}

size_t pad_to(size_t n, size_t alignment) { return (n + alignment - 1) / alignment * alignment; }

}  // namespace

const char* ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return "f32";
    case GgmlType::F16: return "f16";
    case GgmlType::Q4_0: return "q4_0";
    case GgmlType::Q4_1: return "q4_1";
    case GgmlType::Q5_0: return "q5_0";
    case GgmlType::Q5_1: return "q5_1";
    case GgmlType::Q8_0: return "q8_0";
    case GgmlType::Q4_K: return "q4_K";
    case GgmlType::Q5_K: return "q5_K";
    case GgmlType::Q6_K: return "q6_K";
    case GgmlType::BF16: return "bf16";
  }
  return "?";
}

int64_t ggml_type_block_elems(GgmlType type) {
  switch (type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: return 1;
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: return 256;
    default: return 32;
  }
}

size_t ggml_type_block_bytes(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return 4;
    case GgmlType::F16: case GgmlType::BF16: return 2;
    case GgmlType::Q4_0: return 18;
    case GgmlType::Q4_1: return 20;
    case GgmlType::Q5_0: return 22;
    case GgmlType::Q5_1: return 24;
    case GgmlType::Q8_0: return 34;
    case GgmlType::Q4_K: return 144;
    case GgmlType::Q5_K: return 176;
    case GgmlType::Q6_K: return 210;
  }
  return 0;
}

size_t ggml_row_bytes(GgmlType type, int64_t n_cols) {
  const int64_t block = ggml_type_block_elems(type);
  KTO_ASSERT(n_cols % block == 0, "row of ", n_cols, " is not a multiple of ", ggml_type_name(type), "'s block");
  return static_cast<size_t>(n_cols / block) * ggml_type_block_bytes(type);
}

void GgufWriter::add_kv(const std::string& key, std::string encoded) {
  if (has_key(key)) fail(ErrorKind::InvalidArgument, "GGUF key '", key, "' is set twice");
  kvs_.push_back({key, std::move(encoded)});
}

bool GgufWriter::has_key(const std::string& key) const {
  for (const Kv& kv : kvs_) {
    if (kv.key == key) return true;
  }
  return false;
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  std::string e = typed(GgufValueType::String);
  put_string(e, value);
  add_kv(key, std::move(e));
}

void GgufWriter::add_u32(const std::string& key, uint32_t value) { add_kv(key, scalar(GgufValueType::U32, value)); }
void GgufWriter::add_i32(const std::string& key, int32_t value) { add_kv(key, scalar(GgufValueType::I32, value)); }
void GgufWriter::add_f32(const std::string& key, float value) { add_kv(key, scalar(GgufValueType::F32, value)); }
void GgufWriter::add_bool(const std::string& key, bool value) {
  add_kv(key, scalar(GgufValueType::Bool, static_cast<uint8_t>(value ? 1 : 0)));
}

void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& values) {
  std::string e = typed(GgufValueType::Array);
  put<int32_t>(e, static_cast<int32_t>(GgufValueType::String));
  put<uint64_t>(e, values.size());
  for (const std::string& v : values) put_string(e, v);
  add_kv(key, std::move(e));
}

void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& values) {
  add_kv(key, array_of(GgufValueType::F32, values));
}

void GgufWriter::add_i32s(const std::string& key, const std::vector<int32_t>& values) {
  add_kv(key, array_of(GgufValueType::I32, values));
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                            std::function<void(std::vector<uint8_t>&)> produce) {
  if (name.size() >= 64) fail(ErrorKind::InvalidArgument, "GGUF tensor name '", name, "' is longer than ggml's 63 bytes");
  for (const TensorInfo& t : tensors_) {
    if (t.name == name) fail(ErrorKind::InvalidArgument, "GGUF tensor '", name, "' is added twice");
  }
  if (ne.empty() || ne.size() > 4 || ne[0] % ggml_type_block_elems(type) != 0) {
    fail(ErrorKind::InvalidArgument, "GGUF tensor '", name, "': ", ne.size(), " dims with ne[0] = ",
         ne.empty() ? 0 : ne[0], " cannot be stored as ", ggml_type_name(type));
  }
  size_t nbytes = ggml_row_bytes(type, ne[0]);
  for (size_t i = 1; i < ne.size(); ++i) nbytes *= static_cast<size_t>(ne[i]);
  tensors_.push_back({name, std::move(ne), type, nbytes, std::move(produce)});
}

void GgufWriter::write(const std::string& path) const {
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kvs_.size());
  for (const Kv& kv : kvs_) {
    put_string(head, kv.key);
    head += kv.encoded;
  }
  size_t offset = 0;
  for (const TensorInfo& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(head, static_cast<uint64_t>(d));
    put<int32_t>(head, static_cast<int32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += pad_to(t.nbytes, kGgufAlignment);
  }
  head.resize(pad_to(head.size(), kGgufAlignment), '\0');

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(ErrorKind::Io, tmp, ": cannot open for writing (does the directory exist and is it writable?)");
  auto write_bytes = [&](const void* data, size_t n) {
    if (n && std::fwrite(data, 1, n, f) != n) {
      std::fclose(f);
      std::remove(tmp.c_str());
      fail(ErrorKind::Io, tmp, ": write failed (disk full?)");
    }
  };
  write_bytes(head.data(), head.size());
  std::vector<uint8_t> data;
  const uint8_t zeros[kGgufAlignment] = {};
  for (const TensorInfo& t : tensors_) {
    data.clear();
    t.produce(data);
    if (data.size() != t.nbytes) {
      std::fclose(f);
      std::remove(tmp.c_str());
      fail(ErrorKind::InvalidArgument, "GGUF tensor '", t.name, "' produced ", data.size(), " bytes, expected ", t.nbytes);
    }
    write_bytes(data.data(), data.size());
    write_bytes(zeros, pad_to(t.nbytes, kGgufAlignment) - t.nbytes);
  }
  if (std::fclose(f) != 0) fail(ErrorKind::Io, tmp, ": close failed");
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(ErrorKind::Io, path, ": cannot rename ", tmp, " over it: ", ec.message());
}

}  // namespace kto
