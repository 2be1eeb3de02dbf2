// The KTO objective of one micro-batch as TRL v1.9's KTOTrainer computes it
// (trl/trainer/kto_trainer.py `_compute_loss`; shared/spec/kto.md §5–6): the loss, its gradient
// with respect to each row's summed policy log-prob, and the per-micro-batch metrics.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace kto {

enum class KtoLossType { Kto, ApoZeroUnpaired };

struct KtoLossConfig {
  KtoLossType type = KtoLossType::Kto;
  double beta = 0.1;
  double desirable_weight = 1.0;
  double undesirable_weight = 1.0;
};

struct KtoBatch {
  std::span<const double> policy_logps;  // [S] summed completion log-probs, policy (with grad)
  std::span<const double> ref_logps;     // [S] the same under the reference model
  std::span<const uint8_t> desirable;    // [S] 1 = desirable (TRL's label True)
};

// z = mean over the micro-batch of (KL policy − KL reference) log-probs, before the cross-rank
// mean and the clamp at 0 (kto_kl_clamp).
double kto_kl_mean(std::span<const double> kl_policy_logps, std::span<const double> kl_ref_logps);
inline double kto_kl_clamp(double rank_mean) { return rank_mean > 0.0 ? rank_mean : 0.0; }

struct KtoLossResult {
  double loss = 0.0;                   // mean over rows of weighted row losses (NaN rows skipped)
  std::vector<double> d_policy_logps;  // [S] ∂loss/∂policy_logp (z is detached)
  int64_t n_chosen = 0, n_rejected = 0;
  // Means over rows of that label; empty when the micro-batch has none (TRL logs nothing then).
  std::optional<double> rewards_chosen, rewards_rejected, logps_chosen, logps_rejected;
  std::optional<double> rewards_margins;  // only when both labels are present
};

// `kl` is z after the cross-rank mean and clamp (ignored by apo_zero_unpaired).
KtoLossResult kto_loss(const KtoLossConfig& config, const KtoBatch& batch, double kl);

}  // namespace kto
