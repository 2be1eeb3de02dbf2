// `kto demo`: the quick pipeline writes a normal run (model, tokenizer, data, checkpoints, adapter,
// trainer_state.json, trainer_log.jsonl, configs, summary); its kto.yaml reruns the KTO stage to
// the same adapter through `kto train`; `kto chat` answers with the result; the tokenizer and task
// behave as documented. The full demo's acceptance (accuracy after KTO clearly above before) is
// FullDemoImprovesHeldOutAccuracy, run by hand or with KTO_SLOW_TESTS=1 (about a minute).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "demo/demo_model.h"
#include "demo/demo_task.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

namespace fs = std::filesystem;

// One quick demo shared by the tests of this file.
const std::string& quick_demo() {
  static const std::string dir = [] {
    const std::string out = test::temp_dir("demo") + "/run";
    const test::CommandResult r = test::run_kto(str_cat("demo --quick --output-dir ", out));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("before KTO"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("chat --model"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("[6/6]"), std::string::npos) << r.err;
    return out;
  }();
  return dir;
}

TEST(Demo, QuickRunWritesANormalRun) {
  const std::string d = quick_demo();
  for (const char* f : {"model-init/tokenizer.json", "model-init/config.json", "model-init/model.safetensors",
                        "sft/config.json", "sft/model.safetensors", "sft/tokenizer.json", "sft/chat_template.jinja",
                        "sft/trainer_state.json", "sft/trainer_log.jsonl", "kto/adapter_config.json",
                        "kto/adapter_model.safetensors", "kto/trainer_state.json", "kto/trainer_log.jsonl",
                        "kto/train_config.yaml", "data/sft_train.jsonl", "data/kto_train.jsonl", "data/kto_eval.jsonl",
                        "kto.yaml", "sft.yaml", "demo_summary.json"}) {
    EXPECT_TRUE(fs::exists(path_join(d, f))) << f;
  }
  EXPECT_FALSE(fs::is_empty(d + "/kto")) << "a checkpoint-N directory is kept";
  const nlohmann::json s = json_read_file(d + "/demo_summary.json");
  for (const char* side : {"before_kto", "after_kto"}) {
    for (const char* k : {"sampled_accuracy", "greedy_accuracy", "mean_p_right_answer", "reward_margin"}) {
      ASSERT_TRUE(s[side].contains(k)) << side << "." << k;
      EXPECT_TRUE(std::isfinite(s[side][k].get<double>())) << side << "." << k;
    }
  }
  EXPECT_EQ(s["before_kto"]["reward_margin"].get<double>(), 0.0) << "before training the policy is the reference";
}

TEST(Demo, WrittenConfigReproducesTheKtoStage) {
  const std::string d = quick_demo();
  const test::CommandResult r = test::run_kto(str_cat("-q train ", d, "/kto.yaml output_dir=", d, "/rerun"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(file_read_text(d + "/rerun/adapter_model.safetensors"), file_read_text(d + "/kto/adapter_model.safetensors"));
  EXPECT_EQ(json_read_file(d + "/rerun/trainer_state.json")["log_history"].dump(),
            json_read_file(d + "/kto/trainer_state.json")["log_history"].dump());
}

TEST(Demo, ChatAnswersWithTheAdapter) {
  const std::string d = quick_demo();
  const test::CommandResult r = test::run_kto(str_cat("chat --model ", d, "/sft --adapter ", d, "/kto < /dev/null"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string input = test::temp_dir("chatin") + "/in.txt";
  file_write_atomic(input, "3+4\n2+5\n");  // one answer line per question; the template shows only the last
  const test::CommandResult answered = test::run_kto(str_cat("chat --model ", d, "/sft --adapter ", d, "/kto < ", input));
  EXPECT_EQ(answered.exit_code, 0) << answered.err;
  EXPECT_EQ(std::count(answered.out.begin(), answered.out.end(), '\n'), 2) << answered.out;
}

TEST(DemoTokenizer, IsAByteLevelTokenizerJsonOurTokenizerLoads) {
  const std::string dir = test::temp_dir("demotok");
  demo_write_tokenizer(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  EXPECT_EQ(tok.encode("12+34="), (std::vector<int32_t>{'1', '2', '+', '3', '4', '='}));
  EXPECT_EQ(tok.encode("é"), (std::vector<int32_t>{0xC3, 0xA9})) << "bytes, not characters";
  EXPECT_EQ(tok.eos_id(), kDemoEos);
  EXPECT_EQ(tok.encode("7<|eos|>"), (std::vector<int32_t>{'7', kDemoEos}));
  EXPECT_EQ(tok.decode(tok.encode("a b\n")), "a b\n");
}

TEST(DemoTask, ForgottenCarryAndNoise) {
  EXPECT_EQ(ArithmeticTask::forgotten_carry({317, 48}), "355");
  EXPECT_EQ(ArithmeticTask::forgotten_carry({12, 34}), "46") << "no carry: the right answer";
  EXPECT_EQ(ArithmeticTask::forgotten_carry({95, 7}), "92");
  ArithmeticTask task(2, 5);
  const std::vector<Problem> q = task.draw(2000);
  int wrong = 0, carry = 0;
  for (const Problem& p : q) {
    carry += ArithmeticTask::forgotten_carry(p) != p.answer() ? 1 : 0;
    wrong += task.noisy_answer(p, 0.4) != p.answer() ? 1 : 0;
  }
  EXPECT_NEAR(static_cast<double>(wrong) / carry, 0.4, 0.05);
  EXPECT_EQ(task.draw(10, q).size(), 10u);
}

// Acceptance: over 19 seeds (1-19) the full demo lifted held-out sampled accuracy by 0.251 on
// average (sd 0.050, min 0.123, max 0.353) and mean p(right answer) by 0.242 (sd 0.031, min
// 0.170); a margin of 0.08 is more than 3 sd below the mean of both.
TEST(Demo, FullDemoImprovesHeldOutAccuracy) {
  if (!std::getenv("KTO_SLOW_TESTS")) GTEST_SKIP() << "set KTO_SLOW_TESTS=1 to run the full demo (about a minute)";
  const std::string out = test::temp_dir("demofull") + "/run";
  const test::CommandResult r = test::run_kto(str_cat("demo --output-dir ", out, " --seed 7"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json s = json_read_file(out + "/demo_summary.json");
  const nlohmann::json &before = s["before_kto"], &after = s["after_kto"];
  EXPECT_GE(after["sampled_accuracy"].get<double>() - before["sampled_accuracy"].get<double>(), 0.08) << s.dump(2);
  EXPECT_GE(after["mean_p_right_answer"].get<double>() - before["mean_p_right_answer"].get<double>(), 0.08) << s.dump(2);
  EXPECT_GT(after["reward_margin"].get<double>(), 1.0);
}

}  // namespace
}  // namespace kto
