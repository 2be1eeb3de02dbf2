// What a loaded KTO dataset holds, for `kto train --dry-run` and the logs, and the desirable /
// undesirable weight advice that TRL v1.9's KTOTrainer._prepare_dataset logs for the train split
// (shared/spec/kto.md §7: the paper's Eq. 8, (w_D·n_D)/(w_U·n_U) in [1, 4/3]).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace kto {

struct LengthStats {
  int64_t min = 0, max = 0;
  double mean = 0.0;
  static LengthStats of(std::span<const int64_t> lengths);  // all zero when empty
};

// Recommended weight ranges, each bound rounded to 2 decimals as Python's round(x, 2).
struct WeightAdvice {
  int64_t n_desirable = 0, n_undesirable = 0;  // TRL's clamped counts: max(#true, 1), max(N - n_D, 1)
  double desirable_lo = 0, desirable_hi = 0;
  double undesirable_lo = 0, undesirable_hi = 0;
  std::string message;  // the warning text (recommends EITHER range, not both)
};

// nullopt when n_D == n_U or either weight already lies in its range; else the advice.
std::optional<WeightAdvice> weight_advice(int64_t n_label_true, int64_t n_rows, double desirable_weight,
                                          double undesirable_weight);

struct DatasetStats {
  int64_t rows_read = 0;                             // dataset rows (a paired row counts once)
  int64_t read_desirable = 0, read_undesirable = 0;  // unpaired rows, before the max_length filter
  int64_t n_desirable = 0, n_undesirable = 0;        // examples kept
  int64_t dropped_long_prompt = 0;  // CUR: prompt alone >= max_length tokens
  int64_t truncated = 0;            // kept examples whose main sequence is cut to max_length
  int64_t boundary_mismatches = 0;  // prompt ids not a prefix of the prompt+completion ids
  LengthStats prompt_tokens, completion_tokens;  // kept examples, before truncation
  std::optional<WeightAdvice> imbalance;         // train split only

  int64_t n_examples() const { return n_desirable + n_undesirable; }
};

// Several lines of plain text ("  rows: …"), for --dry-run.
std::string dataset_stats_summary(const DatasetStats& stats);

}  // namespace kto
