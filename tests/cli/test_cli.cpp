// The `kto` verbs as a user runs them, on the fixture models: outputs equal what transformers
// produced (tests/fixtures/models/*/expected*.json, tools/reference/make_models.py), and bad
// input ends in one "kto:" line naming the file and the problem, with a non-zero exit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

namespace fs = std::filesystem;
const char* const kModels[] = {"llama", "mistral", "qwen2", "qwen3"};

nlohmann::json expected_text(const std::string& model) {
  return json_read_file(test::fixture("models/" + model + "/expected_text.json"));
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A failed command printed exactly one line, "kto: ...", that contains every `needle`.
void expect_one_error_line(const test::CommandResult& r, std::initializer_list<std::string> needles) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind("kto: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "missing '" << n << "' in: " << r.err;
}

TEST(Cli, GenerateGreedyEqualsTransformers) {
  for (const char* m : kModels) {
    const nlohmann::json expected = expected_text(m);
    for (const auto& row : expected["greedy"]) {
      auto r = test::run_kto(str_cat("generate --model ", test::fixture(std::string("models/") + m), " --prompt ",
                                     quote(row["prompt"]), " --greedy --max-new-tokens ", row["new_ids"].size()));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, row["text_skip_special"].get<std::string>() + "\n") << m << ": " << row["prompt"];
    }
  }
}

TEST(Cli, TokenizeJsonEqualsTransformersIds) {
  for (const char* m : kModels) {
    const nlohmann::json expected = expected_text(m);
    for (const auto& row : expected["greedy"]) {
      auto r = test::run_kto(str_cat("tokenize --json --model ", test::fixture(std::string("models/") + m), " --text ", quote(row["prompt"])));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(nlohmann::json::parse(r.out)["ids"], row["prompt_ids"]) << m;
    }
  }
}

TEST(Cli, ScoreEqualsTransformersWithTrlTokenisation) {
  for (const char* m : kModels) {
    const auto rows = expected_text(m)["score"];
    std::string data = test::temp_dir("score") + "/rows.jsonl";
    {
      std::ofstream out(data);
      out << "{\"text\": \"a row without prompt/completion is skipped\"}\n";
      for (const auto& row : rows) out << nlohmann::json{{"prompt", row["prompt"]}, {"completion", row["completion"]}}.dump() << "\n";
    }
    auto r = test::run_kto(str_cat("score --model ", test::fixture(std::string("models/") + m), " --data ", data, " --batch-tokens 40"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("skipped 1"), std::string::npos) << r.err;
    std::istringstream lines(r.out);
    std::string line;
    size_t i = 0;
    while (std::getline(lines, line)) {
      ASSERT_LT(i, rows.size());
      auto got = nlohmann::json::parse(line);
      const double want = rows[i]["logprob"];
      EXPECT_EQ(got["line"], static_cast<int64_t>(i) + 2);
      EXPECT_NEAR(got["logp"].get<double>(), want, 1e-4 * std::max(1.0, std::abs(want))) << m << " row " << i;
      EXPECT_EQ(got["prompt_tokens"], rows[i]["prompt_ids"].size());
      EXPECT_EQ(got["completion_tokens"], rows[i]["completion_ids"].size());
      ++i;
    }
    EXPECT_EQ(i, rows.size());
  }
}

TEST(Cli, InspectCountsParametersAsTransformers) {
  for (const char* m : kModels) {
    auto r = test::run_kto(str_cat("inspect --json --model ", test::fixture(std::string("models/") + m)));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto info = nlohmann::json::parse(r.out);
    auto expected = json_read_file(test::fixture(std::string("models/") + m + "/expected.json"));
    EXPECT_EQ(info["n_params"], expected["n_params"]) << m;
    EXPECT_EQ(info["model_type"], m);
    EXPECT_FALSE(info["training_memory"].empty());
    auto text = test::run_kto(str_cat("inspect --model ", test::fixture(std::string("models/") + m)));
    EXPECT_EQ(text.exit_code, 0);
    EXPECT_NE(text.out.find("training memory estimate"), std::string::npos);
  }
}

TEST(Cli, EveryVerbHasHelp) {
  for (const char* verb : {"", "generate ", "inspect ", "tokenize ", "score "}) {
    auto r = test::run_kto(str_cat(verb, "--help"));
    EXPECT_EQ(r.exit_code, 0) << verb;
    EXPECT_NE(r.out.find("--"), std::string::npos) << verb;
  }
}

// --- bad input: one clear line, non-zero exit, no crash ---------------------------------------

// A copy of the single-file qwen3 fixture whose model.safetensors is replaced by `bytes`.
std::string model_with_safetensors(const std::string& bytes) {
  std::string dir = test::temp_dir("badmodel");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
    fs::copy_file(test::fixture(std::string("models/qwen3/") + f), dir + "/" + f);
  }
  std::ofstream(dir + "/model.safetensors", std::ios::binary) << bytes;
  return dir;
}

