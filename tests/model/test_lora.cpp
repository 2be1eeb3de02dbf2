// LoRA adapter state and files: PEFT's init distribution, target matching, the PEFT adapter
// directory (our writer against the files PEFT's save_pretrained wrote for the fixtures:
// byte-identical safetensors, same adapter_config.json fields), dropout masks, and a
// whole-decoder finite-difference check of the gradients with dropout on (PEFT's fixtures have
// p = 0, so this is where the dropout path of the backward is checked).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/model.h"
#include "test_util.h"

namespace kto {
namespace {

using nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const Model& llama() {
  static const Model model = Model::load(test::fixture("models/llama"));
  return model;
}

TEST(Lora, InitFollowsPeftKaimingUniformAndZeroB) {
  LoraConfig config;
  config.rank = 8;
  const LoraAdapter a = lora_init(llama().config(), config, 1), b = lora_init(llama().config(), config, 1);
  const LoraAdapter c = lora_init(llama().config(), config, 2);
  ASSERT_EQ(a.parameters().size(), 2u * 7u * 2u);
  for (size_t l = 0; l < a.layers.size(); ++l) {
    for (LoraModule m : kLoraModules) {
      const LoraWeights& w = a.layers[l][m];
      const int64_t in = w.a.shape()[1];
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      double sum_sq = 0.0;
      for (int64_t i = 0; i < w.a.numel(); ++i) {
        EXPECT_LE(std::abs(w.a.f32()[i]), bound);
        sum_sq += double{w.a.f32()[i]} * w.a.f32()[i];
      }
      const double std_dev = std::sqrt(sum_sq / static_cast<double>(w.a.numel()));
      EXPECT_NEAR(std_dev, bound / std::sqrt(3.0), 0.15 * bound / std::sqrt(3.0)) << lora_module_name(m);
      for (int64_t i = 0; i < w.b.numel(); ++i) EXPECT_EQ(w.b.f32()[i], 0.0f);
      EXPECT_EQ(0, std::memcmp(w.a.f32(), b.layers[l][m].a.f32(), w.a.view().nbytes()));  // same seed
      EXPECT_NE(0, std::memcmp(w.a.f32(), c.layers[l][m].a.f32(), w.a.view().nbytes()));  // other seed
    }
  }
  EXPECT_FLOAT_EQ(a.scale(), 1.0f);  // alpha 8 / r 8
  config.use_rslora = true;
  config.alpha = 16;
  EXPECT_DOUBLE_EQ(config.scale(), 16.0 / std::sqrt(8.0));
}

TEST(Lora, TargetsMatchLikePeft) {
  const ModelConfig& c = llama().config();
  const auto qv = lora_resolve_targets(c, {"q_proj", "self_attn.v_proj"});
  for (const auto& layer : qv) {
    EXPECT_EQ(layer, (std::array<bool, 7>{true, false, true, false, false, false, false}));
  }
  const auto one = lora_resolve_targets(c, {"model.layers.1.mlp.down_proj"});
  EXPECT_FALSE(one[0][6]);
  EXPECT_TRUE(one[1][6]);
  const auto all = lora_resolve_targets(c, {"all-linear"});
  for (const auto& layer : all) EXPECT_EQ(layer, (std::array<bool, 7>{true, true, true, true, true, true, true}));
  EXPECT_THROW(lora_resolve_targets(c, {"lm_head"}), Error);
  EXPECT_THROW(lora_resolve_targets(c, {"model.layers.9.mlp.up_proj"}), Error);  // matches nothing
}

// Loading PEFT's file and saving it again gives PEFT's bytes (same names, dtype, order, header).
TEST(Lora, SaveReproducesPeftFilesAndRoundTrips) {
  for (const std::string name : {"llama", "qwen3"}) {
    const std::string peft_dir = test::fixture("lora/" + name + "/adapter_init");
    const Model model = Model::load(test::fixture("models/" + name));
    const LoraAdapter adapter = lora_load_peft(peft_dir, model.config());
    const std::string dir = test::temp_dir("lora-save");
    lora_save_peft(adapter, dir);
    EXPECT_EQ(slurp(dir + "/adapter_model.safetensors"), slurp(peft_dir + "/adapter_model.safetensors")) << name;
    const std::string ours_text = slurp(dir + "/adapter_config.json");
    EXPECT_NE(ours_text.back(), '\n');
    const json ours = json::parse(ours_text), peft = json::parse(slurp(peft_dir + "/adapter_config.json"));
    for (const auto& [key, value] : ours.items()) {
      if (key == "target_modules") continue;  // a set in PEFT: order is arbitrary
      ASSERT_TRUE(peft.contains(key)) << key;
      EXPECT_EQ(value, peft[key]) << key;
    }
    auto sorted = [](std::vector<std::string> v) { return std::sort(v.begin(), v.end()), v; };
    EXPECT_EQ(sorted(ours["target_modules"]), sorted(peft["target_modules"]));
    const LoraAdapter back = lora_load_peft(dir, model.config());
    const auto p = adapter.parameters(), q = back.parameters();
    ASSERT_EQ(p.size(), q.size());
    for (size_t i = 0; i < p.size(); ++i) {
      EXPECT_EQ(p[i].name, q[i].name);
      EXPECT_EQ(0, std::memcmp(p[i].tensor.data, q[i].tensor.data, p[i].tensor.nbytes())) << p[i].name;
    }
    EXPECT_EQ(back.config.use_rslora, adapter.config.use_rslora);
    EXPECT_EQ(back.config.alpha, adapter.config.alpha);
  }
}

TEST(Lora, LoadRejectsWhatItCannotApply) {
  const std::string dir = test::temp_dir("lora-bad");
  const LoraAdapter adapter = lora_init(llama().config(), LoraConfig{}, 3);
  lora_save_peft(adapter, dir);
  json config = json::parse(slurp(dir + "/adapter_config.json"));
  config["use_dora"] = true;
  std::ofstream(dir + "/adapter_config.json") << config.dump(2);
  EXPECT_THROW(lora_load_peft(dir, llama().config()), Error);
  config["use_dora"] = false;
  config["r"] = 4;  // tensors are r = 8
  std::ofstream(dir + "/adapter_config.json") << config.dump(2);
  try {
    lora_load_peft(dir, llama().config());
    ADD_FAILURE() << "no error for a rank mismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Format);
    EXPECT_NE(std::string(e.what()).find("lora_A.weight"), std::string::npos) << e.what();
  }
  EXPECT_THROW(lora_load_peft(test::temp_dir("lora-empty"), llama().config()), Error);
}

TEST(Lora, DropoutMaskIsSeededInvertedDropout) {
  const HostTensor a = lora_dropout_mask(0.25, 64, 32, 9), b = lora_dropout_mask(0.25, 64, 32, 9);
  const HostTensor c = lora_dropout_mask(0.25, 64, 32, 10);
  EXPECT_EQ(0, std::memcmp(a.f32(), b.f32(), a.view().nbytes()));
  EXPECT_NE(0, std::memcmp(a.f32(), c.f32(), a.view().nbytes()));
  int64_t zeros = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float v = a.f32()[i];
    EXPECT_TRUE(v == 0.0f || std::abs(v - 1.0f / 0.75f) < 1e-6f);
    zeros += v == 0.0f;
  }
  EXPECT_NEAR(static_cast<double>(zeros) / static_cast<double>(a.numel()), 0.25, 0.04);
}

// Central differences of f = Σ c_s logp_s through the whole decoder (same dropout masks every
// call) at the entries of largest analytic gradient in a few modules. fp32 logps of size ~100
// make f noisy at ~1e-4, so h = 2e-2 and the criterion is |fd - analytic| <= 2e-2 · |analytic|.
TEST(Lora, DecoderGradientsWithDropoutMatchFiniteDifferences) {
  const Model& model = llama();
  LoraAdapter adapter = lora_load_peft(test::fixture("lora/llama/adapter_init"), model.config());
  adapter.config.dropout = 0.2;
  const PackedBatch batch = PackedBatch::from_sequences({{5, 9, 33, 200, 7, 81, 4}, {3, 500}, {17, 18, 19, 20, 21}});
  const std::vector<int32_t> n_prompt{3, 1, 2};
  const std::vector<double> coeffs{0.7, -1.3, 0.4};
  const DecoderTrainOptions options{42};
  auto objective = [&] {
    const TrainPass pass = model.forward_train(batch, n_prompt, adapter, options);
    double f = 0.0;
    for (size_t s = 0; s < coeffs.size(); ++s) f += coeffs[s] * pass.scores.logps[s];
    return f;
  };
  const SequenceScores eval = model.sequence_scores(batch, n_prompt, &adapter);
  adapter.zero_grad();
  const TrainPass pass = model.forward_train(batch, n_prompt, adapter, options);
  EXPECT_NE(eval.logps, pass.scores.logps);  // dropout acts in training only
  model.backward_train(pass, coeffs, adapter);
  double worst = 0.0;
  for (const auto& [layer, module] : {std::pair{0, LoraModule::Q}, std::pair{0, LoraModule::Down},
                                      std::pair{1, LoraModule::K}, std::pair{1, LoraModule::Up}}) {
    LoraWeights& w = adapter.layers[static_cast<size_t>(layer)][module];
    for (auto [param, grad] : {std::pair{&w.a, &w.d_a}, std::pair{&w.b, &w.d_b}}) {
      int64_t best = 0;
      for (int64_t i = 0; i < grad->numel(); ++i) {
        if (std::abs(grad->f32()[i]) > std::abs(grad->f32()[best])) best = i;
      }
      float& value = param->f32()[best];
      const float saved = value;
      value = saved + 2e-2f;
      const double up = objective();
      value = saved - 2e-2f;
      const double down = objective();
      value = saved;
      const double numeric = (up - down) / 4e-2, analytic = grad->f32()[best];
      EXPECT_NEAR(numeric, analytic, 2e-2 * std::abs(analytic)) << lora_module_path(layer, module);
      worst = std::max(worst, std::abs(numeric - analytic) / std::abs(analytic));
    }
  }
  std::printf("[llama, dropout 0.2] max relative |fd - analytic| %.3g\n", worst);
}

}  // namespace
}  // namespace kto
