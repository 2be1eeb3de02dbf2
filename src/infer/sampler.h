// Next-token sampling: greedy, temperature, top-k and top-p (nucleus), with a seeded RNG.
// Mirrors transformers' logits processors: temperature → top-k → top-p → softmax → draw,
// and `do_sample=False` is a plain argmax (first index on ties, as torch.argmax).
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace kto {

struct SamplingOptions {
  double temperature = 0.0;  // <= 0: greedy
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  uint64_t seed = 42;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // Picks a token from `logits` [V] (modified in place as scratch).
  int32_t sample(std::span<float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

int32_t argmax(std::span<const float> values);

}  // namespace kto
