// Training from an existing PEFT adapter (adapter_name_or_path, issue #9 item 2): the run starts
// exactly at that adapter — its r, alpha, rsLoRA flag and weights, not a fresh initialisation —
// so the policy's first log-probs are base + adapter as PEFT computes them
// (tools/reference/make_lora_grads.py, tests/fixtures/lora/); a mismatch with the base model
// is one clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "test_util.h"
#include "train/train_run.h"
#include "train/trainer.h"
#include "util/files.h"

namespace kto {
namespace {

TEST(TrainFromAdapter, FirstStepLogprobsAreBasePlusAdapterAsPeftComputesThem) {
  for (const std::string arch : {"llama", "qwen3"}) {
    const nlohmann::json e = json_read_file(test::fixture("lora/" + arch + "/expected.json"));
    const Model model = Model::load(test::fixture("models/" + arch));
    TrainConfig c;
    c.model_name_or_path = test::fixture("models/" + arch);
    c.adapter_name_or_path = test::fixture("lora/" + arch + "/adapter_init");
    c.lora_r = 64;  // ignored: the adapter's own settings win
    const LoraAdapter adapter = train_initial_adapter(c, model.config());
    EXPECT_EQ(adapter.config.rank, e["r"].get<int64_t>()) << arch;
    EXPECT_EQ(adapter.config.use_rslora, e["use_rslora"].get<bool>()) << arch;
    const PackedBatch batch = PackedBatch::from_sequences(e["sequences"].get<std::vector<std::vector<int32_t>>>());
    const auto n_prompt = e["n_prompt"].get<std::vector<int32_t>>();
    const SequenceScores scores = model.sequence_scores(batch, n_prompt, &adapter);
    const SequenceScores base = model.sequence_scores(batch, n_prompt, nullptr);
    for (size_t s = 0; s < n_prompt.size(); ++s) {
      const double want = e["logps"][s];
      EXPECT_LE(std::abs(scores.logps[s] - want), 1e-4 * std::max(1.0, std::abs(want))) << arch << " sequence " << s;
      EXPECT_GT(std::abs(base.logps[s] - want), 1e-3) << arch << ": the adapter must change sequence " << s;
    }
  }
}

TEST(TrainFromAdapter, AnAdapterForAnotherModelIsAClearError) {
  const Model model = Model::load(test::fixture("models/llama"));
  TrainConfig c;
  c.adapter_name_or_path = test::fixture("lora/qwen3/adapter_init");  // hidden 32, llama's is 64
  try {
    (void)train_initial_adapter(c, model.config());
    FAIL() << "a qwen3 adapter on the llama model should not load";
  } catch (const Error& err) {
    EXPECT_EQ(err.kind(), ErrorKind::Format) << err.what();
    EXPECT_NE(std::string(err.what()).find("lora_A"), std::string::npos) << err.what();
  }
}

}  // namespace
}  // namespace kto
