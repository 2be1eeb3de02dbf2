// Atomic checkpoint publication: write into `checkpoint-N.tmp-PID`, fsync the files and the
// directory, rename to `checkpoint-N`, fsync the parent. A leftover .tmp directory (from a kill)
// is never read and is removed by the next save.
#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "util/error.h"

namespace kto {

namespace fs = std::filesystem;

namespace {
constexpr const char* kPrefix = "checkpoint-";

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorKind::Io, path.string(), ": cannot open to flush");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(ErrorKind::Io, path.string(), ": fsync failed");
}

// "checkpoint-120" → 120; anything else (including "checkpoint-120.tmp-77") → nullopt.
std::optional<int64_t> checkpoint_step(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return std::nullopt;
  const std::string digits = name.substr(std::char_traits<char>::length(kPrefix));
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  return std::stoll(digits);
}
}  // namespace

std::string checkpoint_write(const std::string& output_dir, int64_t step, const std::function<void(const std::string&)>& fill) {
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec) fail(ErrorKind::Io, output_dir, ": cannot create the output directory: ", ec.message());
  for (const auto& entry : fs::directory_iterator(output_dir)) {  // leftovers of a killed save
    if (entry.path().filename().string().find(".tmp-") != std::string::npos) fs::remove_all(entry.path(), ec);
  }
  const fs::path final_dir = fs::path(output_dir) / str_cat(kPrefix, step);
  const fs::path tmp_dir = fs::path(output_dir) / str_cat(kPrefix, step, ".tmp-", ::getpid());
  fs::create_directories(tmp_dir, ec);
  if (ec) fail(ErrorKind::Io, tmp_dir.string(), ": cannot create: ", ec.message());
  fill(tmp_dir.string());
  for (const auto& entry : fs::directory_iterator(tmp_dir)) {
    if (entry.is_regular_file()) fsync_path(entry.path());
  }
  fsync_path(tmp_dir);
  if (fs::exists(final_dir)) fs::remove_all(final_dir, ec);  // re-saving the same step
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) fail(ErrorKind::Io, final_dir.string(), ": cannot publish the checkpoint: ", ec.message());
  fsync_path(output_dir);
  return final_dir.string();
}

std::vector<int64_t> checkpoint_list(const std::string& output_dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return steps;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    if (!entry.is_directory()) continue;
    if (auto step = checkpoint_step(entry.path().filename().string())) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::optional<std::string> checkpoint_latest(const std::string& output_dir) {
  std::vector<int64_t> steps = checkpoint_list(output_dir);
  if (steps.empty()) return std::nullopt;
  return (fs::path(output_dir) / str_cat(kPrefix, steps.back())).string();
}

void checkpoint_rotate(const std::string& output_dir, int64_t keep) {
  if (keep <= 0) return;
  std::vector<int64_t> steps = checkpoint_list(output_dir);
  std::error_code ec;
  for (size_t i = 0; i + static_cast<size_t>(keep) < steps.size(); ++i) {
    fs::remove_all(fs::path(output_dir) / str_cat(kPrefix, steps[i]), ec);
    if (ec) fail(ErrorKind::Io, output_dir, ": cannot remove old checkpoint-", steps[i], ": ", ec.message());
  }
}

}  // namespace kto
