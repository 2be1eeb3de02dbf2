// The two content hashes the Hub names files by: sha256 (large-file storage objects; the ETag
// of an LFS file) and the git blob id, sha1("blob <size>\0" + content) (the ETag of a regular
// file). Lower-case hex. Uses OpenSSL's libcrypto; without the Hub client they throw Unsupported.
#pragma once

#include <cstdint>
#include <string>

namespace kto {

std::string sha256_hex(const std::string& bytes);
std::string git_blob_sha1_hex(const std::string& bytes);
// Of a file's contents, streamed (files of any size). Io error naming the path.
std::string sha256_file_hex(const std::string& path);
std::string git_blob_sha1_file_hex(const std::string& path);

}  // namespace kto
