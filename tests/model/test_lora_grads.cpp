// LoRA forward and backward against PEFT + transformers (tools/reference/make_lora_grads.py):
// the fixture adapters (r=4, alpha=8, all seven projections; rsLoRA on qwen3) are read with
// lora_load_peft, three sequences run as one packed batch, and the summed completion log-probs,
// metric sums and every lora_A / lora_B gradient of Σ_s c_s · logp_s must match.
// Criteria: scalars |ours - peft| <= 1e-4 · max(1, |peft|); gradients per tensor
// max_i |ours_i - peft_i| <= 1e-4 · max_i |peft_i| (the tensor's own scale, so small entries of
// a large gradient do not need a relative match they cannot have in fp32).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/model.h"
#include "test_util.h"

namespace kto {
namespace {

using nlohmann::json;
using test::read_f32;
constexpr double kTol = 1e-4;

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "missing " << path << "; run tools/reference/make_lora_grads.py";
  return json::parse(in);
}

double rel_err(double got, double want) { return std::abs(got - want) / std::max(1.0, std::abs(want)); }

struct Case {
  json expected;
  PackedBatch batch;
  std::vector<int32_t> n_prompt;
};

Case load_case(const std::string& name) {
  Case c;
  c.expected = read_json(test::fixture("lora/" + name + "/expected.json"));
  c.batch = PackedBatch::from_sequences(c.expected["sequences"].get<std::vector<std::vector<int32_t>>>());
  c.n_prompt = c.expected["n_prompt"].get<std::vector<int32_t>>();
  return c;
}

class LoraFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model_ = std::make_unique<Model>(Model::load(test::fixture("models/" + GetParam())));
    model_->set_head_chunk_rows(4);  // chunks straddle sequence boundaries
    case_ = load_case(GetParam());
  }
  LoraAdapter load_adapter() const {
    return lora_load_peft(test::fixture("lora/" + GetParam() + "/adapter_init"), model_->config());
  }
  std::unique_ptr<Model> model_;
  Case case_;
};

TEST_P(LoraFixture, LogprobsMetricsAndGradientsMatchPeft) {
  LoraAdapter adapter = load_adapter();
  const json& e = case_.expected;
  EXPECT_EQ(adapter.config.rank, e["r"].get<int64_t>());
  EXPECT_EQ(adapter.config.use_rslora, e["use_rslora"].get<bool>());
  adapter.zero_grad();
  const TrainPass pass = model_->forward_train(case_.batch, case_.n_prompt, adapter);
  for (size_t s = 0; s < case_.n_prompt.size(); ++s) {
    EXPECT_LE(rel_err(pass.scores.logps[s], e["logps"][s]), kTol) << "logp of sequence " << s;
    EXPECT_LE(rel_err(pass.scores.mean_logit_sums[s], e["mean_logit_sums"][s]), kTol) << "mean logit " << s;
    EXPECT_LE(rel_err(pass.scores.entropy_sums[s], e["entropy_sums"][s]), kTol) << "entropy " << s;
    EXPECT_EQ(pass.scores.n_tokens[s], e["n_completion_tokens"][s].get<int64_t>());
  }
  const auto coeffs = e["coefficients"].get<std::vector<double>>();
  model_->backward_train(pass, coeffs, adapter);

  const std::vector<float> want = read_f32(test::fixture("lora/" + GetParam() + "/" + e["grads_file"].get<std::string>()));
  const std::vector<NamedTensor> grads = adapter.gradients();
  ASSERT_EQ(grads.size(), e["grads"].size());
  double worst = 0.0;
  for (const json& g : e["grads"]) {
    const std::string name = g["name"];
    const auto it = std::find_if(grads.begin(), grads.end(), [&](const NamedTensor& t) { return t.name == name; });
    ASSERT_NE(it, grads.end()) << name;
    const float* got = it->tensor.f32();
    const float* ref = want.data() + g["offset"].get<size_t>();
    ASSERT_EQ(it->tensor.numel(), int64_t{g["shape"][0]} * int64_t{g["shape"][1]}) << name;
    double diff = 0.0, scale = 0.0;
    for (int64_t i = 0; i < it->tensor.numel(); ++i) {
      diff = std::max(diff, std::abs(double{got[i]} - ref[i]));
      scale = std::max(scale, std::abs(double{ref[i]}));
    }
    const double err = scale > 0 ? diff / scale : diff;
    worst = std::max(worst, std::isnan(err) ? INFINITY : err);
    EXPECT_LE(err, kTol) << name;
  }
  std::printf("[%s] max relative LoRA gradient error %.3g over %zu tensors\n", GetParam().c_str(), worst, grads.size());
}

// The inference pass with the adapter gives the training pass's numbers (dropout is 0), and
// with no adapter the base model's sequence_logprobs.
TEST_P(LoraFixture, InferenceScoresEqualTrainingScores) {
  LoraAdapter adapter = load_adapter();
  const TrainPass pass = model_->forward_train(case_.batch, case_.n_prompt, adapter);
  const SequenceScores eval = model_->sequence_scores(case_.batch, case_.n_prompt, &adapter);
  EXPECT_EQ(eval.logps, pass.scores.logps);
  EXPECT_EQ(eval.entropy_sums, pass.scores.entropy_sums);
  const SequenceScores base = model_->sequence_scores(case_.batch, case_.n_prompt, nullptr);
  const std::vector<double> reference = model_->sequence_logprobs(case_.batch, case_.n_prompt);
  for (size_t s = 0; s < reference.size(); ++s) {
    EXPECT_NEAR(base.logps[s], reference[s], 1e-9 * std::abs(reference[s]));
    EXPECT_GT(std::abs(base.logps[s] - eval.logps[s]), 1e-3) << "the adapter should change sequence " << s;
  }
}

// A fresh PEFT-style adapter (B = 0) leaves the model unchanged, yet its B gets gradients.
TEST_P(LoraFixture, FreshAdapterIsIdentityAndGetsBGradients) {
  LoraConfig config;
  config.rank = 4;
  LoraAdapter adapter = lora_init(model_->config(), config, 7);
  const TrainPass pass = model_->forward_train(case_.batch, case_.n_prompt, adapter);
  const std::vector<double> reference = model_->sequence_logprobs(case_.batch, case_.n_prompt);
  for (size_t s = 0; s < reference.size(); ++s) EXPECT_NEAR(pass.scores.logps[s], reference[s], 1e-4);
  model_->backward_train(pass, std::vector<double>(reference.size(), 1.0), adapter);
  for (const LoraLayer& layer : adapter.layers) {
    for (const LoraWeights& w : layer.modules) {
      double b_norm = 0.0, a_norm = 0.0;
      for (int64_t i = 0; i < w.d_b.numel(); ++i) b_norm += std::abs(w.d_b.f32()[i]);
      for (int64_t i = 0; i < w.d_a.numel(); ++i) a_norm += std::abs(w.d_a.f32()[i]);
      EXPECT_GT(b_norm, 0.0);
      EXPECT_EQ(a_norm, 0.0);  // ∂/∂A = s · Bᵀ · … = 0 while B = 0
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoraFixture, ::testing::Values("llama", "mistral", "qwen2", "qwen3"));

}  // namespace
}  // namespace kto
