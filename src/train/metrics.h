// Metric aggregation as TRL's KTOTrainer (and SFTTrainer) log it (spec/kto.md §6): each micro-batch appends
// the values it has (a metric absent from a micro-batch, e.g. rewards/margins with one label,
// is simply not appended), and a log record holds the plain mean of each list since the last
// log. `num_tokens` is a running total, logged as its latest value.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "train/kto_loss.h"

namespace kto {

// Per-sequence completion statistics of the policy's main pass, for logits/* and entropy.
struct CompletionStats {
  std::vector<double> mean_logit_sums;  // [B] Σ over completion positions of the vocab-mean logit
  std::vector<double> entropy_sums;     // [B] Σ over completion positions of the entropy
  std::vector<int64_t> n_tokens;        // [B] completion positions
};

class MetricLog {
 public:
  void add(const std::string& name, double value) { lists_[name].push_back(value); }
  // A running value (TRL's num_tokens): the list holds only the latest.
  void set(const std::string& name, double value) { lists_[name] = {value}; }
  void add(const std::string& name, const std::optional<double>& value) {
    if (value) add(name, *value);
  }
  // The KTO metrics of one micro-batch (TRL `_compute_loss`), `kl` = z.
  void add_kto(const KtoLossResult& loss, double kl, const CompletionStats& stats, std::span<const uint8_t> desirable);
  // The SFT metrics of one micro-batch (TRL SFTTrainer.compute_loss): mean_token_accuracy =
  // correct argmax predictions / completion tokens, entropy = mean over completion tokens.
  void add_sft(int64_t n_tokens, int64_t n_correct, double entropy_sum);
  // Means since the last call, with `prefix` ("" or "eval_") before each name; then clears.
  std::map<std::string, double> take(const std::string& prefix = "");
  bool empty() const { return lists_.empty(); }

 private:
  std::map<std::string, std::vector<double>> lists_;
};

}  // namespace kto
