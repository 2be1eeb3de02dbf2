// safetensors writer, byte-identical to `safetensors.torch.save_file` (huggingface/safetensors
// `tensor.rs` `prepare` + serde_json's compact output): dtype-descending then name order, header
// padded with spaces to 8 bytes (spec/formats.md §1.3). Streams to PATH.tmp, fsync, rename.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "formats/safetensors.h"
#include "formats/safetensors_dtype.h"
#include "util/error.h"
#include "util/json_text.h"

namespace kto {

namespace {

void check_tensor(const std::string& path, const SafetensorsWriteTensor& t) {
  const SafetensorsDtypeInfo* info = safetensors_dtype_info(t.dtype);
  if (!info) {
    fail(ErrorKind::InvalidArgument, path, ": tensor '", t.name, "' has unknown dtype \"", t.dtype, "\" (known: ",
         safetensors_dtype_list(), ")");
  }
  if (t.name == "__metadata__") fail(ErrorKind::InvalidArgument, path, ": \"__metadata__\" is not a tensor name");
  uint64_t bits = info->bits;
  for (int64_t d : t.shape) {
    if (d < 0 || __builtin_mul_overflow(bits, static_cast<uint64_t>(d), &bits)) {
      fail(ErrorKind::InvalidArgument, path, ": tensor '", t.name, "' has an invalid shape");
    }
  }
  if (bits % 8 != 0 || bits / 8 != t.nbytes) {
    fail(ErrorKind::InvalidArgument, path, ": tensor '", t.name, "' of dtype ", t.dtype, " has ", t.nbytes,
         " bytes of data, but its shape needs ", bits / 8, " bytes");
  }
  if (t.nbytes > 0 && t.data == nullptr) fail(ErrorKind::InvalidArgument, path, ": tensor '", t.name, "' has no data");
}

std::string make_header(const std::vector<SafetensorsWriteTensor>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) h += ',';
      first = false;
      json_append_string(h, k);
      h += ':';
      json_append_string(h, v);
    }
    h += '}';
  }
  size_t offset = 0;
  for (const auto& t : tensors) {
    if (h.size() > 1) h += ',';
    json_append_string(h, t.name);
    h += ":{\"dtype\":";
    json_append_string(h, t.dtype);
    h += ",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (i) h += ',';
      h += std::to_string(t.shape[i]);
    }
    h += "],\"data_offsets\":[";
    h += std::to_string(offset);
    h += ',';
    h += std::to_string(offset + t.nbytes);
    h += "]}";
    offset += t.nbytes;
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

void write_all(int fd, const std::string& tmp, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(ErrorKind::Io, tmp, ": write failed: ", std::strerror(err), "; check free disk space");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void safetensors_write(const std::string& path, std::vector<SafetensorsWriteTensor> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::set<std::string_view> names;
  for (const auto& t : tensors) {
    check_tensor(path, t);
    if (!names.insert(t.name).second) {
      fail(ErrorKind::InvalidArgument, path, ": tensor '", t.name, "' is given twice");
    }
  }
  std::sort(tensors.begin(), tensors.end(), [](const SafetensorsWriteTensor& a, const SafetensorsWriteTensor& b) {
    int ra = safetensors_dtype_info(a.dtype)->rank, rb = safetensors_dtype_info(b.dtype)->rank;
    return ra != rb ? ra > rb : a.name < b.name;
  });
  const std::string header = make_header(tensors, metadata);
  const auto header_len = static_cast<uint64_t>(header.size());  // little-endian on every supported host

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(ErrorKind::Io, tmp, ": cannot create: ", std::strerror(errno), "; check the directory exists");
  write_all(fd, tmp, &header_len, sizeof header_len);
  write_all(fd, tmp, header.data(), header.size());
  for (const auto& t : tensors) write_all(fd, tmp, t.data, t.nbytes);
  int synced = ::fsync(fd);
  int err = errno;
  if (::close(fd) != 0 && synced == 0) {
    synced = -1;
    err = errno;
  }
  if (synced != 0) {
    ::unlink(tmp.c_str());
    fail(ErrorKind::Io, tmp, ": cannot flush: ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    fail(ErrorKind::Io, path, ": cannot rename into place: ", std::strerror(err));
  }
}

}  // namespace kto
