// The demo's arithmetic task (see demo_task.h). Random draws use std::mt19937_64 with 53-bit
// uniforms, so a seed gives the same problems and noise on every platform.
#include "demo/demo_task.h"

#include <cstdlib>
#include <unordered_set>

namespace kto {

std::string Problem::prompt() const { return std::to_string(a) + "+" + std::to_string(b) + "="; }
std::string Problem::answer() const { return std::to_string(a + b); }

ArithmeticTask::ArithmeticTask(int digits, uint64_t seed) : digits_(digits), rng_(seed * 0x9E3779B97F4A7C15ull + 17) {}

double ArithmeticTask::uniform01() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

std::vector<Problem> ArithmeticTask::draw(int64_t n, const std::vector<Problem>& exclude) {
  int64_t range = 1;
  for (int i = 0; i < digits_; ++i) range *= 10;
  std::unordered_set<int64_t> seen;
  for (const Problem& p : exclude) seen.insert(p.a * range + p.b);
  std::vector<Problem> out;
  while (static_cast<int64_t>(out.size()) < n && static_cast<int64_t>(seen.size()) < range * range) {
    Problem p{static_cast<int64_t>(uniform01() * static_cast<double>(range)), static_cast<int64_t>(uniform01() * static_cast<double>(range))};
    if (seen.insert(p.a * range + p.b).second) out.push_back(p);
  }
  return out;
}

std::string ArithmeticTask::forgotten_carry(const Problem& p) {
  int64_t sum = 0, scale = 1;
  for (int64_t a = p.a, b = p.b; a > 0 || b > 0; a /= 10, b /= 10, scale *= 10) sum += ((a % 10 + b % 10) % 10) * scale;
  return std::to_string(sum);
}

std::string ArithmeticTask::noisy_answer(const Problem& problem, double noise) {
  return uniform01() < noise ? forgotten_carry(problem) : problem.answer();
}

bool ArithmeticTask::is_right(const Problem& problem, const std::string& completion) { return completion == problem.answer(); }

}  // namespace kto
