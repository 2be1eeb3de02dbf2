// The data pipeline in trl_compat mode against what TRL v1.9's KTOTrainer itself produced
// (tests/fixtures/data/trl_*.json, written by tools/reference/make_kto_data.py; conversational
// datasets rendered with the fixture models' chat templates in tests/fixtures/conv/trl_*.json,
// by tools/reference/make_kto_conv_data.py): the tokenised train dataset in order, and the train
// dataloader's micro-batches (truncation, KL rotation, labels), the boundary-mismatch count and
// the weight-imbalance advice.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "data/dataset.h"
#include "test_util.h"
#include "tokenizer/chat_template/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/files.h"

namespace kto {
namespace {

using nlohmann::json;

struct Case {
  json expected;
  KtoDataset dataset;
};

// tests/fixtures/<dir>/trl_<name>.json and its dataset; conversational cases render with the
// chat template of their tokenizer's (model) directory, or the fixture template they name.
Case load_case(const std::string& name, const std::string& dir = "data") {
  json expected = json_read_file(test::fixture(dir + "/trl_" + name + ".json"));
  const std::string tokenizer_dir = test::fixture(expected["tokenizer"].get<std::string>());
  const Tokenizer tok = Tokenizer::load(tokenizer_dir);
  DataOptions o;
  if (expected.contains("chat_template")) {
    const std::string path = test::fixture(expected["chat_template"].get<std::string>());
    o.chat_template = ChatTemplate::parse(file_read_text(path), path);
  } else if (expected.value("conversational", false)) {
    o.chat_template = chat_template_load(tokenizer_dir);
  }
  o.truncation.max_length = expected["max_length"].get<int64_t>();
  o.trl_compat = TrlCompat::Yes;
  o.desirable_weight = expected["desirable_weight"].get<double>();
  o.undesirable_weight = expected["undesirable_weight"].get<double>();
  testing::internal::CaptureStderr();  // the expected warnings
  KtoDataset ds = KtoDataset::load(test::fixture(dir + "/" + expected["source"].get<std::string>()), tok, o);
  testing::internal::GetCapturedStderr();
  return {std::move(expected), std::move(ds)};
}

std::vector<int32_t> ids(const json& j) { return j.get<std::vector<int32_t>>(); }

void expect_batches(const Case& c) {
  const int64_t batch_size = c.expected["per_device_train_batch_size"].get<int64_t>();
  const auto batches = c.dataset.micro_batches(0, batch_size);
  ASSERT_EQ(static_cast<int64_t>(batches.size()), c.expected["n_batches"].get<int64_t>());
  for (const json& want : c.expected["batches"]) {
    const auto index = want["index"].get<size_t>();
    SCOPED_TRACE("batch " + std::to_string(index));
    const PackedMicroBatch got = c.dataset.pack(batches[index], KlSequences::Yes);
    const size_t n = want["label"].size();
    ASSERT_EQ(got.n_main, static_cast<int64_t>(n));
    ASSERT_EQ(got.n_sequences(), static_cast<int64_t>(2 * n));
    for (size_t i = 0; i < n; ++i) {
      const json* parts[2] = {&want["main"][i], &want["kl"][i]};
      for (size_t k = 0; k < 2; ++k) {
        const int64_t s = static_cast<int64_t>(k * n + i);
        auto tokens = got.sequence_tokens(s);
        EXPECT_EQ(std::vector<int32_t>(tokens.begin(), tokens.end()), ids((*parts[k])["input_ids"])) << "sequence " << s;
        EXPECT_EQ(got.sequences[static_cast<size_t>(s)].prompt_len, (*parts[k])["prompt_len"].get<int32_t>()) << "sequence " << s;
      }
      EXPECT_EQ(got.sequences[i].label, want["label"][i].get<bool>()) << "row " << i;
    }
  }
}

// The dataset TRL trains on: same rows, same order, same ids; KL_completion_ids = the completion
// of the previous row in its block of B.
void expect_train_dataset(const Case& c) {
  const json& rows = c.expected["train_dataset"];
  ASSERT_EQ(c.dataset.size(), static_cast<int64_t>(rows.size()));
  const auto batch_size = c.expected["per_device_train_batch_size"].get<size_t>();
  for (size_t i = 0; i < rows.size(); ++i) {
    const Example& e = c.dataset.examples()[i];
    EXPECT_EQ(e.prompt_ids, ids(rows[i]["prompt_ids"])) << "row " << i;
    EXPECT_EQ(e.completion_ids, ids(rows[i]["completion_ids"])) << "row " << i;
    EXPECT_EQ(e.label, rows[i]["label"].get<bool>()) << "row " << i;
    const size_t block = i / batch_size * batch_size, end = std::min(rows.size(), block + batch_size);
    const size_t donor = i == block ? end - 1 : i - 1;
    EXPECT_EQ(c.dataset.examples()[donor].completion_ids, ids(rows[i]["KL_completion_ids"])) << "row " << i;
  }
}

void expect_counts(const Case& c) {
  const DatasetStats& st = c.dataset.stats();
  EXPECT_EQ(st.rows_read, c.expected["rows_in"].get<int64_t>());
  EXPECT_EQ(st.n_examples(), c.expected["rows_out"].get<int64_t>());
  EXPECT_EQ(st.boundary_mismatches, c.expected["boundary_mismatches"].get<int64_t>());
  const json& warning = c.expected["imbalance_warning"];
  ASSERT_EQ(st.imbalance.has_value(), !warning.is_null());
  if (warning.is_null()) return;
  const std::regex ranges(R"(desirable_weight in \[([0-9.]+), ([0-9.]+)\] or undesirable_weight in \[([0-9.]+), ([0-9.]+)\])");
  std::smatch m;
  const std::string text = warning.get<std::string>();
  ASSERT_TRUE(std::regex_search(text, m, ranges)) << text;
  EXPECT_DOUBLE_EQ(st.imbalance->desirable_lo, std::stod(m[1]));
  EXPECT_DOUBLE_EQ(st.imbalance->desirable_hi, std::stod(m[2]));
  EXPECT_DOUBLE_EQ(st.imbalance->undesirable_lo, std::stod(m[3]));
  EXPECT_DOUBLE_EQ(st.imbalance->undesirable_hi, std::stod(m[4]));
}

class TrlParity : public testing::TestWithParam<std::string> {};

TEST_P(TrlParity, MatchesKtoTrainer) {
  const Case c = load_case(GetParam());
  expect_counts(c);
  expect_train_dataset(c);
  expect_batches(c);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrlParity, testing::Values("standard", "paired_prompt", "paired_noprompt"));

// Conversational rows through the llama (Llama-3 style) and qwen2 (ChatML) fixture templates:
// prompt/completion lists, paired lists with and without a prompt, and {messages} / ShareGPT
// {conversations} rows (TRL ran on those converted to prompt/completion by the script), and a
// template whose generation prompt is not the start of its assistant turn (mismatch_llama: TRL
// warns on every row and trains on prompt_ids ++ completion_ids).
class TrlConvParity : public testing::TestWithParam<std::string> {};

TEST_P(TrlConvParity, MatchesKtoTrainer) {
  const Case c = load_case(GetParam(), "conv");
  expect_counts(c);
  expect_train_dataset(c);
  expect_batches(c);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrlConvParity,
                         testing::Values("prompt_completion_llama", "prompt_completion_qwen2", "paired_noprompt_llama",
                                         "paired_noprompt_qwen2", "paired_prompt_llama", "paired_prompt_qwen2",
                                         "messages_llama", "messages_qwen2", "conversations_llama",
                                         "conversations_qwen2", "mismatch_llama"));

// 1100 pairs: TRL unpairs them in blocks of 1000 (1000 chosen, 1000 rejected, 100, 100).
TEST(TrlParity, PairedBlocksOfAThousand) {
  const Case c = load_case("paired_big");
  expect_counts(c);
  const json& id = c.expected["id"];
  const json& label = c.expected["label"];
  ASSERT_EQ(c.dataset.size(), static_cast<int64_t>(id.size()));
  for (size_t i = 0; i < id.size(); ++i) {
    const Example& e = c.dataset.examples()[i];
    ASSERT_EQ(e.source.line - 1, id[i].get<int64_t>()) << "row " << i;  // row k of the file is line k + 1
    ASSERT_EQ(e.label, label[i].get<bool>()) << "row " << i;
  }
  expect_batches(c);
}

}  // namespace
}  // namespace kto
