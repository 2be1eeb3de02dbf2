// The memory plan as a user meets it: `kto train --dry-run` and `kto inspect --config` plan a
// run from config.json, tokenizer and data alone (the model directory here has no weights at
// all), `max_memory` that is too small stops with one `kto:` line naming what to change, and
// `per_device_train_batch_size: auto` picks a size that fits — one more does not.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "test_util.h"
#include "util/error.h"

namespace kto {
namespace {

namespace fs = std::filesystem;

// The llama fixture's config.json and tokenizer, without its safetensors.
std::string model_without_weights() {
  static const std::string dir = [] {
    const std::string d = test::temp_dir("noweights");
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
      fs::copy_file(test::fixture(std::string("models/llama/") + f), d + "/" + f);
    }
    return d;
  }();
  return dir;
}

// 64 rows of a ~60-word prompt and a ~300-word completion: passes of thousands of tokens, so
// activations (not the fixed workspaces) decide what fits.
std::string long_rows() {
  static const std::string path = [] {
    const std::string p = test::temp_dir("longrows") + "/rows.jsonl";
    const char* words[] = {"the", "river", "old", "map", "green", "tea", "moon", "quiet", "bridge", "music", "rain", "cat"};
    std::ofstream out(p);
    for (int i = 0; i < 64; ++i) {
      std::string prompt, completion;
      for (int w = 0; w < 60; ++w) prompt += std::string(w ? " " : "") + words[(i * 7 + w * 3) % 12];
      for (int w = 0; w < 300; ++w) completion += std::string(" ") + words[(i * 5 + w * 11) % 12];
      out << nlohmann::json{{"prompt", prompt}, {"completion", completion}, {"label", i % 3 != 0}}.dump() << "\n";
    }
    return p;
  }();
  return path;
}

std::string write_config(const std::string& body) {
  const std::string dir = test::temp_dir("memcli");
  const std::string path = dir + "/train.yaml";
  std::ofstream(path) << "model_name_or_path: " << model_without_weights() << "\ndataset_name: " << long_rows()
                      << "\noutput_dir: " << dir << "/out\nmax_length: 256\ngradient_checkpointing: false\n" << body;
  return path;
}

std::string last_line(const std::string& err) {
  const size_t at = err.rfind("kto: ");
  return at == std::string::npos ? "<no kto: line in>\n" + err : err.substr(at);
}

TEST(MemoryPlanCli, DryRunPlansWithoutWeights) {
  const std::string config = write_config("per_device_train_batch_size: 8\n");
  const auto r = test::run_kto("train " + config + " --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* part : {"memory plan for one GPU", "largest pass", "weights", "LoRA + optimizer", "saved activations",
                           "scratch arena", "attention workspace", "head chunk", "cuBLAS workspace", "predicted peak",
                           "CUDA context"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " missing in:\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(fs::path(config).parent_path() / "out")) << "a dry run writes nothing";
}

TEST(MemoryPlanCli, TooLittleMaxMemoryNamesWhatToChange) {
  // 640 MiB go to the CUDA context estimate: 80 MiB are left for a plan of more than that.
  const auto r = test::run_kto("train " + write_config("per_device_train_batch_size: 32\nmax_memory: 720MiB\n") + " --dry-run");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("predicted peak"), std::string::npos) << "the plan is printed before the error:\n" << r.out;
  const std::string line = last_line(r.err);
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
  for (const char* needle : {"predicted peak", "does not fit in max_memory 720.0 MiB", "change one of:",
                             "gradient_checkpointing: true (→", "per_device_train_batch_size: ", "max_length: "}) {
    EXPECT_NE(line.find(needle), std::string::npos) << "missing '" << needle << "' in: " << line;
  }
}

TEST(MemoryPlanCli, AutoBatchPicksTheLargestThatFits) {
  const auto r = test::run_kto("train " + write_config("per_device_train_batch_size: auto\nmax_memory: 720MiB\n") + " --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(auto batch: per_device_train_batch_size (\d+))"))) << r.out;
  const int batch = std::stoi(m[1]);
  EXPECT_NE(r.out.find(str_cat("per_device_train_batch_size: ", batch, "\n")), std::string::npos) << "resolved config:\n" << r.out;
  ASSERT_GE(batch, 2);
  ASSERT_LT(batch, 64) << "the budget should bind";
  EXPECT_EQ(test::run_kto(str_cat("train ", write_config(str_cat("per_device_train_batch_size: ", batch, "\nmax_memory: 720MiB\n")),
                                  " --dry-run")).exit_code, 0);
  EXPECT_NE(test::run_kto(str_cat("train ", write_config(str_cat("per_device_train_batch_size: ", batch + 1, "\nmax_memory: 720MiB\n")),
                                  " --dry-run")).exit_code, 0);
  // HF's spelling searches up to the size given; on the CPU without max_memory `auto` is 8.
  const auto hf = test::run_kto("train " + write_config("auto_find_batch_size: true\nper_device_train_batch_size: 4\nmax_memory: 720MiB\n") + " --dry-run");
  EXPECT_NE(hf.out.find("auto batch: per_device_train_batch_size 4"), std::string::npos) << hf.out << hf.err;
  const auto cpu = test::run_kto("train " + write_config("per_device_train_batch_size: auto\n") + " --dry-run");
  EXPECT_NE(cpu.out.find("per_device_train_batch_size 8"), std::string::npos) << cpu.out << cpu.err;
}

TEST(MemoryPlanCli, InspectConfigPlansFromConfigJsonAlone) {
  const std::string config = write_config("per_device_train_batch_size: 4\n");
  const auto text = test::run_kto("inspect --config " + config);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("predicted peak"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("largest pass 1024 tokens"), std::string::npos) << "4 × max_length 256:\n" << text.out;
  const auto json = test::run_kto("inspect --json --config " + config);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json j = nlohmann::json::parse(json.out);
  EXPECT_GT(j["memory_plan"]["predicted_peak"].get<int64_t>(), 32 << 20);
  EXPECT_EQ(j["memory_plan"]["pass_tokens"], 1024);
  EXPECT_TRUE(j["fits"].get<bool>());
  // Too little memory: JSON says so; text prints the plan, then the `kto:` line.
  const std::string small = write_config("per_device_train_batch_size: 64\nmax_length: 4096\nmax_memory: 700MiB\n");
  const nlohmann::json k = nlohmann::json::parse(test::run_kto("inspect --json --config " + small).out);
  EXPECT_FALSE(k["fits"].get<bool>());
  EXPECT_NE(k["advice"].get<std::string>().find("does not fit"), std::string::npos) << k.dump();
  const auto failed = test::run_kto("inspect --config " + small);
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_NE(last_line(failed.err).find("max_memory 700.0 MiB"), std::string::npos) << failed.err;
}

TEST(MemoryPlanCli, BadMaxMemoryIsOneClearLine) {
  const auto r = test::run_kto("train " + write_config("max_memory: lots\n") + " --dry-run");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(last_line(r.err).find("max_memory"), std::string::npos) << r.err;
  EXPECT_NE(last_line(r.err).find("24GiB"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kto
