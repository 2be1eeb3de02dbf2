// KtoDataset end to end with the llama3_bpe tokenizer fixture: loading, errors that name
// file:line, dropping and truncation counts, warnings, eval splits, folders, shuffled order.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "data/dataset.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kto {
namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer tok = Tokenizer::load(test::fixture("tokenizers/llama3_bpe"));
  return tok;
}

std::string write_rows(const std::string& name, const std::vector<std::string>& lines) {
  static const std::string dir = test::temp_dir("kto_dataset");
  const std::string path = dir + "/" + name;
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << "\n";
  return path;
}

DataOptions options(int64_t max_length = 1024) {
  DataOptions o;
  o.truncation.max_length = max_length;
  return o;
}

void expect_load_error(const std::string& path, ErrorKind kind, const std::string& needle) {
  try {
    KtoDataset::load(path, tokenizer(), options());
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(KtoDataset, ErrorsNameFileAndLine) {
  const std::string ok = R"({"prompt": "a", "completion": "b", "label": true})";
  std::string p = write_rows("malformed.jsonl", {ok, R"({"prompt": "a", "completion": )"});
  expect_load_error(p, ErrorKind::Format, p + ":2");
  p = write_rows("no_label.jsonl", {ok, ok, R"({"prompt": "a", "completion": "b"})"});
  expect_load_error(p, ErrorKind::Format, p + ":3: the row has no `label`");
  p = write_rows("maybe.jsonl", {R"({"prompt": "a", "completion": "b", "label": "maybe"})"});
  expect_load_error(p, ErrorKind::Format, p + ":1: label \"maybe\" is not a boolean");
  p = write_rows("empty_completion.jsonl", {ok, R"({"prompt": "a", "completion": "", "label": false})"});
  expect_load_error(p, ErrorKind::Format, p + ":2: empty `completion`");
  p = write_rows("chat.jsonl", {R"({"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}], "label": true})"});
  expect_load_error(p, ErrorKind::InvalidArgument, p + ":1: conversational rows");  // no chat template given
  expect_load_error(test::temp_dir("missing") + "/nope.jsonl", ErrorKind::NotFound, "nope.jsonl");
  p = write_rows("empty.jsonl", {});
  expect_load_error(p, ErrorKind::InvalidArgument, "no rows");
  p = write_rows("bad_ids.jsonl", {R"({"prompt_ids": [1000], "completion_ids": [5000], "label": true})"});
  expect_load_error(p, ErrorKind::Format, p + ":1: token id 5000");
}

TEST(KtoDataset, DropsPromptsThatFillMaxLengthAndCountsTruncation) {
  const std::string path = write_rows("long.jsonl", {
      R"({"prompt": "Hi", "completion": " there", "label": true})",
      R"({"prompt": "one two three four five six seven eight nine ten", "completion": " x", "label": false})",
      R"({"prompt": "Hey", "completion": " one two three four five six seven eight", "label": false})",
  });
  testing::internal::CaptureStderr();
  KtoDataset ds = KtoDataset::load(path, tokenizer(), options(8));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.stats().rows_read, 3);
  EXPECT_EQ(ds.stats().dropped_long_prompt, 1);
  EXPECT_EQ(ds.stats().truncated, 1);
  EXPECT_EQ(ds.stats().n_desirable, 1);
  EXPECT_EQ(ds.stats().n_undesirable, 1);
  EXPECT_EQ(ds.stats().read_undesirable, 2);
  EXPECT_EQ(ds.where(1), path + ":3");
  EXPECT_NE(err.find("1 rows dropped"), std::string::npos) << err;
  EXPECT_NE(err.find(path + ":2"), std::string::npos) << err;
  PackedMicroBatch b = ds.pack(std::vector<int64_t>{0, 1}, KlSequences::Yes);
  for (int64_t s = 0; s < b.n_sequences(); ++s) EXPECT_LE(b.sequence_tokens(s).size(), 8u);
  // max_length 0 = no limit: nothing dropped or cut
  KtoDataset all = KtoDataset::load(path, tokenizer(), options(0));
  EXPECT_EQ(all.size(), 3);
  EXPECT_EQ(all.stats().truncated, 0);
}

