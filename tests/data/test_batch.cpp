// Truncation rules, packing with KL rotation, example order, eval splits and the weight advice
// (data/truncation.h, batch.h, order.h, stats.h) on hand-made examples. TRL's own batches are
// checked in test_trl_parity.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "data/batch.h"
#include "data/order.h"
#include "data/stats.h"
#include "data/truncation.h"
#include "util/error.h"

namespace kto {
namespace {

TruncationRule cur(int64_t max_length) { return TruncationRule{max_length, 0, TruncationMode::KeepEnd}; }

void expect_cut(const SequenceCut& c, int64_t begin, int64_t prompt, int64_t completion) {
  EXPECT_EQ(c.prompt_begin, begin);
  EXPECT_EQ(c.prompt_len, prompt);
  EXPECT_EQ(c.completion_len, completion);
}

TEST(Truncation, CurKeepsTheFirstMaxLengthTokens) {
  expect_cut(truncate_sequence(5, 3, cur(10)), 0, 5, 3);
  expect_cut(truncate_sequence(5, 8, cur(10)), 0, 5, 5);
  expect_cut(truncate_sequence(12, 8, cur(10)), 0, 10, 0);
  expect_cut(truncate_sequence(500, 800, cur(0)), 0, 500, 800);  // no limit
  EXPECT_TRUE(cur(10).drops(10));
  EXPECT_FALSE(cur(10).drops(9));
  EXPECT_FALSE(cur(0).drops(100000));
}

TEST(Truncation, LegacyCutsThePromptThenTheCompletion) {
  const TruncationRule end{10, 4, TruncationMode::KeepEnd}, start{10, 4, TruncationMode::KeepStart};
  expect_cut(truncate_sequence(5, 5, end), 0, 5, 5);     // fits: untouched
  expect_cut(truncate_sequence(8, 4, end), 4, 4, 4);     // prompt cut to its last 4
  expect_cut(truncate_sequence(8, 4, start), 0, 4, 4);   // … or its first 4
  expect_cut(truncate_sequence(8, 9, end), 4, 4, 6);     // then completion cut to 10 - 4
  expect_cut(truncate_sequence(3, 9, end), 0, 3, 6);     // short prompt: completion still 10 - 4
  expect_cut(truncate_sequence(30, 2, start), 0, 4, 2);
  EXPECT_FALSE(end.drops(50));
  EXPECT_THROW((TruncationRule{10, 10, TruncationMode::KeepEnd}.validate()), Error);
  EXPECT_THROW((TruncationRule{-1, 0, TruncationMode::KeepEnd}.validate()), Error);
  EXPECT_NO_THROW((TruncationRule{10, 9, TruncationMode::KeepEnd}.validate()));
  EXPECT_EQ(truncation_mode_parse("keep_start", "x"), TruncationMode::KeepStart);
  EXPECT_THROW(truncation_mode_parse("keep_middle", "config.yaml:3"), Error);
}

std::vector<Example> make_examples() {
  std::vector<Example> e(4);
  e[0] = {{1, 10}, {11, 12}, true, {}};
  e[1] = {{1, 20, 21}, {22}, false, {}};
  e[2] = {{1, 30}, {31, 32, 33, 34}, true, {}};
  e[3] = {{1}, {41, 42}, false, {}};
  return e;
}

std::vector<int32_t> seq(const PackedMicroBatch& b, int64_t s) {
  auto span = b.sequence_tokens(s);
  return {span.begin(), span.end()};
}

TEST(Pack, MainThenKlRotatedByOne) {
  const std::vector<Example> ex = make_examples();
  const std::vector<int64_t> batch = {2, 0, 1};
  PackedMicroBatch b = pack_micro_batch(ex, batch, cur(0), KlSequences::Yes);
  ASSERT_EQ(b.n_sequences(), 6);
  EXPECT_EQ(b.n_main, 3);
  EXPECT_EQ(seq(b, 0), (std::vector<int32_t>{1, 30, 31, 32, 33, 34}));
  EXPECT_EQ(seq(b, 1), (std::vector<int32_t>{1, 10, 11, 12}));
  EXPECT_EQ(seq(b, 2), (std::vector<int32_t>{1, 20, 21, 22}));
  EXPECT_EQ(seq(b, 3), (std::vector<int32_t>{1, 30, 22}));  // first takes the last's completion
  EXPECT_EQ(seq(b, 4), (std::vector<int32_t>{1, 10, 31, 32, 33, 34}));
  EXPECT_EQ(seq(b, 5), (std::vector<int32_t>{1, 20, 21, 11, 12}));
  EXPECT_EQ(b.seq_starts, (std::vector<int32_t>{0, 6, 10, 14, 17, 23, 28}));
  EXPECT_EQ(b.positions.size(), b.tokens.size());
  for (int64_t s = 0; s < b.n_sequences(); ++s) {
    for (int32_t t = b.seq_starts[static_cast<size_t>(s)]; t < b.seq_starts[static_cast<size_t>(s) + 1]; ++t) {
      EXPECT_EQ(b.positions[static_cast<size_t>(t)], t - b.seq_starts[static_cast<size_t>(s)]);
    }
  }
  const PackedSequence& kl0 = b.sequences[3];
  EXPECT_EQ(kl0.kind, SeqKind::Kl);
  EXPECT_EQ(kl0.example, 2);
  EXPECT_TRUE(kl0.label);  // the prompt owner's label
  EXPECT_EQ(kl0.prompt_len, 2);
  EXPECT_EQ(b.sequences[2].kind, SeqKind::Main);
  EXPECT_FALSE(b.sequences[2].label);
  EXPECT_EQ(b.sequences[2].prompt_len, 3);
  EXPECT_EQ(b.completion_len(2), 1);
}

TEST(Pack, TruncatesMainAndKlSequencesAlike) {
  const std::vector<Example> ex = make_examples();
  const std::vector<int64_t> batch = {1, 2};
  PackedMicroBatch b = pack_micro_batch(ex, batch, cur(4), KlSequences::Yes);
  EXPECT_EQ(seq(b, 0), (std::vector<int32_t>{1, 20, 21, 22}));
  EXPECT_EQ(seq(b, 1), (std::vector<int32_t>{1, 30, 31, 32}));
  EXPECT_EQ(seq(b, 2), (std::vector<int32_t>{1, 20, 21, 31}));  // KL: prompt 1 + completion of 2, cut
  EXPECT_EQ(seq(b, 3), (std::vector<int32_t>{1, 30, 22}));
  EXPECT_EQ(b.completion_len(2), 1);

  PackedMicroBatch legacy = pack_micro_batch(ex, batch, TruncationRule{4, 2, TruncationMode::KeepEnd}, KlSequences::Yes);
  EXPECT_EQ(seq(legacy, 0), (std::vector<int32_t>{1, 20, 21, 22}));  // fits
  EXPECT_EQ(seq(legacy, 1), (std::vector<int32_t>{1, 30, 31, 32}));  // completion cut to 4 - 2
  EXPECT_EQ(seq(legacy, 2), (std::vector<int32_t>{20, 21, 31, 32}));  // prompt keeps its last 2
  EXPECT_EQ(legacy.sequences[2].prompt_len, 2);
}

TEST(Pack, SingleExampleAndNoKl) {
  const std::vector<Example> ex = make_examples();
  const std::vector<int64_t> one = {3};
  PackedMicroBatch b = pack_micro_batch(ex, one, cur(0), KlSequences::Yes);
  ASSERT_EQ(b.n_sequences(), 2);
  EXPECT_EQ(seq(b, 1), seq(b, 0));  // a batch of one borrows its own completion
  const std::vector<int64_t> two = {0, 3};
  PackedMicroBatch apo = pack_micro_batch(ex, two, cur(0), KlSequences::No);
  EXPECT_EQ(apo.n_sequences(), 2);
  EXPECT_EQ(apo.seq_starts, (std::vector<int32_t>{0, 4, 7}));
}

TEST(Order, TrlCompatIsSequential) {
  std::vector<int64_t> order = epoch_order(10, 3, 42, TrlCompat::Yes);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
  auto batches = split_micro_batches(order, 4);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2], (std::vector<int64_t>{8, 9}));
}

