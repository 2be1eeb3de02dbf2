// Sampler: greedy argmax or temperature / top-k / top-p sampling over fp32 logits.
#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "util/error.h"

namespace kto {

int32_t argmax(std::span<const float> values) {
  KTO_ASSERT(!values.empty());
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

int32_t Sampler::sample(std::span<float> logits) {
  if (options_.temperature <= 0.0) return argmax(logits);

  // Candidates sorted by logit, descending; top-k keeps the first k.
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  size_t keep = order.size();
  if (options_.top_k > 0) keep = std::min(keep, static_cast<size_t>(options_.top_k));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
                    [&](int32_t a, int32_t b) { return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]; });
  order.resize(keep);

  // Softmax of logits / temperature over the kept candidates, in double.
  const double inv_t = 1.0 / options_.temperature;
  const double top = logits[static_cast<size_t>(order[0])] * inv_t;
  std::vector<double> probs(keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    probs[i] = std::exp(logits[static_cast<size_t>(order[i])] * inv_t - top);
    total += probs[i];
  }
  // Top-p: the smallest prefix whose probability mass reaches top_p (at least one token).
  if (options_.top_p < 1.0) {
    double mass = 0.0;
    size_t n = 0;
    while (n < keep && mass < options_.top_p * total) mass += probs[n++];
    probs.resize(std::max<size_t>(n, 1));
  }
  std::discrete_distribution<size_t> pick(probs.begin(), probs.end());
  return order[pick(rng_)];
}

}  // namespace kto
