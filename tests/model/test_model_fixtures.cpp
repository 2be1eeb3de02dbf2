// Model against transformers on the tiny random fixtures of tools/reference/make_models.py
// (llama: GQA + llama3 RoPE scaling, sharded; mistral: sliding window + linear RoPE; qwen2:
// bf16 + qkv bias + tied head; qwen3: q/k norm + explicit head_dim). Checks logits of a packed
// batch, completion log-probs, greedy continuations through the KV cache, and cached-decode
// logits, all against HF outputs. Tolerance: |ours - hf| <= 1e-4 * max(1, |hf|) per element.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/model.h"
#include "test_util.h"

namespace kto {
namespace {

using nlohmann::json;
constexpr double kTol = 1e-4;

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "missing " << path << "; run tools/reference/make_models.py";
  return json::parse(in);
}

std::vector<float> read_f32(const std::string& path, size_t count) {
  std::vector<float> out(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(count * sizeof(float)));
  EXPECT_EQ(static_cast<size_t>(in.gcount()), count * sizeof(float)) << path;
  return out;
}

double rel_err(double got, double want) { return std::abs(got - want) / std::max(1.0, std::abs(want)); }

// Largest per-element relative error of `count` values; NaN counts as infinite.
double max_rel_err(const float* got, const float* want, int64_t count) {
  double worst = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    const double e = rel_err(got[i], want[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst;
}

int32_t argmax(const HostTensor& logits) {
  const float* p = logits.f32();
  return static_cast<int32_t>(std::max_element(p, p + logits.numel()) - p);
}

class ModelFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = test::fixture("models/" + GetParam());
    expected_ = read_json(dir_ + "/expected.json");
    model_ = std::make_unique<Model>(Model::load(dir_));
  }
  std::vector<std::vector<int32_t>> packed_sequences() const {
    return expected_["packed"]["sequences"].get<std::vector<std::vector<int32_t>>>();
  }
  std::vector<float> hf_logits() const {
    const auto shape = expected_["packed"]["logits_shape"].get<std::vector<size_t>>();
    return read_f32(dir_ + "/" + expected_["packed"]["logits_file"].get<std::string>(), shape[0] * shape[1]);
  }
  std::string dir_;
  json expected_;
  std::unique_ptr<Model> model_;
};

TEST_P(ModelFixture, PackedLogitsMatchTransformers) {
  const PackedBatch batch = PackedBatch::from_sequences(packed_sequences());
  const HostTensor logits = model_->forward_logits(batch);
  const std::vector<float> want = hf_logits();
  ASSERT_EQ(static_cast<size_t>(logits.numel()), want.size());
  const double err = max_rel_err(logits.f32(), want.data(), logits.numel());
  std::printf("[%s] packed logits max rel err %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, kTol);
}

TEST_P(ModelFixture, SequenceLogprobsMatchTransformers) {
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> n_prompt;
  for (const json& row : expected_["score"]) {
    std::vector<int32_t> seq = row["prompt"].get<std::vector<int32_t>>();
    const auto completion = row["completion"].get<std::vector<int32_t>>();
    n_prompt.push_back(static_cast<int32_t>(seq.size()));
    seq.insert(seq.end(), completion.begin(), completion.end());
    seqs.push_back(seq);
  }
  model_->set_head_chunk_rows(4);  // chunks straddle sequence boundaries
  const std::vector<double> got = model_->sequence_logprobs(PackedBatch::from_sequences(seqs), n_prompt);
  ASSERT_EQ(got.size(), seqs.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = expected_["score"][i]["logprob"].get<double>();
    EXPECT_LE(rel_err(got[i], want), kTol) << "row " << i << ": got " << got[i] << ", want " << want;
  }
}

// Greedy decoding as generate(do_sample=False, max_new_tokens=16): argmax of the last logits,
// stopping after an eos token.
std::vector<int32_t> greedy(const Model& model, const std::vector<int32_t>& prompt, const std::vector<int32_t>& eos) {
  KvCache cache = model.new_cache(static_cast<int64_t>(prompt.size()) + 16);
  HostTensor logits = model.decode(cache, prompt);
  std::vector<int32_t> out;
  while (out.size() < 16) {
    out.push_back(argmax(logits));
    if (std::find(eos.begin(), eos.end(), out.back()) != eos.end()) break;
    logits = model.decode(cache, std::span<const int32_t>(&out.back(), 1));
  }
  return out;
}

TEST_P(ModelFixture, GreedyDecodingWithKvCacheMatchesGenerate) {
  const auto eos = expected_["eos_token_ids"].get<std::vector<int32_t>>();
  for (const json& row : expected_["greedy"]) {
    EXPECT_EQ(greedy(*model_, row["prompt"].get<std::vector<int32_t>>(), eos),
              row["new_tokens"].get<std::vector<int32_t>>());
  }
}

// The token ids of expected_text.json (HF AutoTokenizer output) through the same paths:
// greedy continuations of tokenized text prompts and TRL-style completion scores.
TEST_P(ModelFixture, TokenizedTextRowsMatchTransformers) {
  if (!std::ifstream(dir_ + "/expected_text.json").good()) GTEST_SKIP() << "no tokenizer fixture yet";
  const json text = read_json(dir_ + "/expected_text.json");
  const auto eos = expected_["eos_token_ids"].get<std::vector<int32_t>>();
  for (const json& row : text["greedy"]) {
    EXPECT_EQ(greedy(*model_, row["prompt_ids"].get<std::vector<int32_t>>(), eos),
              row["new_ids"].get<std::vector<int32_t>>())
        << row["prompt"];
  }
  for (const json& row : text["score"]) {
    std::vector<int32_t> seq = row["prompt_ids"].get<std::vector<int32_t>>();
    const auto completion = row["completion_ids"].get<std::vector<int32_t>>();
    const int32_t n_prompt = static_cast<int32_t>(seq.size());
    seq.insert(seq.end(), completion.begin(), completion.end());
    const double got = model_->sequence_logprobs(PackedBatch::from_sequences({seq}), {&n_prompt, 1})[0];
    EXPECT_LE(rel_err(got, row["logprob"].get<double>()), kTol) << row["prompt"] << ": got " << got;
  }
}

// Decodes the longest packed sequence in pieces (a 3-token prefill, then one token at a time)
// and compares the logits after each token with transformers' full-sequence logits.
TEST_P(ModelFixture, CachedDecodeLogitsMatchFullForward) {
  const auto seqs = packed_sequences();
  const std::vector<float> want = hf_logits();
  const int64_t vocab = model_->config().vocab_size;
  size_t longest = 0, offset = 0, longest_offset = 0;
  for (size_t s = 0; s < seqs.size(); offset += seqs[s].size(), ++s) {
    if (seqs[s].size() > seqs[longest].size()) longest = s, longest_offset = offset;
  }
  if (longest == 0) longest_offset = 0;
  const std::vector<int32_t>& seq = seqs[longest];
  KvCache cache = model_->new_cache(static_cast<int64_t>(seq.size()));
  double worst = 0.0;
  for (size_t t = 0; t < seq.size();) {
    const size_t n = t == 0 ? 3 : 1;
    const HostTensor logits = model_->decode(cache, std::span<const int32_t>(seq.data() + t, n));
    t += n;
    worst = std::max(worst, max_rel_err(logits.f32(), want.data() + (longest_offset + t - 1) * vocab, vocab));
  }
  std::printf("[%s] cached decode max rel err %.3g over %zu tokens\n", GetParam().c_str(), worst, seq.size());
  EXPECT_LE(worst, kTol);
  EXPECT_EQ(cache.n_tokens, static_cast<int64_t>(seq.size()));
  EXPECT_THROW(model_->decode(cache, std::span<const int32_t>(seq.data(), 1)), Error);  // full
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelFixture, ::testing::Values("llama", "mistral", "qwen2", "qwen3"));

}  // namespace
}  // namespace kto