TEST(Order, ShuffleIsSeededPerEpochAndPinned) {
  const std::vector<int64_t> a = epoch_order(1000, 0, 42, TrlCompat::No);
  EXPECT_EQ(a, epoch_order(1000, 0, 42, TrlCompat::No));
  EXPECT_NE(a, epoch_order(1000, 1, 42, TrlCompat::No));
  EXPECT_NE(a, epoch_order(1000, 0, 43, TrlCompat::No));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  // Pinned: seed_seq, mt19937_64 and our draw are fully specified, so this never changes.
  EXPECT_EQ(epoch_order(8, 0, 42, TrlCompat::No), (std::vector<int64_t>{7, 2, 4, 5, 1, 0, 3, 6}));
}

TEST(Order, EvalSplit) {
  IndexSplit s = split_train_eval(100, 0.1, 42);
  EXPECT_EQ(s.eval.size(), 10u);
  EXPECT_EQ(s.train.size(), 90u);
  EXPECT_TRUE(std::is_sorted(s.eval.begin(), s.eval.end()));
  std::set<int64_t> all(s.train.begin(), s.train.end());
  all.insert(s.eval.begin(), s.eval.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(split_train_eval(100, 0.1, 42).eval, s.eval);
  EXPECT_NE(split_train_eval(100, 0.1, 7).eval, s.eval);
  EXPECT_EQ(split_train_eval(3, 0.01, 42).eval.size(), 1u);  // at least one
  EXPECT_EQ(split_train_eval(3, 0.99, 42).train.size(), 1u);  // at least one left to train on
  EXPECT_THROW(split_train_eval(100, 1.0, 42), Error);
  EXPECT_THROW(split_train_eval(1, 0.5, 42), Error);
}

TEST(WeightAdvice, PaperRule) {
  // The spec's example: 1000 desirable, 250 undesirable, weights 1/1.
  std::optional<WeightAdvice> a = weight_advice(1000, 1250, 1.0, 1.0);
  ASSERT_TRUE(a);
  EXPECT_DOUBLE_EQ(a->desirable_lo, 0.25);
  EXPECT_DOUBLE_EQ(a->desirable_hi, 0.33);
  EXPECT_DOUBLE_EQ(a->undesirable_lo, 3.01);
  EXPECT_DOUBLE_EQ(a->undesirable_hi, 4.0);
  EXPECT_NE(a->message.find("EITHER desirable_weight in [0.25, 0.33] OR undesirable_weight in [3.01, 4]"), std::string::npos)
      << a->message;
  EXPECT_FALSE(weight_advice(500, 1000, 1.0, 1.0));  // balanced
  EXPECT_FALSE(weight_advice(1000, 1250, 0.3, 1.0));  // desirable weight in range
  EXPECT_FALSE(weight_advice(1000, 1250, 1.0, 3.5));  // undesirable weight in range
  // One label: TRL's clamps give n_D = N, n_U = 1.
  std::optional<WeightAdvice> only = weight_advice(10, 10, 1.0, 1.0);
  ASSERT_TRUE(only);
  EXPECT_EQ(only->n_desirable, 10);
  EXPECT_EQ(only->n_undesirable, 1);
  EXPECT_DOUBLE_EQ(only->desirable_lo, 0.1);
  EXPECT_DOUBLE_EQ(only->desirable_hi, 0.13);
  std::optional<WeightAdvice> none = weight_advice(0, 10, 1.0, 1.0);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->n_desirable, 1);
  EXPECT_EQ(none->n_undesirable, 9);
}

TEST(WeightAdvice, RoundsLikePython) {
  // round(0.125, 2) == 0.12 in Python (the double is exactly 0.125: ties to even).
  std::optional<WeightAdvice> a = weight_advice(8, 9, 1.0, 1.0);  // n_U / n_D = 1/8
  ASSERT_TRUE(a);
  EXPECT_DOUBLE_EQ(a->desirable_lo, 0.12);
}

TEST(Stats, LengthsAndSummary) {
  const std::vector<int64_t> lengths = {3, 5, 10};
  LengthStats s = LengthStats::of(lengths);
  EXPECT_EQ(s.min, 3);
  EXPECT_EQ(s.max, 10);
  EXPECT_DOUBLE_EQ(s.mean, 6.0);
  DatasetStats d;
  d.prompt_tokens = s;
  EXPECT_NE(dataset_stats_summary(d).find("min 3, mean 6.0, max 10"), std::string::npos);
}

}  // namespace
}  // namespace kto
