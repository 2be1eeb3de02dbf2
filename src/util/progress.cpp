// ProgressBar drawing (see progress.h); the layout follows tqdm's default bar.
#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace kto {

std::string progress_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  return buf;
}

std::string progress_bytes(double bytes) {
  static const char* const kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 999.5 && u < 4) bytes /= 1000.0, ++u;
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  else std::snprintf(buf, sizeof buf, bytes < 9.995 ? "%.2f %s" : bytes < 99.95 ? "%.1f %s" : "%.0f %s", bytes, kUnits[u]);
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, ProgressStyle style, ProgressUnit unit)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 1)), unit_(unit) {
  redraw_ = style == ProgressStyle::Redraw || (style == ProgressStyle::Auto && isatty(STDERR_FILENO));
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (redraw_) draw("", false);
}

ProgressBar::~ProgressBar() {
  if (!finished_) finish();
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::set_initial(int64_t done) {
  initial_ = done_ = std::clamp<int64_t>(done, 0, total_);
}

void ProgressBar::update(int64_t done, const std::string& suffix) {
  done_ = std::clamp<int64_t>(done, 0, total_);
  const auto now = std::chrono::steady_clock::now();
  if (redraw_) {
    if (std::chrono::duration<double>(now - last_draw_).count() < 0.1 && done_ < total_) return;
    last_draw_ = now;
    return draw(suffix, false);
  }
  const int quarter = static_cast<int>(4 * done_ / total_);
  if (quarter > last_quarter_ && quarter < 4) {
    last_quarter_ = quarter;
    draw(suffix, false);
  }
}

void ProgressBar::finish(const std::string& suffix) {
  if (finished_) return;
  finished_ = true;
  done_ = total_;
  draw(suffix, true);
}

void ProgressBar::draw(const std::string& suffix, bool final) {
  constexpr int kWidth = 24;
  const double fraction = static_cast<double>(done_) / static_cast<double>(total_);
  const int filled = static_cast<int>(fraction * kWidth + 0.5);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '-');
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? static_cast<double>(done_ - initial_) / elapsed : 0.0;
  const std::string tail = final ? "in " + progress_duration(elapsed)
                                 : (rate > 0 ? "eta " + progress_duration(static_cast<double>(total_ - done_) / rate) : "");
  if (unit_ == ProgressUnit::Bytes) {
    std::fprintf(stderr, "%s  %s [%s] %s/%s %3d%%  %s/s  %s%s%s%s", redraw_ ? "\r\033[2K" : "", label_.c_str(), bar.c_str(),
                 progress_bytes(static_cast<double>(done_)).c_str(), progress_bytes(static_cast<double>(total_)).c_str(),
                 static_cast<int>(fraction * 100 + 0.5), progress_bytes(rate).c_str(), tail.c_str(), suffix.empty() ? "" : "  ",
                 suffix.c_str(), redraw_ && !final ? "" : "\n");
    std::fflush(stderr);
    return;
  }
  std::fprintf(stderr, "%s  %s [%s] %5lld/%lld %3d%%  %s%s%s%s", redraw_ ? "\r\033[2K" : "", label_.c_str(), bar.c_str(),
               (long long)done_, (long long)total_, static_cast<int>(fraction * 100 + 0.5), tail.c_str(),
               suffix.empty() ? "" : "  ", suffix.c_str(), redraw_ && !final ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace kto