TEST(KtoDataset, OneLabelLoadsWithAWarning) {
  const std::string path = write_rows("one_label.jsonl", {
      R"({"prompt": "a", "completion": "b", "label": true})",
      R"({"prompt": "c", "completion": "d", "label": "TRUE"})",
      R"({"prompt": "e", "completion": "f", "label": 1})",
  });
  testing::internal::CaptureStderr();
  KtoDataset ds = KtoDataset::load(path, tokenizer(), options());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(ds.size(), 3);
  EXPECT_NE(err.find("only desirable examples"), std::string::npos) << err;
  ASSERT_TRUE(ds.stats().imbalance);
  EXPECT_DOUBLE_EQ(ds.stats().imbalance->desirable_lo, 0.33);
  EXPECT_NE(err.find("EITHER desirable_weight in [0.33, 0.44]"), std::string::npos) << err;
  // No advice for an eval split.
  testing::internal::CaptureStderr();
  KtoDataset eval = KtoDataset::load(path, tokenizer(), options(), DatasetRole::Eval);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_FALSE(eval.stats().imbalance);
}

TEST(KtoDataset, ShapesGiveTheSameExamples) {
  const std::string text = write_rows("text.jsonl", {
      R"({"prompt": "Say hi", "completion": " Hi!", "label": true})",
      R"({"prompt": "Say no", "completion": " No.", "label": false})",
  });
  const std::string inst = write_rows("inst.jsonl", {
      R"({"instruction": "Say hi", "response": " Hi!", "label": "true"})",
      R"({"instruction": "Say no", "output": " No.", "label": 0})",
  });
  KtoDataset a = KtoDataset::load(text, tokenizer(), options());
  KtoDataset b = KtoDataset::load(inst, tokenizer(), options());
  ASSERT_EQ(a.size(), b.size());
  for (int64_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.examples()[static_cast<size_t>(i)].prompt_ids, b.examples()[static_cast<size_t>(i)].prompt_ids);
    EXPECT_EQ(a.examples()[static_cast<size_t>(i)].completion_ids, b.examples()[static_cast<size_t>(i)].completion_ids);
    EXPECT_EQ(a.examples()[static_cast<size_t>(i)].label, b.examples()[static_cast<size_t>(i)].label);
  }
  const Example& e = a.examples()[0];
  EXPECT_EQ(e.prompt_ids, tokenizer().encode("Say hi"));
  EXPECT_EQ(e.completion_ids.back(), *tokenizer().eos_id());  // EOS text appended

  const std::string ids = write_rows("ids.jsonl", {R"({"prompt_ids": [1000, 5], "completion_ids": [6, 7], "label": true})"});
  KtoDataset c = KtoDataset::load(ids, tokenizer(), options());
  EXPECT_EQ(c.examples()[0].completion_ids, (std::vector<int32_t>{6, 7}));  // as given: no EOS added
}

TEST(KtoDataset, FolderAndJsonArray) {
  const std::string dir = test::temp_dir("kto_folder");
  std::ofstream(dir + "/b.jsonl") << R"({"prompt": "b", "completion": "B", "label": false})" << "\n";
  std::ofstream(dir + "/a.json") << R"([{"prompt": "a", "completion": "A", "label": true}, {"prompt": "a2", "completion": "A2", "label": false}])";
  std::ofstream(dir + "/notes.txt") << "ignored";
  KtoDataset ds = KtoDataset::load(dir, tokenizer(), options());
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.where(0), dir + "/a.json element 1");
  EXPECT_EQ(ds.where(1), dir + "/a.json element 2");
  EXPECT_EQ(ds.where(2), dir + "/b.jsonl:1");
}

