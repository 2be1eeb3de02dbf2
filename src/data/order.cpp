// Deterministic shuffles and micro-batch slicing. TRL's own order (SequentialSampler over the
// prepared dataset) is the identity here; the shuffle is ours (TRL never shuffles with KL).
#include "data/order.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "util/error.h"

namespace kto {

namespace {

constexpr uint32_t kEvalSplitSalt = 0x65766131;  // "eva1": keeps the split apart from epoch shuffles

// Uniform in [0, bound) without modulo bias: reject draws below 2^64 mod bound.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

std::vector<int64_t> shuffled(int64_t n, std::seed_seq& seq) {
  std::mt19937_64 rng(seq);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[uniform_below(rng, i)]);
  }
  return order;
}

uint32_t low(uint64_t v) { return static_cast<uint32_t>(v & 0xffffffffu); }
uint32_t high(uint64_t v) { return static_cast<uint32_t>(v >> 32); }

}  // namespace

std::vector<int64_t> epoch_order(int64_t n, int64_t epoch, uint64_t seed, TrlCompat compat) {
  if (compat == TrlCompat::Yes) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    return order;
  }
  const auto e = static_cast<uint64_t>(epoch);
  std::seed_seq seq{low(seed), high(seed), low(e), high(e)};
  return shuffled(n, seq);
}

std::vector<std::vector<int64_t>> split_micro_batches(const std::vector<int64_t>& order, int64_t batch_size) {
  KTO_ASSERT(batch_size > 0, "batch size must be positive");
  std::vector<std::vector<int64_t>> batches;
  const auto b = static_cast<size_t>(batch_size);
  for (size_t i = 0; i < order.size(); i += b) {
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + b)));
  }
  return batches;
}

IndexSplit split_train_eval(int64_t n, double fraction, uint64_t seed) {
  if (!(fraction > 0.0 && fraction < 1.0)) {
    fail(ErrorKind::InvalidArgument, "eval_split must be a fraction strictly between 0 and 1, got ", fraction);
  }
  if (n < 2) fail(ErrorKind::InvalidArgument, "eval_split needs at least 2 dataset rows, the dataset has ", n);
  const auto n_eval = std::clamp<int64_t>(std::llround(fraction * static_cast<double>(n)), 1, n - 1);
  std::seed_seq seq{low(seed), high(seed), kEvalSplitSalt};
  std::vector<int64_t> order = shuffled(n, seq);
  IndexSplit split;
  split.eval.assign(order.begin(), order.begin() + n_eval);
  split.train.assign(order.begin() + n_eval, order.end());
  std::sort(split.eval.begin(), split.eval.end());
  std::sort(split.train.begin(), split.train.end());
  return split;
}

}  // namespace kto
