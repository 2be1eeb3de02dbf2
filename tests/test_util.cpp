// Test helpers: fixture lookup, scratch directories and a runner for the kto binary.
#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace kto::test {

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const auto size = static_cast<size_t>(in.tellg());
  std::vector<float> out(size / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size));
  return out;
}

double scaled_error(const float* got, const float* want, size_t n) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::abs(double{got[i]} - want[i]);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::abs(double{want[i]}));
  }
  return scale > 0 ? diff / scale : diff;
}

std::string fixture(const std::string& relative) { return std::string(KTO_FIXTURES_DIR) + "/" + relative; }

namespace {
struct TempDirs {
  std::vector<std::filesystem::path> dirs;
  ~TempDirs() {
    std::error_code ec;
    for (auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};
TempDirs g_temp_dirs;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

std::string temp_dir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/kto-test-" + tag + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) return {};
  g_temp_dirs.dirs.emplace_back(buf.data());
  return buf.data();
}

namespace {
// The suite's expectations are the CPU reference's: `device: auto` means the CPU here unless a
// test (or the caller's environment) names a device. GPU tests pass device=cuda explicitly.
// No test may reach the real Hub: by default the Hub endpoint is a closed local port (the Hub
// tests point HF_ENDPOINT at their stand-in server).
const bool g_test_environment = [] {
  return setenv("KTO_DEVICE", "cpu", 0) == 0 && setenv("HF_ENDPOINT", "http://127.0.0.1:9", 0) == 0;
}();
}  // namespace

CommandResult run_kto(const std::string& args) { return run_kto_env("", args); }

CommandResult run_kto_env(const std::string& env, const std::string& args) {
  std::string dir = temp_dir("run");
  std::string out_path = dir + "/out", err_path = dir + "/err";
  std::string cmd = (env.empty() ? "" : env + " ") + std::string(KTO_BINARY) + " " + args + " >" + out_path + " 2>" + err_path;
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

}  // namespace kto::test
