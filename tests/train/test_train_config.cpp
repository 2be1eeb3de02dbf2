// TrainConfig: defaults equal TRL's KTOConfig (fixture from tools/reference/dump_kto_config.py),
// YAML and key=value parsing, aliases, and the errors a user meets.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train/train_config.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(TrainConfig, DefaultsEqualTrlKtoConfig) {
  nlohmann::json trl = json_read_file(test::fixture("train/kto_config_defaults.json"))["defaults"];
  TrainConfig ours;
  EXPECT_EQ(ours.beta, trl["beta"].get<double>());
  EXPECT_EQ(ours.desirable_weight, trl["desirable_weight"].get<double>());
  EXPECT_EQ(ours.undesirable_weight, trl["undesirable_weight"].get<double>());
  EXPECT_EQ(ours.loss_type, trl["loss_type"].get<std::string>());
  EXPECT_EQ(ours.max_length, trl["max_length"].get<int64_t>());
  EXPECT_EQ(ours.precompute_ref_log_probs, trl["precompute_ref_log_probs"].get<bool>());
  EXPECT_EQ(ours.learning_rate, trl["learning_rate"].get<double>());
  EXPECT_EQ(ours.per_device_train_batch_size, trl["per_device_train_batch_size"].get<int64_t>());
  EXPECT_EQ(ours.gradient_accumulation_steps, trl["gradient_accumulation_steps"].get<int64_t>());
  EXPECT_EQ(ours.gradient_checkpointing, trl["gradient_checkpointing"].get<bool>());
  EXPECT_EQ(ours.logging_steps, trl["logging_steps"].get<int64_t>());
  EXPECT_EQ(ours.disable_dropout, trl["disable_dropout"].get<bool>());
  EXPECT_EQ(ours.seed, trl["seed"].get<int64_t>());
  EXPECT_EQ(ours.lr_scheduler_type, trl["lr_scheduler_type"].get<std::string>());
  EXPECT_EQ(ours.num_train_epochs, trl["num_train_epochs"].get<double>());
  EXPECT_EQ(ours.max_steps, trl["max_steps"].get<int64_t>());
  EXPECT_EQ(ours.max_grad_norm, trl["max_grad_norm"].get<double>());
  EXPECT_EQ(ours.weight_decay, trl["weight_decay"].get<double>());
  EXPECT_EQ(ours.save_steps, trl["save_steps"].get<int64_t>());
  EXPECT_EQ(ours.adam_beta1, trl["adam_beta1"].get<double>());
  EXPECT_EQ(ours.adam_beta2, trl["adam_beta2"].get<double>());
  EXPECT_EQ(ours.adam_epsilon, trl["adam_epsilon"].get<double>());
}

TEST(TrainConfig, ReadsYamlWithAliasesAndLists) {
  std::string path = test::temp_dir("cfg") + "/train.yaml";
  std::ofstream(path) << "model_name_or_path: tests/fixtures/models/llama\n"
                         "rl_beta: 0.25\n"
                         "micro_batch_size: 4\n"
                         "lora_target_modules: [q_proj, v_proj]\n"
                         "trl_compat: true\n";
  TrainConfig c;
  train_config_load_yaml(c, path);
  EXPECT_EQ(c.beta, 0.25);
  EXPECT_EQ(c.per_device_train_batch_size, 4);
  EXPECT_EQ(c.lora_target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_TRUE(c.trl_compat);
}

TEST(TrainConfig, MisspeltKeySuggestsTheRightOne) {
  TrainConfig c;
  std::string msg = error_of([&] { train_config_set(c, "learnig_rate", "1e-4", "config.yaml:3"); });
  EXPECT_NE(msg.find("config.yaml:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean `learning_rate`"), std::string::npos) << msg;
  msg = error_of([&] { train_config_set(c, "desireable_weight", "1", "x"); });
  EXPECT_NE(msg.find("`desirable_weight`"), std::string::npos) << msg;
}

TEST(TrainConfig, BadValuesAreErrors) {
  TrainConfig c;
  EXPECT_NE(error_of([&] { train_config_set(c, "beta", "0.1x", "cfg:1"); }).find("must be a number"), std::string::npos);
  EXPECT_NE(error_of([&] { train_config_set(c, "max_length", "1.5", "cfg:1"); }).find("an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { train_config_set(c, "trl_compat", "maybe", "cfg:1"); }).find("true or false"), std::string::npos);
}

TEST(TrainConfig, BatchSizeOneWithKtoExplainsAndSuggests) {
  TrainConfig c;
  c.per_device_train_batch_size = 1;
  std::string msg = error_of([&] { train_config_validate(c); });
  EXPECT_NE(msg.find("KL"), std::string::npos) << msg;
  EXPECT_NE(msg.find(">= 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("apo_zero_unpaired"), std::string::npos) << msg;
  c.loss_type = "apo_zero_unpaired";
  EXPECT_NO_THROW(train_config_validate(c));
}

TEST(TrainConfig, YamlSyntaxErrorHasLineAndColumn) {
  std::string path = test::temp_dir("cfg") + "/bad.yaml";
  std::ofstream(path) << "beta: 0.1\nlearning_rate: [1e-4\n";
  TrainConfig c;
  std::string msg = error_of([&] { train_config_load_yaml(c, path); });
  EXPECT_NE(msg.find(path + ":"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;
}

}  // namespace
}  // namespace kto

namespace kto {
namespace {

TEST(TrainConfig, TrlDatasetsListNamesTheDataset) {
  std::string dir = test::temp_dir("cfg");
  std::ofstream(dir + "/a.yaml") << "datasets:\n  - path: org/feedback\n    data_files: train.jsonl\n";
  TrainConfig c;
  train_config_load_yaml(c, dir + "/a.yaml");
  EXPECT_EQ(c.dataset_name, "org/feedback/train.jsonl");
  std::ofstream(dir + "/b.yaml") << "datasets:\n  - path: a.jsonl\n  - path: b.jsonl\n";
  EXPECT_NE(error_of([&] { train_config_load_yaml(c, dir + "/b.yaml"); }).find("only one"), std::string::npos);
  std::ofstream(dir + "/c.yaml") << "lora_target_modules:\n  - {name: q_proj}\n";
  EXPECT_NE(error_of([&] { train_config_load_yaml(c, dir + "/c.yaml"); }).find("list of values"), std::string::npos);
}

}  // namespace
}  // namespace kto
