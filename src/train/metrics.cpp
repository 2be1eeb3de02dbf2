// MetricLog: TRL's `self._metrics[mode][name].append(...)` and `log()`'s per-name mean
// (KTOTrainer and SFTTrainer).
#include "train/metrics.h"

#include "util/error.h"

namespace kto {

void MetricLog::add_kto(const KtoLossResult& loss, double kl, const CompletionStats& stats, std::span<const uint8_t> desirable) {
  KTO_ASSERT(stats.n_tokens.size() == desirable.size());
  add("kl", kl);
  add("rewards/chosen", loss.rewards_chosen);
  add("rewards/rejected", loss.rewards_rejected);
  add("logps/chosen", loss.logps_chosen);
  add("logps/rejected", loss.logps_rejected);
  add("rewards/margins", loss.rewards_margins);
  // logits/*: token-weighted over completion positions of rows of that label; entropy: over all.
  double logit_sum[2] = {0, 0}, entropy_sum = 0;
  int64_t tokens[2] = {0, 0};
  for (size_t i = 0; i < desirable.size(); ++i) {
    const int good = desirable[i] ? 1 : 0;
    logit_sum[good] += stats.mean_logit_sums[i];
    tokens[good] += stats.n_tokens[i];
    entropy_sum += stats.entropy_sums[i];
  }
  const int64_t all_tokens = tokens[0] + tokens[1];
  add("entropy", all_tokens > 0 ? entropy_sum / static_cast<double>(all_tokens) : 0.0);
  if (tokens[1] > 0) add("logits/chosen", logit_sum[1] / static_cast<double>(tokens[1]));
  if (tokens[0] > 0) add("logits/rejected", logit_sum[0] / static_cast<double>(tokens[0]));
}

void MetricLog::add_sft(int64_t n_tokens, int64_t n_correct, double entropy_sum) {
  const double n = static_cast<double>(n_tokens);
  add("entropy", n_tokens > 0 ? entropy_sum / n : 0.0);
  add("mean_token_accuracy", n_tokens > 0 ? static_cast<double>(n_correct) / n : 0.0);
}

std::map<std::string, double> MetricLog::take(const std::string& prefix) {
  std::map<std::string, double> out;
  for (const auto& [name, values] : lists_) {
    if (values.empty()) continue;
    double sum = 0;
    for (double v : values) sum += v;
    out[prefix + name] = sum / static_cast<double>(values.size());
  }
  lists_.clear();
  return out;
}

}  // namespace kto
