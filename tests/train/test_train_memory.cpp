// The memory plan of a training run: max_memory sizes and `auto` in the config, the largest pass
// of the first epoch against the packer (the trainer's own micro-batches, packed and split into
// main and KL sequences as Trainer::reserve_device_memory does), the `auto` batch choice at a
// given budget, and the advice when nothing fits — every setting it suggests, applied, fits.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "data/batch.h"
#include "model/config.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/train_config.h"
#include "train/train_memory.h"
#include "util/error.h"

namespace kto {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(TrainMemory, MaxMemorySizes) {
  EXPECT_EQ(train_config_parse_bytes("24GiB", "t"), 24 * kGiB);
  EXPECT_EQ(train_config_parse_bytes("24 GiB", "t"), 24 * kGiB);
  EXPECT_EQ(train_config_parse_bytes("80GB", "t"), int64_t{80'000'000'000});
  EXPECT_EQ(train_config_parse_bytes("512MiB", "t"), int64_t{512} << 20);
  EXPECT_EQ(train_config_parse_bytes("1.5TiB", "t"), int64_t{3} << 39);
  EXPECT_EQ(train_config_parse_bytes("25769803776", "t"), 24 * kGiB);
  EXPECT_EQ(train_config_parse_bytes("auto", "t"), 0);
  try {
    train_config_parse_bytes("lots", "cfg.yaml:3");
    FAIL() << "'lots' is not a size";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("cfg.yaml:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("24GiB"), std::string::npos) << e.what();
  }
}

TEST(TrainMemory, AutoBatchAndMaxMemoryKeysRoundTrip) {
  TrainConfig c;
  train_config_set(c, "per_device_train_batch_size", "auto", "t");
  train_config_set(c, "max_memory", "24GiB", "t");
  EXPECT_EQ(c.per_device_train_batch_size, 0);
  EXPECT_EQ(c.max_memory, 24 * kGiB);
  train_config_validate(c);  // `auto` passes; the CLI resolves it before training
  const std::string dump = train_config_dump(c);
  EXPECT_NE(dump.find("per_device_train_batch_size: auto\n"), std::string::npos) << dump;
  EXPECT_NE(dump.find("max_memory: 24GiB\n"), std::string::npos) << dump;
  const std::string path = test::temp_dir("memcfg") + "/c.yaml";
  std::ofstream(path) << dump;
  TrainConfig back;
  train_config_load_yaml(back, path);
  EXPECT_EQ(back.per_device_train_batch_size, 0);
  EXPECT_EQ(back.max_memory, 24 * kGiB);
  train_config_set(c, "auto_find_batch_size", "true", "t");  // HF's name for the same search
  EXPECT_TRUE(c.auto_find_batch_size);
}

struct Fixture {
  Tokenizer tokenizer = Tokenizer::load(test::fixture("models/llama"));
  ModelConfig model = model_config_load(test::fixture("models/llama"));
  KtoDatasets data;
  explicit Fixture(int64_t max_length) {
    DataOptions options;
    options.truncation.max_length = max_length;
    data = load_kto_datasets(test::fixture("kto_steps/train.jsonl"), "", 0.0, tokenizer, options);
  }
};

// What the trainer reserves for: each micro-batch packed, its main and KL sequences counted apart,
// scored rows = length − max(1, prompt) (Trainer split).
// Also the main sequences' prompt tokens (kept for the KL pass) and the KL pass over them: its
// queries (completion + the prompt's last token), keys (all its tokens), sequences and rows.
PassExtent packed_extent(const KtoDataset& d, int64_t batch_size, const TruncationRule& rule) {
  PassExtent out;
  for (const auto& batch : d.micro_batches(0, batch_size)) {
    const PackedMicroBatch pmb = pack_micro_batch(d.examples(), batch, rule, KlSequences::Yes);
    for (SeqKind kind : {SeqKind::Main, SeqKind::Kl}) {
      int64_t tokens = 0, rows = 0, prompts = 0, queries = 0, seqs = 0;
      for (int64_t s = 0; s < pmb.n_sequences(); ++s) {
        if (pmb.sequences[static_cast<size_t>(s)].kind != kind) continue;
        const int64_t len = static_cast<int64_t>(pmb.sequence_tokens(s).size());
        const int64_t np = std::max<int64_t>(1, std::min<int64_t>(pmb.sequences[static_cast<size_t>(s)].prompt_len, len));
        tokens += len, rows += len - np, prompts += np, queries += len - np + 1, ++seqs;
      }
      out.n_tokens = std::max(out.n_tokens, tokens), out.n_head_rows = std::max(out.n_head_rows, rows);
      KlReuseExtent& r = out.kl_reuse;
      if (kind == SeqKind::Main) r.n_prompt_tokens = std::max(r.n_prompt_tokens, prompts);
      if (kind == SeqKind::Main) continue;
      r.n_queries = std::max(r.n_queries, queries), r.n_keys = std::max(r.n_keys, tokens);
      r.n_sequences = std::max(r.n_sequences, seqs), r.n_head_rows = std::max(r.n_head_rows, rows);
    }
  }
  return out;
}

TEST(TrainMemory, LargestPassEqualsThePackedMicroBatches) {
  const Fixture f(1024);
  for (int64_t max_length : {12, 20, 1024}) {
    TruncationRule rule = f.data.train.options().truncation;
    rule.max_length = max_length;
    for (int64_t batch : {1, 2, 3, 8, 64}) {
      const PassExtent want = packed_extent(f.data.train, batch, rule);
      const PassExtent got = train_pass_extent(f.data.train, batch, KlSequences::Yes, rule);
      EXPECT_EQ(got.n_tokens, want.n_tokens) << "batch " << batch << " max_length " << max_length;
      EXPECT_EQ(got.n_head_rows, want.n_head_rows) << "batch " << batch << " max_length " << max_length;
      const KlReuseExtent &g = got.kl_reuse, &w = want.kl_reuse;
      EXPECT_EQ(g.n_prompt_tokens, w.n_prompt_tokens) << "batch " << batch << " max_length " << max_length;
      EXPECT_EQ(g.n_queries, w.n_queries) << "batch " << batch << " max_length " << max_length;
      EXPECT_EQ(g.n_keys, w.n_keys) << "batch " << batch << " max_length " << max_length;
      EXPECT_EQ(g.n_sequences, w.n_sequences) << "batch " << batch << " max_length " << max_length;
      EXPECT_EQ(g.n_head_rows, w.n_head_rows) << "batch " << batch << " max_length " << max_length;
    }
  }
}

TrainMemorySetup setup_of(const Fixture& f) {
  TrainMemorySetup s;
  s.model = f.model;
  s.extent = train_extent_fn(f.data.train, KlSequences::Yes);
  s.n_examples = f.data.train.size();
  return s;
}

int64_t peak_at(const TrainConfig& c, const TrainMemorySetup& s, BaseWeights base, int64_t batch, int64_t length) {
  return memory_plan(s.model, train_memory_inputs(c, s, base, s.extent(batch, length))).peak();
}

TEST(TrainMemory, AutoPicksTheLargestBatchThatFits) {
  const Fixture f(1024);
  const TrainMemorySetup s = setup_of(f);
  TrainConfig c;
  c.per_device_train_batch_size = 0;  // auto
  c.gradient_checkpointing = false;
  const MemoryBudget budget{peak_at(c, s, BaseWeights::Bf16, 13, c.max_length), "a test budget"};
  const MemoryResolution r = train_memory_resolve(c, s, budget);
  ASSERT_TRUE(r.advice.empty()) << r.advice;
  EXPECT_GE(r.batch_size, 13);  // passes do not always grow with the batch: 13 fits, so the answer is at least 13
  EXPECT_LE(r.plan.peak(), budget.bytes);
  if (r.batch_size < s.n_examples) {
    EXPECT_GT(peak_at(c, s, BaseWeights::Bf16, r.batch_size + 1, c.max_length), budget.bytes);
  }
  EXPECT_NE(r.note.find(std::to_string(r.batch_size)), std::string::npos) << r.note;
  // auto_find_batch_size searches up to the given size, as HF's does.
  TrainConfig hf = c;
  hf.per_device_train_batch_size = 6, hf.auto_find_batch_size = true;
  EXPECT_EQ(train_memory_resolve(hf, s, budget).batch_size, 6);
  // Without a budget (the CPU) `auto` is the documented default.
  EXPECT_EQ(train_memory_resolve(c, s, MemoryBudget{}).batch_size, kAutoBatchWithoutBudget);
  // Even the smallest batch does not fit: advice instead of a choice.
  EXPECT_FALSE(train_memory_resolve(c, s, MemoryBudget{1000, "a tiny budget"}).advice.empty());
  // max_memory below the CUDA context estimate leaves a negative budget: nothing fits, never "no limit".
  TrainConfig fixed = c;
  fixed.per_device_train_batch_size = 2, fixed.max_memory = int64_t{256} << 20;
  const MemoryBudget negative = train_memory_budget(fixed, DeviceChoice{});
  EXPECT_LT(negative.bytes, 0);
  EXPECT_FALSE(train_memory_resolve(fixed, s, negative).advice.empty());
}

// Applies each suggestion of an advice message to `c` and checks that it then fits.
void expect_every_suggestion_fits(const std::string& advice, const TrainConfig& c, const TrainMemorySetup& s,
                                  int64_t batch, int64_t limit) {
  const size_t list = advice.find("; change one of: ") != std::string::npos ? advice.find("; change one of: ") : advice.find("; set ");
  ASSERT_NE(list, std::string::npos) << advice;
  const std::string tail = advice.substr(list);
  const std::regex suggestion(R"(([a-z_0-9:. ]+?) \(→)");
  int n = 0;
  for (auto it = std::sregex_iterator(tail.begin(), tail.end(), suggestion); it != std::sregex_iterator(); ++it, ++n) {
    const std::string text = (*it)[1];
    TrainConfig v = c;
    BaseWeights base = s.base;
    int64_t b = batch;
    std::smatch m;
    if (text.find("gradient_checkpointing: true") != std::string::npos) v.gradient_checkpointing = true;
    if (text.find("load_in_4bit: true") != std::string::npos) base = BaseWeights::Nf4;
    if (std::regex_search(text, m, std::regex(R"(per_device_train_batch_size: (\d+))"))) b = std::stoll(m[1]);
    if (std::regex_search(text, m, std::regex(R"(max_length: (\d+))"))) v.max_length = std::stoll(m[1]);
    EXPECT_LE(peak_at(v, s, base, b, v.max_length), limit) << "suggestion '" << text << "' of: " << advice;
  }
  EXPECT_GT(n, 0) << advice;
}

TEST(TrainMemory, AdviceNamesSettingsThatFit) {
  const Fixture f(1024);
  const TrainMemorySetup s = setup_of(f);
  TrainConfig c;
  c.per_device_train_batch_size = 16;
  c.gradient_checkpointing = false;
  // A budget between batch 8's peak and batch 16's: a smaller batch (and checkpointing) fit.
  const int64_t limit = peak_at(c, s, BaseWeights::Bf16, 8, c.max_length);
  const MemoryResolution r = train_memory_resolve(c, s, MemoryBudget{limit, "max_memory 1 GiB less ~512 MiB"});
  ASSERT_FALSE(r.advice.empty());
  EXPECT_NE(r.advice.find("does not fit in max_memory"), std::string::npos) << r.advice;
  EXPECT_NE(r.advice.find("per_device_train_batch_size: "), std::string::npos) << r.advice;
  EXPECT_NE(r.advice.find("gradient_accumulation_steps: 2"), std::string::npos) << r.advice;
  expect_every_suggestion_fits(r.advice, c, s, 16, limit);
  try {
    train_memory_require_fit(r);
    FAIL() << "a plan that does not fit must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::OutOfMemory);
  }
  // Only a shorter max_length (or 4-bit weights) helps at batch 2: no batch size is suggested.
  TrainConfig two = c;
  two.per_device_train_batch_size = 2;
  const int64_t tight = peak_at(two, s, BaseWeights::Bf16, 2, 8);
  const MemoryResolution r2 = train_memory_resolve(two, s, MemoryBudget{tight, "a tight budget"});
  ASSERT_FALSE(r2.advice.empty());
  EXPECT_EQ(r2.advice.find("per_device_train_batch_size: "), std::string::npos) << r2.advice;
  expect_every_suggestion_fits(r2.advice, two, s, 2, tight);
}

}  // namespace
}  // namespace kto
