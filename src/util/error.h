// kto::Error: the one exception type for anything a user or the environment can cause, with a
// category the CLI maps to an exit code; KTO_ASSERT for broken invariants (always on, aborts).
// Messages say what went wrong, where (file:line, tensor, key) and what to do about it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace kto {

enum class ErrorKind { InvalidArgument, NotFound, Format, Unsupported, Io, Cuda, OutOfMemory };

const char* error_kind_name(ErrorKind kind);
int error_kind_exit_code(ErrorKind kind);  // distinct non-zero exit codes, stable for scripts

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Concatenates any streamable values: str_cat("tensor ", name, " has ", n, " bytes").
template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

// Throws kto::Error(kind, str_cat(args...)).
template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, Args&&... args) {
  throw Error(kind, str_cat(std::forward<Args>(args)...));
}

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace kto

// Invariant check that stays on in release builds. Use for programming errors only; anything
// a user can cause is a kto::Error.
#define KTO_ASSERT(cond, ...)                                                   \
  do {                                                                          \
    if (!(cond)) ::kto::assert_fail(#cond, __FILE__, __LINE__, ::kto::str_cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
