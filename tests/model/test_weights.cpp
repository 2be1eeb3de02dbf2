// Weights loading and the RoPE frequencies against outside references: HF's inv_freq for the
// llama3-scaled fixture (dumped by tools/reference/make_models.py), tensor names of the
// transformers state dicts, and the errors a checkpoint that disagrees with its config.json gives.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "test_util.h"

namespace kto {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "missing " << path;
  return json::parse(in);
}

// A copy of fixture model `name` whose config.json is changed by `edit`.
std::string edited_copy(const std::string& name, const std::function<void(json&)>& edit) {
  const std::string dir = test::temp_dir("weights-" + name);
  fs::copy(test::fixture("models/" + name), dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  json config = read_json(dir + "/config.json");
  edit(config);
  std::ofstream(dir + "/config.json") << config.dump(2);
  return dir;
}

// Runs Model::load and returns the kto::Error it throws (fails the test when it does not).
Error load_error(const std::string& dir) {
  try {
    Model::load(dir);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "loading " << dir << " did not throw";
  return Error(ErrorKind::Io, "");
}

TEST(Weights, RopeInvFreqMatchesTransformersLlama3Scaling) {
  const json ops = read_json(test::fixture("models/ops/ops.json"));
  const auto want = ops["rope"]["inv_freq"].get<std::vector<double>>();
  const ModelConfig config = model_config_load(test::fixture("models/llama"));
  const std::vector<double> got = rope_inv_freq(config);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6 * want[i]) << "inv_freq[" << i << "]";
}

TEST(Weights, TiedHeadUsesTheEmbedding) {
  const Model qwen2 = Model::load(test::fixture("models/qwen2"));
  EXPECT_TRUE(qwen2.weights().head_tied());
  EXPECT_EQ(qwen2.weights().head().data, qwen2.weights().embed.view().data);
  const Model llama = Model::load(test::fixture("models/llama"));  // sharded, untied
  EXPECT_FALSE(llama.weights().head_tied());
  const auto params = llama.weights().parameters();
  EXPECT_EQ(params.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(params.back().name, "lm_head.weight");
  EXPECT_EQ(params.size(), 1 + 2 * 9 + 1 + 1u);  // embed, 2 layers × 9, norm, head
}

TEST(Weights, ShapeMismatchNamesTensorAndShapes) {
  const std::string dir = edited_copy("qwen3", [](json& c) { c["intermediate_size"] = 100; });
  const Error e = load_error(dir);
  EXPECT_EQ(e.kind(), ErrorKind::Format);
  const std::string msg = e.what();
  EXPECT_NE(msg.find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[96, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[100, 32]"), std::string::npos) << msg;
}

TEST(Weights, MissingTensorIsNamed) {
  const std::string dir = edited_copy("qwen3", [](json& c) { c["attention_bias"] = true; });
  const Error e = load_error(dir);
  EXPECT_EQ(e.kind(), ErrorKind::Format);
  EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.q_proj.bias"), std::string::npos) << e.what();
}

TEST(Model, RejectsOutOfVocabularyTokensAndBadPromptLengths) {
  const Model model = Model::load(test::fixture("models/mistral"));
  const PackedBatch bad = PackedBatch::from_sequences({{5, 6}, {7, 1024}});
  EXPECT_THROW(model.forward_logits(bad), Error);
  const PackedBatch batch = PackedBatch::from_sequences({{5, 6, 7}});
  const int32_t zero = 0, four = 4, three = 3;
  EXPECT_THROW(model.sequence_logprobs(batch, {&zero, 1}), Error);
  EXPECT_THROW(model.sequence_logprobs(batch, {&four, 1}), Error);
  EXPECT_EQ(model.sequence_logprobs(batch, {&three, 1})[0], 0.0);  // nothing to score
}

TEST(PackedBatch, FromSequencesRestartsPositions) {
  const PackedBatch b = PackedBatch::from_sequences({{9, 8, 7}, {6}, {5, 4}});
  EXPECT_EQ(b.tokens, (std::vector<int32_t>{9, 8, 7, 6, 5, 4}));
  EXPECT_EQ(b.positions, (std::vector<int32_t>{0, 1, 2, 0, 0, 1}));
  EXPECT_EQ(b.seq_starts, (std::vector<int32_t>{0, 3, 4, 6}));
}

}  // namespace
}  // namespace kto
