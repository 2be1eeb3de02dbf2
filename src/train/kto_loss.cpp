// KTO / APO-zero-unpaired losses and their analytic gradients (spec/kto.md §5):
//   kto, desirable:    w_D (1 − σ(β(r − z)))   ∂/∂r = −w_D β σ(a)(1 − σ(a)), a = β(r − z)
//   kto, undesirable:  w_U (1 − σ(β(z − r)))   ∂/∂r = +w_U β σ(b)(1 − σ(b)), b = β(z − r)
//   apo, desirable:    w_D (1 − σ(β r));  apo, undesirable: w_U σ(β r)
// averaged over the rows that are not NaN (torch.nanmean).
#include "train/kto_loss.h"

#include <cmath>

#include "util/error.h"

namespace kto {

namespace {
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

struct RowLoss {
  double value, d_logratio;
};

RowLoss row_loss(const KtoLossConfig& c, double logratio, bool desirable, double kl) {
  const double b = c.beta;
  if (c.type == KtoLossType::Kto) {
    const double arg = desirable ? b * (logratio - kl) : b * (kl - logratio);
    const double s = sigmoid(arg);
    const double w = desirable ? c.desirable_weight : c.undesirable_weight;
    return {w * (1.0 - s), (desirable ? -1.0 : 1.0) * w * b * s * (1.0 - s)};
  }
  const double s = sigmoid(b * logratio);
  if (desirable) return {c.desirable_weight * (1.0 - s), -c.desirable_weight * b * s * (1.0 - s)};
  return {c.undesirable_weight * s, c.undesirable_weight * b * s * (1.0 - s)};
}
}  // namespace

double kto_kl_mean(std::span<const double> kl_policy_logps, std::span<const double> kl_ref_logps) {
  KTO_ASSERT(kl_policy_logps.size() == kl_ref_logps.size() && !kl_policy_logps.empty());
  double sum = 0.0;
  for (size_t i = 0; i < kl_policy_logps.size(); ++i) sum += kl_policy_logps[i] - kl_ref_logps[i];
  return sum / static_cast<double>(kl_policy_logps.size());
}

KtoLossResult kto_loss(const KtoLossConfig& config, const KtoBatch& batch, double kl) {
  const size_t n = batch.policy_logps.size();
  KTO_ASSERT(batch.ref_logps.size() == n && batch.desirable.size() == n && n > 0);
  KtoLossResult r;
  r.d_policy_logps.assign(n, 0.0);
  double loss_sum = 0.0, rewards[2] = {0, 0}, logps[2] = {0, 0};
  int64_t counted = 0;
  std::vector<double> d_row(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const bool good = batch.desirable[i] != 0;
    const double logratio = batch.policy_logps[i] - batch.ref_logps[i];
    const RowLoss row = row_loss(config, logratio, good, kl);
    (good ? r.n_chosen : r.n_rejected) += 1;
    if (!std::isnan(row.value)) {  // torch.nanmean: NaN rows leave numerator and denominator
      loss_sum += row.value;
      d_row[i] = row.d_logratio;
      ++counted;
    }
    if (!std::isnan(logratio)) rewards[good] += config.beta * logratio;  // TRL sums with nansum
    if (!std::isnan(batch.policy_logps[i])) logps[good] += batch.policy_logps[i];
  }
  r.loss = counted ? loss_sum / static_cast<double>(counted) : NAN;
  for (size_t i = 0; i < n; ++i) r.d_policy_logps[i] = counted ? d_row[i] / static_cast<double>(counted) : 0.0;
  if (r.n_chosen) {
    r.rewards_chosen = rewards[1] / static_cast<double>(r.n_chosen);
    r.logps_chosen = logps[1] / static_cast<double>(r.n_chosen);
  }
  if (r.n_rejected) {
    r.rewards_rejected = rewards[0] / static_cast<double>(r.n_rejected);
    r.logps_rejected = logps[0] / static_cast<double>(r.n_rejected);
  }
  if (r.n_chosen && r.n_rejected) r.rewards_margins = *r.rewards_chosen - *r.rewards_rejected;
  return r;
}

}  // namespace kto
