// The training math against PyTorch: the KTO objective (TRL v1.9 formulas, gradients by
// autograd), torch.optim.AdamW trajectories and transformers' LR schedules
// (fixture: tools/reference/make_train_math.py → tests/fixtures/train/math.json).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train/adamw.h"
#include "train/kto_loss.h"
#include "train/schedule.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

const nlohmann::json& math() {
  static const nlohmann::json j = json_read_file(test::fixture("train/math.json"));
  return j;
}

void expect_rel(double actual, double expected, double tol, const std::string& what) {
  EXPECT_LE(std::abs(actual - expected), tol * std::max(1.0, std::abs(expected)))
      << what << ": got " << actual << ", want " << expected;
}

void expect_metric(const std::optional<double>& ours, const nlohmann::json& c, const char* key) {
  if (!c.contains(key)) {
    EXPECT_FALSE(ours.has_value()) << c["name"] << " " << key << " should not be logged";
    return;
  }
  ASSERT_TRUE(ours.has_value()) << c["name"] << " " << key;
  expect_rel(*ours, c[key].get<double>(), 1e-12, std::string(c["name"]) + " " + key);
}

TEST(KtoLoss, MatchesTrlFormulasAndAutograd) {
  for (const auto& c : math()["kto"]) {
    std::vector<double> policy = c["policy_logps"], ref = c["ref_logps"], klp = c["kl_policy_logps"], klr = c["kl_ref_logps"];
    std::vector<uint8_t> labels;
    for (bool b : c["labels"]) labels.push_back(b ? 1 : 0);
    KtoLossConfig config{c["loss_type"] == "kto" ? KtoLossType::Kto : KtoLossType::ApoZeroUnpaired, c["beta"],
                         c["desirable_weight"], c["undesirable_weight"]};
    double kl = c["kl"];
    if (c["name"] != "kto_kl_positive" && config.type == KtoLossType::Kto) {
      kl = kto_kl_clamp(kto_kl_mean(klp, klr));
      expect_rel(kl, c["kl"].get<double>(), 1e-12, std::string(c["name"]) + " kl");
    }
    KtoLossResult r = kto_loss(config, {policy, ref, labels}, kl);
    expect_rel(r.loss, c["loss"].get<double>(), 1e-12, std::string(c["name"]) + " loss");
    for (size_t i = 0; i < policy.size(); ++i) {
      expect_rel(r.d_policy_logps[i], c["d_policy_logps"][i].get<double>(), 1e-10, std::string(c["name"]) + " grad");
    }
    expect_metric(r.rewards_chosen, c, "rewards/chosen");
    expect_metric(r.rewards_rejected, c, "rewards/rejected");
    expect_metric(r.logps_chosen, c, "logps/chosen");
    expect_metric(r.logps_rejected, c, "logps/rejected");
    expect_metric(r.rewards_margins, c, "rewards/margins");
  }
}

TEST(AdamW, FollowsTorchTrajectory) {
  for (const auto& c : math()["adamw"]) {
    std::vector<float> param = c["start"];
    std::vector<float> m(param.size(), 0.f), v(param.size(), 0.f);
    for (size_t step = 0; step < c["lr"].size(); ++step) {
      std::vector<float> grad = c["grads"][step];
      adamw_step({.weight_decay = c["weight_decay"]}, c["lr"][step], static_cast<int64_t>(step) + 1, param, grad, {m, v});
      for (size_t i = 0; i < param.size(); ++i) {
        float want = c["params"][step][i];
        ASSERT_NEAR(param[i], want, 1e-6f * std::max(1.0f, std::abs(want))) << c["name"] << " step " << step + 1 << " [" << i << "]";
      }
    }
  }
}

TEST(Schedule, EqualsTransformersGetScheduler) {
  for (const auto& c : math()["schedules"]) {
    Schedule s{schedule_type_from_name(c["type"]), c["base_lr"], c["warmup_steps"], c["total_steps"]};
    for (size_t k = 0; k < c["lr"].size(); ++k) {
      expect_rel(s.lr(static_cast<int64_t>(k)), c["lr"][k].get<double>(), 1e-12, str_cat(c["type"], " step ", k));
    }
  }
  for (const auto& w : math()["warmup"]) {
    EXPECT_EQ(warmup_steps_resolve(w["warmup_steps"], 0.0, w["total"]), w["expected"].get<int64_t>()) << w.dump();
  }
  EXPECT_THROW(schedule_type_from_name("polynomial_decay"), Error);
}

}  // namespace
}  // namespace kto
