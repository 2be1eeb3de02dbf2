// Full fine-tuning gradients and the SFT loss against transformers (tools/reference/
// make_sft_grads.py): two tiny models (Llama with every bias and an untied head; Qwen3 with q/k
// norms and a tied head), three {prompt, completion} sequences as one packed batch; the loss
// (mean NLL over completion tokens, HF ForCausalLMLoss with num_items_in_batch), TRL's
// mean_token_accuracy and entropy, and the .grad of every parameter must match.
// Criteria: scalars |ours - ref| <= 1e-4 · max(1, |ref|); gradients per tensor
// max_i |ours_i - ref_i| <= 1e-4 · max_i |ref_i| (as test_lora_grads.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/model.h"
#include "test_util.h"

namespace kto {
namespace {

using nlohmann::json;
constexpr double kTol = 1e-4;

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(in.good()) << "missing " << path << "; run tools/reference/make_sft_grads.py";
  const auto size = static_cast<size_t>(in.tellg());
  std::vector<float> out(size / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size));
  return out;
}

double rel_err(double got, double want) { return std::abs(got - want) / std::max(1.0, std::abs(want)); }

class FullGrads : public ::testing::TestWithParam<std::string> {};

TEST_P(FullGrads, SftLossAccuracyAndEveryGradientMatchTransformers) {
  const std::string dir = test::fixture("sft/" + GetParam());
  std::ifstream in(dir + "/expected.json");
  ASSERT_TRUE(in.good()) << "run tools/reference/make_sft_grads.py";
  const json e = json::parse(in);
  Model model = Model::load(dir + "/model");
  model.set_head_chunk_rows(4);  // chunks straddle sequence boundaries
  const PackedBatch batch = PackedBatch::from_sequences(e["sequences"].get<std::vector<std::vector<int32_t>>>());
  const auto n_prompt = e["n_prompt"].get<std::vector<int32_t>>();

  const TrainPass pass = model.forward_train_full(batch, n_prompt);
  int64_t n_tokens = 0, n_correct = 0;
  double logp_sum = 0.0, entropy_sum = 0.0;
  for (size_t s = 0; s < n_prompt.size(); ++s) {
    n_tokens += pass.scores.n_tokens[s], n_correct += pass.scores.n_correct[s];
    logp_sum += pass.scores.logps[s], entropy_sum += pass.scores.entropy_sums[s];
  }
  ASSERT_EQ(n_tokens, e["num_items_in_batch"].get<int64_t>());
  const double n = static_cast<double>(n_tokens);
  EXPECT_LE(rel_err(-logp_sum / n, e["loss"]), kTol);
  EXPECT_EQ(n_correct, e["n_correct"].get<int64_t>());
  EXPECT_LE(rel_err(static_cast<double>(n_correct) / n, e["mean_token_accuracy"]), kTol);
  EXPECT_LE(rel_err(entropy_sum / n, e["entropy"]), kTol);

  Weights grads = weights_zeros_like(model.weights());
  model.backward_train_full(pass, std::vector<double>(n_prompt.size(), -1.0 / n), grads);
  const std::vector<float> want = read_f32(dir + "/" + e["grads_file"].get<std::string>());
  const std::vector<NamedTensor> ours = grads.parameters();
  ASSERT_EQ(ours.size(), e["grads"].size()) << "every parameter (a tied head once, as the embedding)";
  double worst = 0.0;
  for (const json& g : e["grads"]) {
    const std::string name = g["name"];
    const auto it = std::find_if(ours.begin(), ours.end(), [&](const NamedTensor& t) { return t.name == name; });
    ASSERT_NE(it, ours.end()) << name;
    int64_t numel = 1;
    for (const json& d : g["shape"]) numel *= d.get<int64_t>();
    ASSERT_EQ(it->tensor.numel(), numel) << name;
    const float* got = it->tensor.f32();
    const float* ref = want.data() + g["offset"].get<size_t>();
    double diff = 0.0, scale = 0.0;
    for (int64_t i = 0; i < numel; ++i) {
      diff = std::max(diff, std::abs(double{got[i]} - ref[i]));
      scale = std::max(scale, std::abs(double{ref[i]}));
    }
    const double err = scale > 0 ? diff / scale : diff;
    worst = std::max(worst, std::isnan(err) ? INFINITY : err);
    EXPECT_LE(err, kTol) << name;
  }
  std::printf("[%s] max relative gradient error %.3g over %zu tensors\n", GetParam().c_str(), worst, ours.size());
}

// Two micro-batches accumulate: gradients of the halves add up to the whole batch's.
TEST_P(FullGrads, GradientsAccumulateOverMicroBatches) {
  const std::string dir = test::fixture("sft/" + GetParam());
  std::ifstream in(dir + "/expected.json");
  const json e = json::parse(in);
  Model model = Model::load(dir + "/model");
  const auto seqs = e["sequences"].get<std::vector<std::vector<int32_t>>>();
  const auto n_prompt = e["n_prompt"].get<std::vector<int32_t>>();
  Weights whole = weights_zeros_like(model.weights()), parts = weights_zeros_like(model.weights());
  const TrainPass all = model.forward_train_full(PackedBatch::from_sequences(seqs), n_prompt);
  model.backward_train_full(all, std::vector<double>(seqs.size(), 1.0), whole);
  for (size_t s = 0; s < seqs.size(); ++s) {
    const TrainPass one = model.forward_train_full(PackedBatch::from_sequences({seqs[s]}), {&n_prompt[s], 1});
    model.backward_train_full(one, std::vector<double>(1, 1.0), parts);
  }
  const auto a = whole.parameters(), b = parts.parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    double diff = 0.0, scale = 0.0;
    for (int64_t j = 0; j < a[i].tensor.numel(); ++j) {
      diff = std::max(diff, std::abs(double{a[i].tensor.f32()[j]} - b[i].tensor.f32()[j]));
      scale = std::max(scale, std::abs(double{a[i].tensor.f32()[j]}));
    }
    EXPECT_LE(diff, 1e-5 * scale) << a[i].name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FullGrads, ::testing::Values("llama_bias", "qwen3_tied"));

}  // namespace
}  // namespace kto
