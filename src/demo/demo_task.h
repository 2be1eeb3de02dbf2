// The demo's synthetic task: addition of two random numbers of up to `digits` digits, as a
// prompt "317+48=" and a completion "365". The SFT data is noisy on purpose: a fraction of
// the answers to sums that need a carry forget it (317+48 → 355), the classic schoolbook
// mistake, so the model trained on it is right only part of the time, wrong in one systematic
// way, and KTO has something to fix.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kto {

struct Problem {
  int64_t a = 0, b = 0;
  std::string prompt() const;  // "317+48="
  std::string answer() const;  // "365"
};

class ArithmeticTask {
 public:
  ArithmeticTask(int digits, uint64_t seed);

  int digits() const { return digits_; }
  int max_answer_chars() const { return digits_ + 1; }
  // `n` distinct problems, none of them in `exclude` (prompts), in draw order.
  std::vector<Problem> draw(int64_t n, const std::vector<Problem>& exclude = {});
  // With probability `noise` the answer with every carry forgotten (the right one when the sum
  // has no carry), else the right answer.
  std::string noisy_answer(const Problem& problem, double noise);
  // Each digit summed mod 10: 317+48 → "355".
  static std::string forgotten_carry(const Problem& problem);
  static bool is_right(const Problem& problem, const std::string& completion);

 private:
  double uniform01();

  int digits_;
  std::mt19937_64 rng_;
};

}  // namespace kto
