// QLoRA training on the CPU: KTO with an NF4 base (the projections quantised as bitsandbytes does,
// checked bit-exact in tests/formats/test_nf4_quant.cpp) tracks the f32-base run step by step;
// optim adamw_8bit (bitsandbytes AdamW8bit, checked in test_adamw8bit.cpp) converges like 32-bit
// AdamW and resumes bit-exactly; the config keys behave. Fixture task: tests/fixtures/kto_steps
// (the tiny Llama and the KTO rows of the TRL parity test).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "formats/safetensors.h"
#include "model/lora.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/train_run.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {
namespace {

TrainConfig kto_config(const std::string& out) {
  TrainConfig c;
  c.model_name_or_path = test::fixture("models/llama");
  c.dataset_name = test::fixture("kto_steps/train.jsonl");
  c.output_dir = out;
  c.trl_compat = true, c.per_device_train_batch_size = 4, c.max_length = 64, c.beta = 0.1;
  c.learning_rate = 5e-3, c.lr_scheduler_type = "linear", c.warmup_steps = 3, c.max_steps = 10;
  c.logging_steps = 1, c.max_grad_norm = 1.0, c.weight_decay = 0.01, c.save_steps = 0;
  return c;
}

const KtoDatasets& kto_data() {
  static const KtoDatasets data = [] {
    const Tokenizer tok = Tokenizer::load(test::fixture("models/llama"));
    DataOptions options;
    options.truncation.max_length = 64;
    options.trl_compat = TrlCompat::Yes;
    return load_kto_datasets(test::fixture("kto_steps/train.jsonl"), "", 0.0, tok, options);
  }();
  return data;
}

std::vector<double> logged(const nlohmann::json& history, const std::string& key) {
  std::vector<double> out;
  for (const auto& e : history) {
    if (e.contains(key)) out.push_back(e[key].get<double>());
  }
  return out;
}

// KTO with the TRL parity run's initial adapter (B non-zero, so step 1 already moves).
nlohmann::json train_kto(const TrainConfig& c, const Model& model) {
  log_set_level(LogLevel::Warn);
  Trainer trainer(c, model, kto_data(), lora_load_peft(test::fixture("kto_steps/base/adapter_init"), model.config()));
  trainer.train();
  return trainer.state().log_history;
}

// Tolerance: NF4 moves each projection weight by up to half an NF4 step (a few % of its block's
// absmax); that shifts the log-probs of policy and reference alike, and the KTO loss depends on
// their difference, so step 1 agrees to 1e-4. Later steps train a slightly different model on the
// same batches: each step's loss stays within 0.02 of the f32 run's (measured max 0.0105, while
// the f32 loss itself moves by up to 0.05 from batch to batch), the mean signed difference over
// the 10 steps within 0.005 (measured 6e-5: NF4 is not systematically worse), and the final
// reward margin within 20%.
TEST(Nf4Train, KtoWithNf4BaseTracksTheF32Base) {
  const std::string dir = test::temp_dir("nf4train");
  const Model dense = Model::load(test::fixture("models/llama"));
  const nlohmann::json base = train_kto(kto_config(dir + "/f32"), dense);

  Model nf4 = Model::load(test::fixture("models/llama"));
  TrainConfig c = kto_config(dir + "/nf4");
  c.load_in_4bit = true, c.bnb_4bit_use_double_quant = true;
  weights_quantize_nf4(nf4.mutable_weights(), train_config_nf4(c, nf4.config().torch_dtype));
  ASSERT_TRUE(weights_have_nf4(nf4.weights()));
  const nlohmann::json quant = train_kto(c, nf4);

  const std::vector<double> l32 = logged(base, "loss"), l4 = logged(quant, "loss");
  ASSERT_EQ(l32.size(), 10u);
  ASSERT_EQ(l4.size(), l32.size());
  double max_diff = 0, mean_diff = 0;
  for (size_t i = 0; i < l32.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(l4[i] - l32[i]));
    mean_diff += (l4[i] - l32[i]) / static_cast<double>(l32.size());
  }
  EXPECT_LT(std::fabs(l4[0] - l32[0]), 1e-3) << "step 1: the same adapter on both bases";
  EXPECT_LT(max_diff, 0.02) << "per-step KTO loss, NF4 base vs f32 base";
  EXPECT_LT(std::fabs(mean_diff), 0.005) << "mean signed loss difference";
  RecordProperty("max_loss_diff", std::to_string(max_diff));
  RecordProperty("mean_loss_diff", std::to_string(mean_diff));
  const std::vector<double> m32 = logged(base, "rewards/margins"), m4 = logged(quant, "rewards/margins");
  EXPECT_NEAR(m4.back(), m32.back(), 0.2 * std::fabs(m32.back()) + 0.01) << "final reward margin";
}

