// `kto train` as a user runs it: a run killed with SIGKILL and resumed from its last checkpoint
// logs exactly what the uninterrupted run logs; a small learnable task moves the rewards the
// right way; bad input gives one clear line.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

namespace fs = std::filesystem;

std::string write_config(const std::string& dir, const std::string& body) {
  std::string path = dir + "/train.yaml";
  std::ofstream(path) << "model_name_or_path: " << test::fixture("models/llama") << "\n" << body;
  return path;
}

nlohmann::json log_history(const std::string& output_dir) {
  return json_read_file(output_dir + "/trainer_state.json")["log_history"];
}

TEST(TrainCli, KilledRunResumesBitExactly) {
  const std::string dir = test::temp_dir("resume");
  const std::string body = str_cat("dataset_name: ", test::fixture("kto_steps/train.jsonl"),
                                   "\nper_device_train_batch_size: 4\nmax_length: 64\nlearning_rate: 5e-3\n"
                                   "max_steps: 60\nlogging_steps: 1\nsave_steps: 5\nsave_total_limit: 2\nlora_r: 4\n");
  const std::string config = write_config(dir, body);
  ASSERT_EQ(test::run_kto(str_cat("-q train ", config, " output_dir=", dir, "/full")).exit_code, 0);
  const nlohmann::json full = log_history(dir + "/full");
  ASSERT_EQ(full.size(), 60u);

  // Start the same run, SIGKILL it once a few checkpoints exist, resume it.
  const std::string out = dir + "/killed";
  const std::string pid_file = dir + "/pid";
  std::system(str_cat("sh -c '", KTO_BINARY, " -q train ", config, " output_dir=", out, " & echo $! > ", pid_file, "; wait' &").c_str());
  bool killed = false;
  for (int i = 0; i < 2000 && !killed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (fs::exists(out + "/checkpoint-10") && fs::exists(pid_file)) {
      killed = ::kill(std::stoi(file_read_text(pid_file)), SIGKILL) == 0;
    }
  }
  ASSERT_TRUE(killed) << "the run finished before it could be killed";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto resumed = test::run_kto(str_cat("-q train ", config, " output_dir=", out, " resume_from_checkpoint=true"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const nlohmann::json again = log_history(out);
  ASSERT_EQ(again.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) EXPECT_EQ(again[i].dump(), full[i].dump()) << "step " << i + 1;
}

TEST(TrainCli, LearnableTaskMovesRewardsApart) {
  const std::string dir = test::temp_dir("learn");
  {
    std::ofstream data(dir + "/rows.jsonl");
    const char* topics[] = {"the sea", "a cat", "the moon", "green tea", "old maps", "rain", "a bridge", "music"};
    for (int i = 0; i < 200; ++i) {
      const bool good = (i * 7 + i / 3) % 5 < 3;
      nlohmann::json row = {{"prompt", str_cat("Tell me about ", topics[i % 8], ", item ", i, ".")},
                            {"completion", good ? " It is lovely and kind." : " No. Go away now."},
                            {"label", good}};
      data << row.dump() << "\n";
    }
  }
  const std::string config = write_config(dir, str_cat("dataset_name: ", dir, "/rows.jsonl\noutput_dir: ", dir,
                                                       "/out\nper_device_train_batch_size: 8\nlearning_rate: 2e-2\n"
                                                       "num_train_epochs: 2\nlogging_steps: 5\nlora_r: 8\nlora_alpha: 16\n"
                                                       "warmup_ratio: 0.1\nsave_steps: 0\n"));
  auto r = test::run_kto("train " + config);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json logs = log_history(dir + "/out");
  ASSERT_GE(logs.size(), 2u);
  const auto& first = logs.front();
  const auto& last = logs.back();
  EXPECT_GT(last["rewards/chosen"].get<double>(), first["rewards/chosen"].get<double>()) << logs.dump();
  EXPECT_LT(last["rewards/rejected"].get<double>(), first["rewards/rejected"].get<double>()) << logs.dump();
  EXPECT_TRUE(fs::exists(dir + "/out/adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/out/adapter_config.json"));
  EXPECT_TRUE(fs::exists(dir + "/out/trainer_log.jsonl"));
}

void expect_train_error(const std::string& body, const std::string& rows, std::initializer_list<std::string> needles) {
  const std::string dir = test::temp_dir("trainerr");
  std::ofstream(dir + "/rows.jsonl") << rows;
  const std::string config = write_config(dir, str_cat("dataset_name: ", dir, "/rows.jsonl\noutput_dir: ", dir, "/out\n", body));
  auto r = test::run_kto("train " + config);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << r.err;
  const std::string last_line = r.err.substr(r.err.rfind("kto: "));
  for (const std::string& n : needles) EXPECT_NE(last_line.find(n), std::string::npos) << "missing '" << n << "' in: " << r.err;
}

TEST(TrainCli, BadInputIsOneClearLine) {
  const std::string ok = "{\"prompt\": \"a\", \"completion\": \" b\", \"label\": true}\n{\"prompt\": \"c\", \"completion\": \" d\", \"label\": false}\n";
  expect_train_error("", ok + "{\"prompt\": \"x\", \n", {"rows.jsonl:3"});
  expect_train_error("", ok + "{\"prompt\": \"x\", \"completion\": \" y\"}\n", {"rows.jsonl:3", "label"});
  expect_train_error("", ok + "{\"prompt\": \"x\", \"completion\": \" y\", \"label\": \"maybe\"}\n", {"rows.jsonl:3", "maybe"});
  expect_train_error("", ok + "{\"prompt\": \"x\", \"completion\": \"\", \"label\": true}\n", {"rows.jsonl:3", "empty"});
  expect_train_error("per_device_train_batch_size: 1\n", ok, {"apo_zero_unpaired", ">= 2"});
  expect_train_error("learnig_rate: 1e-4\n", ok, {"train.yaml:4", "learning_rate"});
  const std::string dir = test::temp_dir("nodata");
  auto r = test::run_kto("train " + write_config(dir, "dataset_name: /no/such/rows.jsonl\n"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/no/such/rows.jsonl"), std::string::npos) << r.err;
}

TEST(TrainCli, OneLabelDatasetTrainsWithAWarning) {
  const std::string dir = test::temp_dir("onelabel");
  std::ofstream data(dir + "/rows.jsonl");
  for (int i = 0; i < 8; ++i) data << nlohmann::json{{"prompt", str_cat("q", i)}, {"completion", " yes"}, {"label", true}}.dump() << "\n";
  data.close();
  auto r = test::run_kto("train " + write_config(dir, str_cat("dataset_name: ", dir, "/rows.jsonl\noutput_dir: ", dir,
                                                               "/out\nmax_steps: 2\nper_device_train_batch_size: 4\n")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
}

TEST(TrainCli, DryRunPrintsConfigDataAndMemory) {
  const std::string dir = test::temp_dir("dry");
  auto r = test::run_kto("train " + write_config(dir, str_cat("dataset_name: ", test::fixture("kto_steps/train.jsonl"), "\nmax_length: 20\n")) + " --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("beta: 0.1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory estimate"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("desirable"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kto

namespace kto {
namespace {

TEST(TrainCli, EvalSplitLogsEvalMetrics) {
  const std::string dir = test::temp_dir("eval");
  auto r = test::run_kto("-q train " + write_config(dir, str_cat("dataset_name: ", test::fixture("kto_steps/train.jsonl"),
                                                                  "\noutput_dir: ", dir, "/out\nmax_steps: 4\neval_steps: 2\n"
                                                                  "eval_split: 0.25\nper_device_train_batch_size: 4\n"
                                                                  "per_device_eval_batch_size: 4\nsave_steps: 0\n")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int evals = 0;
  for (const auto& entry : log_history(dir + "/out")) {
    if (!entry.contains("eval_loss")) continue;
    ++evals;
    EXPECT_TRUE(entry.contains("eval_kl")) << entry.dump();
    EXPECT_TRUE(entry.contains("eval_logps/chosen") || entry.contains("eval_logps/rejected")) << entry.dump();
  }
  EXPECT_EQ(evals, 2);
}

TEST(TrainCli, SigtermSavesACheckpointAndExitsCleanly) {
  const std::string dir = test::temp_dir("sigterm");
  const std::string config = write_config(dir, str_cat("dataset_name: ", test::fixture("kto_steps/train.jsonl"), "\noutput_dir: ", dir,
                                                       "/out\nmax_steps: 100000\nsave_steps: 0\nper_device_train_batch_size: 4\n"));
  const std::string pid_file = dir + "/pid", rc_file = dir + "/rc";
  std::system(str_cat("sh -c '", KTO_BINARY, " -q train ", config, " & echo $! > ", pid_file, "; wait $!; echo $? > ", rc_file, "' &").c_str());
  for (int i = 0; i < 400 && !fs::exists(dir + "/out/train_config.yaml"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(fs::exists(pid_file));
  ASSERT_EQ(::kill(std::stoi(file_read_text(pid_file)), SIGTERM), 0);
  for (int i = 0; i < 1000 && !fs::exists(rc_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(fs::exists(rc_file)) << "kto train did not stop after SIGTERM";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(std::stoi(file_read_text(rc_file)), 0);
  // The stop saved a checkpoint at the step it had reached.
  bool found = false;
  for (const auto& e : fs::directory_iterator(dir + "/out")) found |= e.path().filename().string().rfind("checkpoint-", 0) == 0;
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace kto
