// Example order and micro-batches (shared/spec/kto.md §3). TrlCompat::Yes is TRL v1.9's order:
// the dataset as prepared, read sequentially (train_sampling_strategy "sequential"), batches of
// B in a row. TrlCompat::No shuffles once per epoch: a Fisher–Yates shuffle driven by
// std::mt19937_64 seeded with std::seed_seq{seed, epoch} and an unbiased rejection draw, both
// fully specified by the standard, so the order is the same on every platform and compiler.
#pragma once

#include <cstdint>
#include <vector>

#include "data/rows.h"

namespace kto {

// A permutation of 0..n-1: identity for TrlCompat::Yes, else the epoch's shuffle.
std::vector<int64_t> epoch_order(int64_t n, int64_t epoch, uint64_t seed, TrlCompat compat);

// Consecutive slices of `order` of batch_size examples; the last may be shorter.
std::vector<std::vector<int64_t>> split_micro_batches(const std::vector<int64_t>& order, int64_t batch_size);

// Holds out round(fraction * n) of 0..n-1 (at least 1, at most n - 1) chosen by a seeded shuffle;
// both parts keep ascending order. InvalidArgument when fraction is outside (0, 1) or n < 2.
struct IndexSplit {
  std::vector<int64_t> train, eval;
};
IndexSplit split_train_eval(int64_t n, double fraction, uint64_t seed);

}  // namespace kto