// Rank 64 so that most LoRA matrices have >= 4096 elements and take the 8-bit path (smaller ones
// keep f32 states, as in bitsandbytes). Tolerance: 8-bit moments add a relative error of about
// 1% per element (the dynamic map's resolution near the block maximum), which perturbs the
// updates like gradient noise; "within noise" here is the loss change over the run, to within 10%
// of 32-bit AdamW's, and every step's loss within 0.002 (measured: 1.1e-4 and 4e-5 of a 0.039 drop;
// the loss moves by ~0.05 from batch to batch).
TEST(Nf4Train, AdamW8bitConvergesLike32BitAdamW) {
  const std::string dir = test::temp_dir("adam8train");
  const Model model = Model::load(test::fixture("models/llama"));
  log_set_level(LogLevel::Warn);
  auto run = [&](const std::string& optim) {
    TrainConfig c = kto_config(dir + "/" + optim);
    c.optim = optim, c.lora_r = 64, c.lora_alpha = 64, c.learning_rate = 2e-3, c.max_steps = 12;
    Trainer trainer(c, model, kto_data(), train_initial_adapter(c, model.config()));
    trainer.train();
    return logged(trainer.state().log_history, "loss");
  };
  const std::vector<double> l32 = run("adamw_torch"), l8 = run("adamw_8bit");
  ASSERT_EQ(l8.size(), l32.size());
  double max_diff = 0;
  for (size_t i = 0; i < l32.size(); ++i) max_diff = std::max(max_diff, std::fabs(l8[i] - l32[i]));
  const double drop32 = l32.front() - l32.back(), drop8 = l8.front() - l8.back();
  EXPECT_GT(drop32, 0.0);
  EXPECT_NEAR(drop8, drop32, 0.1 * drop32) << "loss change over the run";
  EXPECT_LT(max_diff, 0.002) << "per-step loss, adamw_8bit vs adamw_torch";
  RecordProperty("max_loss_diff", std::to_string(max_diff));
}

TEST(Nf4Train, AdamW8bitCheckpointResumesBitExactly) {
  const std::string dir = test::temp_dir("adam8resume");
  const Model model = Model::load(test::fixture("models/llama"));
  log_set_level(LogLevel::Warn);
  TrainConfig c = kto_config(dir + "/run");
  c.optim = "paged_adamw_8bit", c.lora_r = 64, c.lora_alpha = 64, c.max_steps = 4, c.save_steps = 2;
  Trainer full(c, model, kto_data(), train_initial_adapter(c, model.config()));
  full.train();
  const SafetensorsFile opt = SafetensorsFile::open(dir + "/run/checkpoint-2/optimizer.safetensors");
  const SafetensorsTensor* codes = opt.find("state1.base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  ASSERT_NE(codes, nullptr);
  EXPECT_EQ(codes->dtype, "U8");

  TrainConfig again = c;
  again.output_dir = dir + "/resumed";
  Trainer resumed(again, model, kto_data(), train_initial_adapter(again, model.config()));
  resumed.resume(dir + "/run/checkpoint-2");
  resumed.train();
  const auto want = full.adapter().parameters(), got = resumed.adapter().parameters();
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(want[i].tensor.data, got[i].tensor.data, want[i].tensor.nbytes())) << want[i].name;
  }
  EXPECT_EQ(resumed.state().log_history.back().dump(), full.state().log_history.back().dump());

  TrainConfig torch_optim = c;  // a checkpoint of 8-bit states does not resume 32-bit AdamW silently
  torch_optim.optim = "adamw_torch", torch_optim.output_dir = dir + "/other";
  Trainer other(torch_optim, model, kto_data(), train_initial_adapter(torch_optim, model.config()));
  EXPECT_THROW(other.resume(dir + "/run/checkpoint-2"), Error);
}

TEST(Nf4Train, ConfigKeys) {
  TrainConfig c;
  train_config_set(c, "load_in_4bit", "true", "test");
  train_config_set(c, "use_bnb_nested_quant", "true", "test");  // TRL ModelConfig's name
  train_config_set(c, "bnb_4bit_compute_dtype", "bfloat16", "test");
  EXPECT_TRUE(c.load_in_4bit && c.bnb_4bit_use_double_quant);
  EXPECT_NO_THROW(train_config_validate(c));
  EXPECT_TRUE(train_config_nf4(c, "bfloat16").double_quant);
  EXPECT_EQ(train_config_nf4(c, "bfloat16").dtype, DType::BF16);
  for (const char* name : {"adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit"}) {
    c.optim = name;
    EXPECT_EQ(train_config_optim(c), OptimKind::AdamW8bit) << name;
  }
  c.optim = "paged_adamw_32bit";
  EXPECT_EQ(train_config_optim(c), OptimKind::AdamW);
  c.optim = "adafactor";
  EXPECT_THROW(train_config_validate(c), Error);
  c.optim = "adamw_torch", c.bnb_4bit_quant_type = "fp4";
  EXPECT_THROW(train_config_validate(c), Error);
  c.bnb_4bit_quant_type = "nf4", c.objective = "sft", c.finetuning_type = "full";
  EXPECT_THROW(train_config_validate(c), Error);
}

}  // namespace
}  // namespace kto
