// Dataset statistics and the weight-imbalance advice (TRL v1.9 kto_trainer.py, end of
// _prepare_dataset: bounds from the KTO paper's Eq. 8, rounded to 2 decimals).
#include "data/stats.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "util/error.h"

namespace kto {

namespace {

// Python's round(x, 2): the correctly rounded decimal (ties to even on the exact binary value),
// which glibc's printf also produces.
double round2(double x) {
  char text[64];
  std::snprintf(text, sizeof text, "%.2f", x);
  return std::strtod(text, nullptr);
}

}  // namespace

LengthStats LengthStats::of(std::span<const int64_t> lengths) {
  LengthStats s;
  if (lengths.empty()) return s;
  s.min = *std::min_element(lengths.begin(), lengths.end());
  s.max = *std::max_element(lengths.begin(), lengths.end());
  s.mean = static_cast<double>(std::accumulate(lengths.begin(), lengths.end(), int64_t{0})) /
           static_cast<double>(lengths.size());
  return s;
}

std::optional<WeightAdvice> weight_advice(int64_t n_label_true, int64_t n_rows, double desirable_weight,
                                          double undesirable_weight) {
  WeightAdvice a;
  a.n_desirable = std::max<int64_t>(n_label_true, 1);
  a.n_undesirable = std::max<int64_t>(n_rows - a.n_desirable, 1);
  if (a.n_desirable == a.n_undesirable) return std::nullopt;
  const auto n_d = static_cast<double>(a.n_desirable), n_u = static_cast<double>(a.n_undesirable);
  a.desirable_lo = round2(n_u * undesirable_weight / n_d);
  a.desirable_hi = round2(n_u * undesirable_weight / n_d * 1.33);
  a.undesirable_lo = round2(n_d * desirable_weight / n_u / 1.33);
  a.undesirable_hi = round2(n_d * desirable_weight / n_u);
  const bool desirable_ok = a.desirable_lo <= desirable_weight && desirable_weight <= a.desirable_hi;
  const bool undesirable_ok = a.undesirable_lo <= undesirable_weight && undesirable_weight <= a.undesirable_hi;
  if (desirable_ok || undesirable_ok) return std::nullopt;
  a.message = str_cat(n_label_true, " desirable and ", n_rows - n_label_true, " undesirable examples with desirable_weight ",
                      desirable_weight, " and undesirable_weight ", undesirable_weight,
                      " are outside the KTO paper's balance (w_D*n_D)/(w_U*n_U) in [1, 4/3]; set EITHER desirable_weight in [",
                      a.desirable_lo, ", ", a.desirable_hi, "] OR undesirable_weight in [", a.undesirable_lo, ", ",
                      a.undesirable_hi, "] (not both)");
  return a;
}

std::string dataset_stats_summary(const DatasetStats& s) {
  auto lengths = [](const LengthStats& l) {
    char mean[32];
    std::snprintf(mean, sizeof mean, "%.1f", l.mean);
    return str_cat("min ", l.min, ", mean ", mean, ", max ", l.max);
  };
  std::string out = str_cat("  rows read: ", s.rows_read, " (", s.read_desirable, " desirable, ", s.read_undesirable,
                            " undesirable after unpairing)\n",
                            "  examples: ", s.n_examples(), " (", s.n_desirable, " desirable, ", s.n_undesirable,
                            " undesirable)\n",
                            "  dropped (prompt fills max_length): ", s.dropped_long_prompt, "\n",
                            "  truncated to max_length: ", s.truncated, "\n",
                            "  prompt/completion boundary mismatches: ", s.boundary_mismatches, "\n",
                            "  prompt tokens: ", lengths(s.prompt_tokens), "\n",
                            "  completion tokens: ", lengths(s.completion_tokens), "\n");
  if (s.imbalance) out += str_cat("  weights: ", s.imbalance->message, "\n");
  return out;
}

}  // namespace kto
