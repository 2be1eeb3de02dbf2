// MappedFile: a read-only memory map of a whole file (RAII, movable, not copyable).
// Used for zero-copy access to safetensors weights; the mapping lives as long as the object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kto {

class MappedFile {
 public:
  // Maps `path` read-only. Throws kto::Error (NotFound / Io) naming the path.
  static MappedFile open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace kto