std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

TEST(CliErrors, TruncatedSafetensors) {
  std::string good = file_read_text(test::fixture("models/qwen3/model.safetensors"));
  std::string dir = model_with_safetensors(good.substr(0, good.size() - 1000));
  expect_one_error_line(test::run_kto("inspect --model " + dir), {dir + "/model.safetensors", "truncated"});
}

TEST(CliErrors, HeaderLengthPastEnd) {
  std::string bytes = safetensors_bytes("{}", 0);
  bytes[0] = '\xff';
  bytes[1] = '\xff';
  std::string dir = model_with_safetensors(bytes);
  expect_one_error_line(test::run_kto("inspect --model " + dir), {dir + "/model.safetensors", "header"});
}

TEST(CliErrors, OverlappingOffsets) {
  std::string dir = model_with_safetensors(safetensors_bytes(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
  expect_one_error_line(test::run_kto("inspect --model " + dir), {dir + "/model.safetensors", "overlap"});
}

TEST(CliErrors, OutOfRangeOffsets) {
  std::string dir = model_with_safetensors(
      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  expect_one_error_line(test::run_kto("inspect --model " + dir), {dir + "/model.safetensors"});
}

TEST(CliErrors, UnknownDtype) {
  std::string dir = model_with_safetensors(safetensors_bytes(R"({"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,2]}})", 2));
  expect_one_error_line(test::run_kto("inspect --model " + dir), {dir + "/model.safetensors", "Q7"});
}

std::string model_with_config(const std::function<void(nlohmann::json&)>& edit) {
  std::string dir = test::temp_dir("badconfig");
  for (const auto& entry : fs::directory_iterator(test::fixture("models/qwen3"))) fs::copy_file(entry.path(), dir + "/" + entry.path().filename().string());
  nlohmann::json config = json_read_file(dir + "/config.json");
  edit(config);
  std::ofstream(dir + "/config.json", std::ios::trunc) << config.dump(2);
  return dir;
}

TEST(CliErrors, ConfigWithoutRequiredField) {
  std::string dir = model_with_config([](nlohmann::json& c) { c.erase("hidden_size"); });
  expect_one_error_line(test::run_kto("generate --model " + dir + " --prompt hi"), {dir + "/config.json", "hidden_size"});
}

TEST(CliErrors, UnsupportedModelType) {
  std::string dir = model_with_config([](nlohmann::json& c) { c["model_type"] = "mamba"; });
  expect_one_error_line(test::run_kto("inspect --model " + dir), {dir + "/config.json", "mamba"});
}

TEST(CliErrors, TokenizerWithUnknownModelType) {
  std::string dir = model_with_config([](nlohmann::json&) {});
  nlohmann::json tok = json_read_file(dir + "/tokenizer.json");
  tok["model"]["type"] = "WordLevel";
  std::ofstream(dir + "/tokenizer.json", std::ios::trunc) << tok.dump();
  expect_one_error_line(test::run_kto("tokenize --model " + dir + " --text hi"), {dir + "/tokenizer.json", "WordLevel"});
}

TEST(CliErrors, MissingModelAndBadArguments) {
  expect_one_error_line(test::run_kto("inspect --model /nonexistent/model-dir"), {"/nonexistent/model-dir"});
  // Online (the suite's Hub endpoint is a closed port): a download attempt, then its error.
  const auto online = test::run_kto("inspect --model nobody/no-such-model");
  EXPECT_NE(online.exit_code, 0);
  EXPECT_NE(online.err.find("nobody/no-such-model"), std::string::npos) << online.err;
  EXPECT_NE(online.err.find("127.0.0.1:9"), std::string::npos) << online.err;
  // Offline: one line naming the id and HF_HUB_OFFLINE, no network at all.
  expect_one_error_line(test::run_kto_env("HF_HUB_OFFLINE=1", "inspect --model nobody/no-such-model"),
                        {"nobody/no-such-model", "HF_HUB_OFFLINE"});
  // No GPU (CI) or a build without CUDA: one line saying so, whatever the build.
  auto gpu = test::run_kto(str_cat("score --device cuda --model ", test::fixture("models/llama"), " --data ",
                                   test::fixture("kto_steps/train.jsonl")));
  if (gpu.exit_code != 0) {
    EXPECT_EQ(std::count(gpu.err.begin(), gpu.err.end(), '\n'), 1) << gpu.err;
    EXPECT_TRUE(gpu.err.find("no CUDA GPU is visible") != std::string::npos ||
                gpu.err.find("built without the CUDA backend") != std::string::npos)
        << gpu.err;
  }
  auto r = test::run_kto("generate --prompt hi");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("kto: ", 0), 0u) << r.err;
}

}  // namespace
}  // namespace kto
