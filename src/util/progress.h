// A progress bar on stderr for long loops (training steps, sampling), as tqdm draws one:
// "  label [######----------]  120/400  30%  4.1 it/s  eta 1m08s  loss 0.412". On a terminal it
// redraws one line in place (\r); otherwise (a log file, a pipe, a test) it prints a line at
// every quarter, so logs stay short. Not thread-safe: one owner updates it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kto {

enum class ProgressStyle { Auto, Redraw, Lines };  // Auto: Redraw when stderr is a terminal
// Bytes draws counts as sizes and adds the rate, as tqdm's unit="B", unit_scale=True:
// "12.0 MB/45.1 MB  27%  5.10 MB/s".
enum class ProgressUnit { Items, Bytes };

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, ProgressStyle style = ProgressStyle::Auto,
              ProgressUnit unit = ProgressUnit::Items);
  ~ProgressBar();  // finishes the line if finish() was not called
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Sets the count done so far and an optional suffix ("loss 0.41"); redraws at most ~10×/s.
  void update(int64_t done, const std::string& suffix = "");
  // Draws the final state and ends the line.
  void finish(const std::string& suffix = "");
  double elapsed_seconds() const;
  // Counts `done` as already there (a resumed download): shown as done, left out of the rate.
  void set_initial(int64_t done);

 private:
  void draw(const std::string& suffix, bool final);

  std::string label_;
  int64_t total_ = 0, done_ = 0, initial_ = 0;
  ProgressUnit unit_ = ProgressUnit::Items;
  bool redraw_ = true, finished_ = false;
  int last_quarter_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// "8s", "1m08s", "1h02m".
std::string progress_duration(double seconds);
// "512 B", "1.50 kB", "12.0 MB", "3.21 GB" (decimal units, as tqdm and huggingface_hub print).
std::string progress_bytes(double bytes);

}  // namespace kto
