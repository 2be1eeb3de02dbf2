// The SFT objective in the trainer (objective: sft): TRL-style tokenisation of prompt/completion,
// instruction and text rows; HF's num_items_in_batch loss over gradient accumulation; full
// fine-tuning that learns, checkpoints as an HF model directory and resumes bit-exactly; LoRA
// SFT that writes a PEFT adapter; config rules. The per-step numbers (loss, accuracy, every
// gradient) are checked against transformers in tests/model/test_full_grads.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/sft_data.h"
#include "train/sft_loss.h"
#include "train/train_run.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

std::string write_rows(const std::string& dir, const std::vector<std::string>& lines) {
  const std::string path = dir + "/rows.jsonl";
  std::ofstream out(path);
  for (const std::string& l : lines) out << l << "\n";
  return path;
}

// A small learnable task: each prompt has one fixed completion.
std::string task_rows(const std::string& dir) {
  std::vector<std::string> lines;
  for (int i = 0; i < 12; ++i) {
    lines.push_back(nlohmann::json{{"prompt", str_cat("Q", i, ":")}, {"completion", str_cat(" a", i % 3)}}.dump());
  }
  return write_rows(dir, lines);
}

TrainConfig sft_config(const std::string& out) {
  TrainConfig c;
  c.objective = "sft", c.finetuning_type = "full";
  c.model_name_or_path = test::fixture("models/llama");
  c.output_dir = out, c.learning_rate = 3e-3, c.per_device_train_batch_size = 4, c.gradient_accumulation_steps = 2;
  c.max_steps = 6, c.logging_steps = 1, c.save_steps = 3, c.max_length = 64, c.lr_scheduler_type = "constant";
  return c;
}

TEST(SftData, TokenisesAsTrlSftTrainer) {
  const Tokenizer tok = Tokenizer::load(test::fixture("models/llama"));
  const std::string dir = test::temp_dir("sftdata");
  const std::string path = write_rows(dir, {R"({"prompt": "Hello", "completion": " world"})",
                                            R"({"instruction": "Say hi", "response": " hi"})",
                                            R"({"text": "just text"})",
                                            R"({"prompt": "bad", "completion": " row", "label": false})"});
  const SftDataset d = SftDataset::load(path, tok, SftOptions{});
  ASSERT_EQ(d.size(), 3) << "the row labelled false is not trained on";
  // input_ids = tokenize(prompt + completion + eos); the mask starts at len(tokenize(prompt)).
  EXPECT_EQ(d.examples()[0].ids, tok.encode(str_cat("Hello world", tok.eos_token())));
  EXPECT_EQ(d.examples()[0].n_prompt, static_cast<int32_t>(tok.encode("Hello").size()));
  EXPECT_EQ(d.examples()[1].ids, tok.encode(str_cat("Say hi hi", tok.eos_token())));
  EXPECT_EQ(d.examples()[2].n_prompt, 0) << "text rows are scored from the first prediction on";
  SftOptions short_options;
  short_options.max_length = 3;
  EXPECT_EQ(SftDataset::load(path, tok, short_options).examples()[0].ids.size(), 3u) << "keep_start truncation";
}

