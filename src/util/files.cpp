// File helpers: whole-file reads, atomic writes, JSON files with located parse errors.
#include "util/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

namespace kto {

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

std::string file_read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail(file_exists(path) ? ErrorKind::Io : ErrorKind::NotFound, path, ": cannot open: ",
         std::strerror(errno));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void file_write_atomic(const std::string& path, const std::string& contents) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(ErrorKind::Io, tmp, ": cannot create: ", std::strerror(errno));
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      int err = errno;
      ::close(fd);
      fail(ErrorKind::Io, tmp, ": write failed: ", std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) fail(ErrorKind::Io, tmp, ": cannot flush: ", std::strerror(errno));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    fail(ErrorKind::Io, path, ": cannot rename into place: ", std::strerror(errno));
  }
}

// Converts a byte offset in `text` to "line:column" (both 1-based).
static std::string line_column(const std::string& text, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return str_cat(line, ":", col);
}

nlohmann::json json_read_file(const std::string& path) {
  std::string text = file_read_text(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    size_t at = e.byte > 0 ? e.byte - 1 : 0;
    std::string what = e.what();
    size_t cut = what.find(": ", what.find("parse error"));
    fail(ErrorKind::Format, path, ":", line_column(text, at), ": invalid JSON",
         cut == std::string::npos ? "" : what.substr(cut));
  }
}

std::string path_join(const std::string& a, const std::string& b) {
  return (std::filesystem::path(a) / b).string();
}

}  // namespace kto
