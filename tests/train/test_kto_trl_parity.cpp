// The trainer against the real TRL 1.9 KTOTrainer (fixture: tools/reference/make_kto_steps.py,
// tests/fixtures/kto_steps/): the same tiny Llama, data in TRL's order, the same initial LoRA
// weights; every logged metric of 10 optimizer steps and the final adapter must agree, for plain
// KTO, gradient accumulation, precomputed reference log-probs and apo_zero_unpaired.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "formats/safetensors.h"
#include "model/lora.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {
namespace {

struct Run {
  TrainConfig config;
  nlohmann::json reference;  // TRL's log_history
  LoraAdapter final_adapter;
  nlohmann::json ours;
};

Run run_variant(const std::string& variant) {
  log_set_level(LogLevel::Warn);
  const std::string dir = test::fixture("kto_steps/" + variant);
  nlohmann::json trl = json_read_file(dir + "/kto_config.json");
  TrainConfig c;
  c.model_name_or_path = test::fixture("models/llama");
  c.dataset_name = test::fixture("kto_steps/train.jsonl");
  c.output_dir = test::temp_dir("parity-" + variant);
  c.trl_compat = true;
  c.per_device_train_batch_size = trl["per_device_train_batch_size"];
  c.gradient_accumulation_steps = trl["gradient_accumulation_steps"];
  c.max_length = trl["max_length"];
  c.beta = trl["beta"];
  c.learning_rate = trl["learning_rate"];
  c.lr_scheduler_type = trl["lr_scheduler_type"];
  c.warmup_steps = trl["warmup_steps"];
  c.max_steps = trl["max_steps"];
  c.logging_steps = trl["logging_steps"];
  c.max_grad_norm = trl["max_grad_norm"];
  c.weight_decay = trl["weight_decay"];
  c.loss_type = trl["loss_type"];
  c.precompute_ref_log_probs = trl["precompute_ref_log_probs"];
  c.save_steps = 0;

  Model model = Model::load(c.model_name_or_path);
  Tokenizer tokenizer = Tokenizer::load(c.model_name_or_path);
  DataOptions options;
  options.truncation.max_length = c.max_length;
  options.trl_compat = TrlCompat::Yes;
  KtoDatasets data = load_kto_datasets(c.dataset_name, "", 0.0, tokenizer, options);
  Trainer trainer(c, model, data, lora_load_peft(dir + "/adapter_init", model.config()));
  trainer.train();
  return {c, json_read_file(dir + "/log_history.json")["log_history"], lora_load_peft(c.output_dir, model.config()),
          trainer.state().log_history};
}

void expect_logs_match(const std::string& variant) {
  Run run = run_variant(variant);
  ASSERT_EQ(run.ours.size(), run.reference.size());
  for (size_t step = 0; step < run.reference.size(); ++step) {
    const auto& want = run.reference[step];
    const auto& got = run.ours[step];
    for (auto& [key, value] : want.items()) {
      ASSERT_TRUE(got.contains(key)) << variant << " step " << step + 1 << ": we do not log " << key;
      const double w = value.get<double>(), g = got[key].get<double>();
      EXPECT_LE(std::abs(g - w), 1e-4 * std::max(1.0, std::abs(w))) << variant << " step " << step + 1 << " " << key << ": ours " << g << ", TRL " << w;
    }
    for (auto& [key, value] : got.items()) EXPECT_TRUE(want.contains(key)) << variant << " step " << step + 1 << ": TRL does not log " << key;
  }
  // The adapter after 10 steps equals PEFT's.
  SafetensorsFile trl_final = SafetensorsFile::open(test::fixture("kto_steps/" + variant + "/adapter_final/adapter_model.safetensors"));
  for (const NamedTensor& p : run.final_adapter.parameters()) {
    const SafetensorsTensor* t = trl_final.find(p.name);
    ASSERT_NE(t, nullptr) << p.name;
    std::vector<float> want(static_cast<size_t>(p.tensor.numel()));
    safetensors_to_f32(*t, want.data());
    float scale = 0;
    for (float v : want) scale = std::max(scale, std::abs(v));
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(p.tensor.f32()[i], want[i], 1e-4f * scale) << variant << " " << p.name << "[" << i << "]";
    }
  }
}

TEST(KtoTrlParity, Base) { expect_logs_match("base"); }
TEST(KtoTrlParity, GradientAccumulation) { expect_logs_match("accum"); }
TEST(KtoTrlParity, PrecomputedReference) { expect_logs_match("precompute"); }
TEST(KtoTrlParity, ApoZeroUnpaired) { expect_logs_match("apo"); }

}  // namespace
}  // namespace kto
