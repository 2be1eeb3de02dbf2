// kto::Error categories and the always-on assertion handler.
#include "util/error.h"

#include <cstdio>
#include <cstdlib>

namespace kto {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "invalid argument";
    case ErrorKind::NotFound: return "not found";
    case ErrorKind::Format: return "format error";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::Io: return "i/o error";
    case ErrorKind::Cuda: return "cuda error";
    case ErrorKind::OutOfMemory: return "out of memory";
  }
  return "error";
}

int error_kind_exit_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidArgument: return 2;
    case ErrorKind::NotFound: return 3;
    case ErrorKind::Format: return 4;
    case ErrorKind::Unsupported: return 5;
    case ErrorKind::Io: return 6;
    case ErrorKind::Cuda: return 7;
    case ErrorKind::OutOfMemory: return 8;
  }
  return 1;
}

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "kto: internal error: assertion `%s` failed at %s:%d%s%s\n", expr, file, line,
               msg.empty() ? "" : ": ", msg.c_str());
  std::abort();
}

}  // namespace kto
