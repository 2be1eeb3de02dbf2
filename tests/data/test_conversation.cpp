// Conversational tokenisation (data/tokenize.h) on the fixture models' chat templates: the
// completion tokens are exactly the tokens of the text after the rendered generation prompt;
// a template whose generation prompt is not the start of its assistant turn is counted and
// reported once with one example; template and missing-template errors name file:line. TRL's
// own ids for the same rules are checked in test_trl_parity.cpp (TrlConvParity).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "data/dataset.h"
#include "data/tokenize.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kto {
namespace {

using nlohmann::json;

json msg(const std::string& role, const std::string& content) { return {{"role", role}, {"content", content}}; }

std::string write_rows(const std::string& name, const std::vector<std::string>& lines) {
  static const std::string dir = test::temp_dir("kto_conversation");
  const std::string path = dir + "/" + name;
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << "\n";
  return path;
}

class ConversationTokens : public testing::TestWithParam<std::string> {};

// prompt_ids encode the prompt rendered with the generation prompt; the full rendering starts
// with that text, and the completion ids decode to exactly the rest of it.
TEST_P(ConversationTokens, CompletionIsWhatFollowsTheGenerationPrompt) {
  const std::string dir = test::fixture("models/" + GetParam());
  const Tokenizer tok = Tokenizer::load(dir);
  const ChatTemplate tmpl = chat_template_load(dir);
  const json prompt = json::array({msg("system", "Answer briefly."), msg("user", "Hi"), msg("assistant", "Hello."),
                                   msg("user", "Sky colour?")});
  const json completion = json::array({msg("assistant", "Blue, mostly.")});
  json full = prompt;
  full.push_back(completion[0]);
  const std::string prompt_text = chat_template_apply(tmpl, tok, prompt, AddGenerationPrompt::Yes);
  const std::string full_text = chat_template_apply(tmpl, tok, full, AddGenerationPrompt::No);
  ASSERT_EQ(full_text.rfind(prompt_text, 0), 0u) << prompt_text << "\n---\n" << full_text;

  const TokenizedRow row = tokenize_conversation(tok, tmpl, prompt, completion);
  EXPECT_FALSE(row.boundary_mismatch);
  EXPECT_EQ(row.prompt_ids, tok.encode(prompt_text, AddSpecial::No));
  std::vector<int32_t> joined = row.prompt_ids;
  joined.insert(joined.end(), row.completion_ids.begin(), row.completion_ids.end());
  // Decoded in context (a sentencepiece decoder drops a leading space of a sequence's first piece).
  const std::string decoded = tok.decode(joined), decoded_prompt = tok.decode(row.prompt_ids);
  ASSERT_EQ(decoded.rfind(decoded_prompt, 0), 0u) << decoded;
  EXPECT_EQ(decoded.substr(decoded_prompt.size()), full_text.substr(prompt_text.size()));
  EXPECT_EQ(joined, tok.encode(full_text, AddSpecial::No));
  if (tok.bos_id()) {
    EXPECT_EQ(row.prompt_ids.front(), *tok.bos_id()) << "the template writes BOS, once";
  }
  EXPECT_EQ(std::count(joined.begin(), joined.end(), tok.bos_id().value_or(-1)), tok.bos_id() ? 1 : 0);
}

INSTANTIATE_TEST_SUITE_P(Models, ConversationTokens, testing::Values("llama", "mistral", "qwen2", "qwen3"));

// A template whose generation prompt ("[assistant]\n") is not how it starts an assistant turn
// ("[assistant]"): every row mismatches; counted, and one warning names the first row and shows
// where the texts part.
TEST(ConversationDataset, BoundaryMismatchIsCountedAndReportedOnce) {
  const std::string dir = test::fixture("models/llama");
  DataOptions o;
  o.chat_template = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
      "{% if add_generation_prompt %}[assistant]\n{% endif %}", "odd.jinja");
  const std::string row = R"({"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}], "label": true})";
  const std::string path = write_rows("mismatch.jsonl", {row, row, row});
  testing::internal::CaptureStderr();
  const KtoDataset ds = KtoDataset::load(path, Tokenizer::load(dir), o);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(ds.stats().boundary_mismatches, 3);
  EXPECT_EQ(ds.size(), 3);
  size_t n_lines = 0;
  for (size_t at = err.find("not a prefix"); at != std::string::npos; at = err.find("not a prefix", at + 1)) ++n_lines;
  EXPECT_EQ(n_lines, 1u) << err;
  EXPECT_NE(err.find("3 of 3 rows"), std::string::npos) << err;
  EXPECT_NE(err.find(path + ":1"), std::string::npos) << err;
  EXPECT_NE(err.find(R"([user]Q[assistant]\n")"), std::string::npos) << err;
  EXPECT_NE(err.find(R"([user]Q[assistant]A")"), std::string::npos) << err;
  EXPECT_NE(err.find("generation prompt"), std::string::npos) << err;
}

void expect_load_error(const std::string& path, const DataOptions& o, ErrorKind kind,
                       std::initializer_list<std::string> needles) {
  try {
    KtoDataset::load(path, Tokenizer::load(test::fixture("models/mistral")), o);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const std::string& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(ConversationDataset, ErrorsNameFileAndLine) {
  const std::string ok = R"({"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}], "label": true})";
  const std::string tool = R"({"prompt": [{"role": "tool", "content": "42"}], "completion": [{"role": "assistant", "content": "A"}], "label": true})";
  const std::string path = write_rows("errors.jsonl", {ok, tool});
  expect_load_error(path, DataOptions{}, ErrorKind::InvalidArgument, {path + ":1", "chat template", "string prompt/completion"});
  DataOptions o;
  o.chat_template = chat_template_load(test::fixture("models/mistral"));  // raise_exception for a tool role
  expect_load_error(path, o, ErrorKind::InvalidArgument, {path + ":2", "chat_template.jinja:", "roles must be system, user or assistant"});
}

// The same conversation as prompt/completion lists, {messages} and ShareGPT {conversations}
// gives the same example.
TEST(ConversationDataset, RowShapesGiveTheSameExample) {
  const std::string dir = test::fixture("models/qwen2");
  DataOptions o;
  o.chat_template = chat_template_load(dir);
  const std::string path = write_rows("shapes.jsonl", {
      R"({"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}], "label": true})",
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "label": true})",
      R"({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}], "label": true})",
  });
  const KtoDataset ds = KtoDataset::load(path, Tokenizer::load(dir), o);
  ASSERT_EQ(ds.size(), 3);
  for (int64_t i = 1; i < 3; ++i) {
    EXPECT_EQ(ds.examples()[i].prompt_ids, ds.examples()[0].prompt_ids);
    EXPECT_EQ(ds.examples()[i].completion_ids, ds.examples()[0].completion_ids);
  }
}

TEST(ConversationDataset, ChatTemplateFind) {
  EXPECT_TRUE(chat_template_find(test::fixture("models/llama")).has_value());
  EXPECT_FALSE(chat_template_find(test::fixture("tokenizers/llama3_bpe")).has_value());
}

}  // namespace
}  // namespace kto