TEST(KtoDataset, EvalSplitAndEvalFile) {
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i) {
    lines.push_back(R"({"prompt": "p)" + std::to_string(i) + R"(", "chosen": " yes", "rejected": " no"})");
  }
  const std::string path = write_rows("pairs.jsonl", lines);
  KtoDatasets a = load_kto_datasets(path, "", 0.25, tokenizer(), options());
  ASSERT_TRUE(a.eval);
  EXPECT_EQ(a.train.stats().rows_read, 15);
  EXPECT_EQ(a.eval->stats().rows_read, 5);
  EXPECT_EQ(a.eval->size(), 10);  // each held-out pair keeps both halves
  KtoDatasets b = load_kto_datasets(path, "", 0.25, tokenizer(), options());
  for (int64_t i = 0; i < a.eval->size(); ++i) EXPECT_EQ(a.eval->where(i), b.eval->where(i));
  KtoDatasets c = load_kto_datasets(path, path, 0.0, tokenizer(), options());
  ASSERT_TRUE(c.eval);
  EXPECT_EQ(c.eval->size(), 40);
  EXPECT_FALSE(load_kto_datasets(path, "", 0.0, tokenizer(), options()).eval);
  EXPECT_THROW(load_kto_datasets(path, path, 0.1, tokenizer(), options()), Error);
}

TEST(KtoDataset, DefaultOrderShufflesWholeExamplesPerEpoch) {
  std::vector<std::string> lines;
  for (int i = 0; i < 30; ++i) {
    lines.push_back(R"({"prompt": "q)" + std::to_string(i) + R"(", "completion": " c)" + std::to_string(i) +
                    R"(", "label": )" + (i % 2 ? "true" : "false") + "}");
  }
  const std::string path = write_rows("order.jsonl", lines);
  DataOptions shuffled = options();
  KtoDataset ds = KtoDataset::load(path, tokenizer(), shuffled);
  auto e0 = ds.micro_batches(0, 4), e1 = ds.micro_batches(1, 4);
  ASSERT_EQ(e0.size(), 8u);
  EXPECT_EQ(e0.back().size(), 2u);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, ds.micro_batches(0, 4));
  std::vector<int64_t> seen;
  for (const auto& b : e0) seen.insert(seen.end(), b.begin(), b.end());
  std::sort(seen.begin(), seen.end());
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], i);
  // KL pairs rotate inside the shuffled micro-batch.
  PackedMicroBatch b = ds.pack(e0[0], KlSequences::Yes);
  const Example& last = ds.examples()[static_cast<size_t>(e0[0].back())];
  auto kl0 = b.sequence_tokens(4);
  EXPECT_TRUE(std::equal(last.completion_ids.begin(), last.completion_ids.end(), kl0.begin() + b.sequences[4].prompt_len));
  DataOptions trl = options();
  trl.trl_compat = TrlCompat::Yes;
  EXPECT_EQ(KtoDataset::load(path, tokenizer(), trl).micro_batches(5, 4)[0], (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(KtoDataset, LegacyTruncationKeepsPromptEnd) {
  const std::string path = write_rows("legacy.jsonl", {
      R"({"prompt": "one two three four five six seven eight nine ten", "completion": " a b c d e f g h", "label": true})",
  });
  DataOptions o = options(12);
  o.truncation.max_prompt_length = 4;
  KtoDataset ds = KtoDataset::load(path, tokenizer(), o);
  ASSERT_EQ(ds.size(), 1);  // not dropped under the legacy rule
  EXPECT_EQ(ds.stats().truncated, 1);
  const Example& e = ds.examples()[0];
  PackedMicroBatch b = ds.pack(std::vector<int64_t>{0}, KlSequences::No);
  auto s = b.sequence_tokens(0);
  ASSERT_EQ(s.size(), 12u);
  EXPECT_EQ(b.sequences[0].prompt_len, 4);
  EXPECT_TRUE(std::equal(s.begin(), s.begin() + 4, e.prompt_ids.end() - 4));
  EXPECT_TRUE(std::equal(s.begin() + 4, s.end(), e.completion_ids.begin()));
}

}  // namespace
}  // namespace kto
