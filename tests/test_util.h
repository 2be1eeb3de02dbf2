// Helpers shared by every test binary: fixture paths, temporary directories, running the
// `kto` binary and capturing what it prints.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kto::test {

std::string fixture(const std::string& relative);  // tests/fixtures/<relative>
std::string temp_dir(const std::string& tag);      // fresh directory under $TMPDIR, removed at exit

// A raw little-endian f32 file (the reference scripts' *.f32 outputs); empty when missing.
std::vector<float> read_f32(const std::string& path);
// max |got - want| / max |want|: an error relative to the tensor's own scale (NaN gives infinity).
double scaled_error(const float* got, const float* want, size_t n);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `kto <args>` (args are passed to /bin/sh, quote them yourself).
CommandResult run_kto(const std::string& args);
// The same with environment assignments first ("NAME=value ...", as a shell takes them).
CommandResult run_kto_env(const std::string& env, const std::string& args);

}  // namespace kto::test