TEST(SftData, ConversationalAndShapelessRowsAreClearErrors) {
  const Tokenizer tok = Tokenizer::load(test::fixture("models/llama"));
  const std::string dir = test::temp_dir("sftbad");
  try {
    SftDataset::load(write_rows(dir, {R"({"question": "x", "answer": "y"})"}), tok, SftOptions{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rows.jsonl:1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("prompt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(SftDataset::load(write_rows(dir, {R"({"messages": [{"role": "user", "content": "x"}]})"}), tok, SftOptions{}), Error);
}

// HF's num_items_in_batch: with accumulation, each micro-batch's loss is its NLL sum over the
// step's completion tokens, so the step loss is the token mean over the whole step.
TEST(SftLoss, NormalisesByTheStepsCompletionTokens) {
  const std::vector<double> a = {-2.0, -1.0}, b = {-3.0};
  const SftLossResult la = sft_loss(a, 10.0), lb = sft_loss(b, 10.0);
  EXPECT_DOUBLE_EQ(la.loss + lb.loss, 0.6);
  EXPECT_DOUBLE_EQ(la.d_policy_logps[0], -0.1);
  EXPECT_EQ(la.d_policy_logps.size(), 2u);
}

TEST(SftTrainer, FullFineTuningLearnsSavesAnHfModelAndResumesBitExactly) {
  const std::string dir = test::temp_dir("sftfull");
  const Tokenizer tok = Tokenizer::load(test::fixture("models/llama"));
  TrainConfig c = sft_config(dir + "/run");
  c.dataset_name = task_rows(dir);
  const SftDatasets data = load_sft_datasets(c.dataset_name, "", 0.0, tok, train_sft_options(c));
  Model model = Model::load(c.model_name_or_path);
  Trainer trainer(c, model, data);
  EXPECT_TRUE(trainer.full_finetuning());
  EXPECT_EQ(trainer.n_trainable(), model.config().n_params());
  trainer.train();
  const nlohmann::json& log = trainer.state().log_history;
  ASSERT_EQ(log.size(), 6u);
  EXPECT_LT(log[5]["loss"].get<double>(), log[0]["loss"].get<double>());
  EXPECT_TRUE(log[0].contains("mean_token_accuracy") && log[0].contains("entropy") && log[0].contains("num_tokens"));
  Model saved = Model::load(dir + "/run");  // the final model directory, loadable as any HF model
  EXPECT_TRUE(file_exists(dir + "/run/tokenizer.json"));
  EXPECT_TRUE(file_exists(dir + "/run/checkpoint-3/optimizer.safetensors"));

  Model resumed_model = Model::load(c.model_name_or_path);
  TrainConfig again = c;
  again.output_dir = dir + "/resumed";
  Trainer resumed(again, resumed_model, data);
  resumed.resume(dir + "/run/checkpoint-3");
  resumed.train();
  const auto want = saved.weights().parameters(), got = resumed_model.weights().parameters();
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(want[i].tensor.data, got[i].tensor.data, want[i].tensor.nbytes())) << want[i].name;
  }
  for (size_t s = 3; s < 6; ++s) EXPECT_EQ(resumed.state().log_history[s].dump(), log[s].dump());
}

TEST(SftTrainer, LoraSftWritesAPeftAdapterAndEvaluates) {
  const std::string dir = test::temp_dir("sftlora");
  const Tokenizer tok = Tokenizer::load(test::fixture("models/llama"));
  TrainConfig c = sft_config(dir + "/run");
  c.finetuning_type = "lora", c.lora_r = 4, c.eval_split = 0.25, c.eval_steps = 3;
  c.dataset_name = task_rows(dir);
  const SftDatasets data = load_sft_datasets(c.dataset_name, "", c.eval_split, tok, train_sft_options(c));
  ASSERT_TRUE(data.eval.has_value());
  const Model model = Model::load(c.model_name_or_path);
  Trainer trainer(c, model, data, train_initial_adapter(c, model.config()));
  trainer.train();
  EXPECT_TRUE(file_exists(dir + "/run/adapter_model.safetensors"));
  bool has_eval = false;
  for (const auto& entry : trainer.state().log_history) has_eval = has_eval || entry.contains("eval_mean_token_accuracy");
  EXPECT_TRUE(has_eval);
  const LoraAdapter adapter = lora_load_peft(dir + "/run", model.config());
  EXPECT_EQ(adapter.config.rank, 4);
}

TEST(SftConfig, ObjectiveAndFinetuningTypeRules) {
  TrainConfig c;
  train_config_set(c, "stage", "sft", "test");  // LLaMA-Factory's name
  EXPECT_EQ(c.objective, "sft");
  c.finetuning_type = "full";
  c.per_device_train_batch_size = 1;  // fine for SFT (no KL pairs)
  EXPECT_NO_THROW(train_config_validate(c));
  c.objective = "kto";
  EXPECT_THROW(train_config_validate(c), Error) << "full fine-tuning has no frozen reference for KTO";
  c.objective = "dpo";
  EXPECT_THROW(train_config_validate(c), Error);
  c.objective = "sft", c.finetuning_type = "qlora";
  EXPECT_THROW(train_config_validate(c), Error);
}

}  // namespace
}  // namespace kto
