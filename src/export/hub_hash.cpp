// sha256 / git blob sha1 (hub_hash.h) over OpenSSL EVP digests.
#include "export/hub_hash.h"

#include <cstdio>
#include <filesystem>
#include <vector>

#include "util/error.h"

#if KTO_HUB
#include <openssl/evp.h>
#endif

namespace kto {

#if KTO_HUB
namespace {
class Digest {
 public:
  explicit Digest(const EVP_MD* md) : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_, md, nullptr) != 1) fail(ErrorKind::Io, "cannot start a digest (OpenSSL)");
  }
  ~Digest() { EVP_MD_CTX_free(ctx_); }
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string hex() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, out, &n);
    static const char* const kHex = "0123456789abcdef";
    std::string s;
    for (unsigned int i = 0; i < n; ++i) s += kHex[out[i] >> 4], s += kHex[out[i] & 15];
    return s;
  }

 private:
  EVP_MD_CTX* ctx_;
};

void update_from_file(Digest& d, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(ErrorKind::Io, path, ": cannot open to check its hash");
  std::vector<char> buf(1 << 20);
  while (size_t n = std::fread(buf.data(), 1, buf.size(), f)) d.update(buf.data(), n);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) fail(ErrorKind::Io, path, ": read error while checking its hash");
}

std::string git_header(uint64_t size) { return "blob " + std::to_string(size) + std::string(1, '\0'); }
}  // namespace

std::string sha256_hex(const std::string& bytes) {
  Digest d(EVP_sha256());
  d.update(bytes.data(), bytes.size());
  return d.hex();
}

std::string git_blob_sha1_hex(const std::string& bytes) {
  Digest d(EVP_sha1());
  const std::string h = git_header(bytes.size());
  d.update(h.data(), h.size());
  d.update(bytes.data(), bytes.size());
  return d.hex();
}

std::string sha256_file_hex(const std::string& path) {
  Digest d(EVP_sha256());
  update_from_file(d, path);
  return d.hex();
}

std::string git_blob_sha1_file_hex(const std::string& path) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(ErrorKind::Io, path, ": cannot read its size");
  Digest d(EVP_sha1());
  const std::string h = git_header(size);
  d.update(h.data(), h.size());
  update_from_file(d, path);
  return d.hex();
}

#else  // !KTO_HUB

namespace {
[[noreturn]] void no_hub() { fail(ErrorKind::Unsupported, "this build of kto has no Hub client (no libcurl / libcrypto)"); }
}  // namespace
std::string sha256_hex(const std::string&) { no_hub(); }
std::string git_blob_sha1_hex(const std::string&) { no_hub(); }
std::string sha256_file_hex(const std::string&) { no_hub(); }
std::string git_blob_sha1_file_hex(const std::string&) { no_hub(); }

#endif

}  // namespace kto
