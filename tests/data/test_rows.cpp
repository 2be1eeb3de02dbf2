// Row shapes, label coercion, prompt extraction, unpairing and dataset file discovery
// (data/rows.h). TRL's own outputs for the same rules are checked in test_trl_parity.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/rows.h"
#include "test_util.h"
#include "util/error.h"

namespace kto {
namespace {

DataRow row_of(const std::string& json_text, int64_t line = 7) {
  return DataRow{nlohmann::json::parse(json_text), "data.jsonl", line, false};
}

SourceRow parse(const std::string& json_text) { return parse_source_row(row_of(json_text), 0, TrlCompat::No); }

// Expects parse_source_row to throw `kind` with a message containing data.jsonl:7 and `needle`.
void expect_row_error(const std::string& json_text, ErrorKind kind, const std::string& needle) {
  try {
    parse(json_text);
    FAIL() << "no error for " << json_text;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find("data.jsonl:7"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Rows, StandardRow) {
  SourceRow r = parse(R"({"prompt": "The sky is", "completion": " blue.", "label": true, "extra": 1})");
  EXPECT_EQ(r.shape, RowShape::Text);
  EXPECT_EQ(r.prompt, "The sky is");
  EXPECT_EQ(r.completion, " blue.");
  EXPECT_TRUE(r.label);
  EXPECT_EQ(r.source.line, 7);
}

TEST(Rows, LabelCoercion) {
  const char* row = R"({"prompt": "p", "completion": "c", "label": %s})";
  auto label_of = [&](const std::string& label) {
    char text[128];
    std::snprintf(text, sizeof text, row, label.c_str());
    return parse(text).label;
  };
  EXPECT_TRUE(label_of("true"));
  EXPECT_FALSE(label_of("false"));
  EXPECT_TRUE(label_of("\"TRUE\""));
  EXPECT_FALSE(label_of("\"False\""));
  EXPECT_TRUE(label_of("1"));
  EXPECT_FALSE(label_of("0"));
  EXPECT_TRUE(label_of("\"1\""));
  expect_row_error(R"({"prompt": "p", "completion": "c", "label": "maybe"})", ErrorKind::Format, "\"maybe\"");
  expect_row_error(R"({"prompt": "p", "completion": "c", "label": "maybe"})", ErrorKind::Format, "accepted labels");
  expect_row_error(R"({"prompt": "p", "completion": "c", "label": 2})", ErrorKind::Format, "accepted labels");
  expect_row_error(R"({"prompt": "p", "completion": "c", "label": 0.5})", ErrorKind::Format, "accepted labels");
  expect_row_error(R"({"prompt": "p", "completion": "c"})", ErrorKind::Format, "no `label`");
  expect_row_error(R"({"prompt": "p", "completion": "c", "label": null})", ErrorKind::Format, "no `label`");
}

TEST(Rows, EmptyCompletionIsAnError) {
  expect_row_error(R"({"prompt": "p", "completion": "", "label": true})", ErrorKind::Format, "empty `completion`");
  expect_row_error(R"({"prompt": "p", "chosen": "", "rejected": "r"})", ErrorKind::Format, "empty `chosen`");
  expect_row_error(R"({"chosen": "a", "rejected": ""})", ErrorKind::Format, "empty `rejected`");
  expect_row_error(R"({"instruction": "i", "output": "", "label": 1})", ErrorKind::Format, "empty `output`");
  expect_row_error(R"({"prompt_ids": [1], "completion_ids": [], "label": 1})", ErrorKind::Format, "empty `completion_ids`");
}

TEST(Rows, OtherMalformedRows) {
  expect_row_error(R"({"prompt": 3, "completion": "c", "label": true})", ErrorKind::Format, "`prompt` must be a string");
  expect_row_error(R"({"completion": "c", "label": true})", ErrorKind::Format, "no `prompt`");
  expect_row_error(R"({"text": "hello"})", ErrorKind::Format, "unrecognised row");
  expect_row_error(R"({"chosen": "a"})", ErrorKind::Format, "both `chosen` and `rejected`");
  expect_row_error(R"({"prompt_ids": [1, -2], "completion_ids": [3], "label": true})", ErrorKind::Format, "-2");
}

nlohmann::json msg(const std::string& role, const std::string& content) { return {{"role", role}, {"content", content}}; }

TEST(Rows, ConversationalPromptCompletion) {
  SourceRow r = parse(R"({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi", "name": null}],
                          "completion": [{"role": "assistant", "content": "yo"}], "label": false})");
  EXPECT_EQ(r.shape, RowShape::Text);
  EXPECT_EQ(r.format, RowFormat::Conversational);
  EXPECT_FALSE(r.label);
  EXPECT_EQ(r.prompt_messages, nlohmann::json::array({msg("system", "Be brief."), msg("user", "hi")}));  // null dropped
  EXPECT_EQ(r.completion_messages, nlohmann::json::array({msg("assistant", "yo")}));
  EXPECT_EQ(parse(R"({"prompt": "hi", "completion": "yo", "label": true})").format, RowFormat::Standard);
}

// {messages} and ShareGPT {conversations}: the prompt is everything before the last assistant
// message; from/value and human/gpt become role/content and user/assistant.
TEST(Rows, MessagesAndShareGptRows) {
  SourceRow r = parse(R"({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "a"},
                          {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}, {"from": "gpt", "value": "d"}],
                          "label": "true"})");
  EXPECT_EQ(r.format, RowFormat::Conversational);
  EXPECT_TRUE(r.label);
  EXPECT_EQ(r.prompt_messages, nlohmann::json::array({msg("system", "S"), msg("user", "a"), msg("assistant", "b"), msg("user", "c")}));
  EXPECT_EQ(r.completion_messages, nlohmann::json::array({msg("assistant", "d")}));
  SourceRow m = parse(R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "label": 0})");
  EXPECT_EQ(m.prompt_messages, nlohmann::json::array({msg("user", "a")}));
  EXPECT_EQ(m.completion_messages, nlohmann::json::array({msg("assistant", "b")}));
  EXPECT_FALSE(m.label);
}

TEST(Rows, PairedConversationalRows) {
  // No prompt: the common leading messages; TRL's quirk: a list that is a prefix of the other
  // leaves the prompt one message short.
  SourceRow r = parse(R"({"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
      "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "And?"}]})");
  EXPECT_EQ(r.shape, RowShape::Paired);
  EXPECT_EQ(r.prompt_messages, nlohmann::json::array({msg("user", "Hi")}));
  EXPECT_EQ(r.completion_messages, nlohmann::json::array({msg("assistant", "Hello")}));
  EXPECT_EQ(r.rejected_messages, nlohmann::json::array({msg("assistant", "Hello"), msg("user", "And?")}));
  SourceRow p = parse(R"({"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "A"}],
                          "rejected": [{"role": "assistant", "content": "B"}]})");
  const std::vector<SourceRow> rows = unpair_rows({p});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(rows[0].label);
  EXPECT_EQ(rows[0].completion_messages, nlohmann::json::array({msg("assistant", "A")}));
  EXPECT_FALSE(rows[1].label);
  EXPECT_EQ(rows[1].completion_messages, nlohmann::json::array({msg("assistant", "B")}));
  EXPECT_EQ(rows[1].prompt_messages, nlohmann::json::array({msg("user", "Q")}));
  EXPECT_EQ(rows[1].format, RowFormat::Conversational);
}

TEST(Rows, ConversationalRowErrorsNameFileAndLine) {
  expect_row_error(R"({"messages": [{"role": "user", "content": "hi"}], "label": true})", ErrorKind::Format, "no assistant message");
  expect_row_error(R"({"messages": [{"role": "assistant", "content": "hi"}], "label": true})", ErrorKind::Format,
                   "prompt messages");
  expect_row_error(R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                       {"role": "user", "content": "c"}], "label": true})", ErrorKind::Format, "after its last assistant message");
  expect_row_error(R"({"conversations": [{"from": "bot", "value": "hi"}], "label": true})", ErrorKind::Format, "\"bot\"");
  expect_row_error(R"({"prompt": [{"role": "user", "content": 5}], "completion": [{"role": "assistant", "content": "x"}], "label": true})",
                   ErrorKind::Format, "`content` must be a string");
  expect_row_error(R"({"prompt": [{"role": "user", "content": "x"}], "completion": "text", "label": true})", ErrorKind::Format,
                   "`completion` must be a non-empty list of messages");
  expect_row_error(R"({"prompt": [{"role": "user", "content": "x"}], "completion": [], "label": true})", ErrorKind::Format,
                   "an empty list");
  expect_row_error(R"({"prompt": [{"role": "user", "content": "x"}, {"content": "y"}], "completion": [{"role": "assistant", "content": "z"}],
                       "label": true})", ErrorKind::Format, "no string `role`");
  expect_row_error(R"({"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "assistant", "content": "z"}]})",
                   ErrorKind::Format, "no `label`");
  expect_row_error(R"({"chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "user", "content": "b"}]})",
                   ErrorKind::Format, "no prompt is left");
  // An assistant message that only calls tools needs no content.
  EXPECT_NO_THROW(parse(R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": []}], "label": true})"));
}

TEST(Rows, InstructionRows) {
  SourceRow r = parse(R"({"instruction": "Say hi", "response": "Hi!", "label": "true"})");
  EXPECT_EQ(r.shape, RowShape::Text);
  EXPECT_EQ(r.prompt, "Say hi");
  EXPECT_EQ(r.completion, "Hi!");
  SourceRow o = parse(R"({"instruction": "Translate", "input": "chat", "output": "cat", "label": 0})");
  EXPECT_EQ(o.prompt, "Translate\nchat");
  EXPECT_EQ(o.completion, "cat");
  EXPECT_FALSE(o.label);
}

TEST(Rows, PreTokenisedRows) {
  SourceRow r = parse(R"({"prompt_ids": [1, 2], "completion_ids": [3, 4, 5], "label": false})");
  EXPECT_EQ(r.shape, RowShape::Tokens);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(r.completion_ids, (std::vector<int32_t>{3, 4, 5}));
  EXPECT_FALSE(r.label);
}

TEST(Rows, PairedRows) {
  SourceRow p = parse(R"({"prompt": "Q", "chosen": " yes", "rejected": " no"})");
  EXPECT_EQ(p.shape, RowShape::Paired);
  EXPECT_EQ(p.prompt, "Q");
  EXPECT_EQ(p.completion, " yes");
  EXPECT_EQ(p.rejected, " no");
  SourceRow q = parse(R"({"chosen": "The sky is blue.", "rejected": "The sky is green."})");
  EXPECT_EQ(q.prompt, "The sky is");
  EXPECT_EQ(q.completion, " blue.");
  EXPECT_EQ(q.rejected, " green.");
}

TEST(Rows, ExtractPromptFollowsTrl) {
  auto check = [](const std::string& c, const std::string& r, TrlCompat compat, const std::string& prompt,
                  const std::string& chosen, const std::string& rejected) {
    ExtractedPrompt e = extract_prompt(c, r, compat);
    EXPECT_EQ(e.prompt, prompt) << c << " | " << r;
    EXPECT_EQ(e.chosen, chosen) << c << " | " << r;
    EXPECT_EQ(e.rejected, rejected) << c << " | " << r;
  };
  check("Answer: yes", "Answer: no", TrlCompat::No, "Answer:", " yes", " no");
  check("colour me", "color me", TrlCompat::No, "colo", "ur me", "r me");
  check("Good", "Good job", TrlCompat::No, "Goo", "d", "d job");  // TRL's one-short prefix case
  check("Same", "Same", TrlCompat::No, "Sam", "e", "e");
  check("Café crème", "Café noir", TrlCompat::No, "Café", " crème", " noir");  // code points, not bytes
  check("ééa", "ééb", TrlCompat::No, "éé", "a", "b");
  check("Yes.", "No.", TrlCompat::No, "", "Yes.", "No.");
  check("Yes ", "No ", TrlCompat::No, "", "Yes ", "No ");
  check("Yes ", "No ", TrlCompat::Yes, "Yes", " ", " ");  // Python's chosen[-1] at idx 0
}

TEST(Rows, UnpairsInBlocksOfAThousand) {
  auto make = [](RowShape shape, int64_t line, std::string prompt, std::string completion, std::string rejected) {
    SourceRow r;
    r.shape = shape;
    r.source.line = line;
    r.label = false;
    r.prompt = std::move(prompt);
    r.completion = std::move(completion);
    r.rejected = std::move(rejected);
    return r;
  };
  std::vector<SourceRow> rows;
  rows.push_back(make(RowShape::Text, 1, "u", "x", ""));
  for (int i = 0; i < 1002; ++i) rows.push_back(make(RowShape::Paired, i + 2, std::to_string(i), "c", "r"));
  std::vector<SourceRow> out = unpair_rows(rows);
  ASSERT_EQ(out.size(), 1u + 2 * 1002);
  EXPECT_EQ(out[0].prompt, "u");
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(out[1 + i].prompt, std::to_string(i));
    EXPECT_TRUE(out[1 + i].label);
    EXPECT_EQ(out[1 + i].completion, "c");
    EXPECT_EQ(out[1001 + i].prompt, std::to_string(i));
    EXPECT_FALSE(out[1001 + i].label);
    EXPECT_EQ(out[1001 + i].completion, "r");
    EXPECT_EQ(out[1001 + i].source.line, i + 2);
  }
  EXPECT_EQ(out[2001].prompt, "1000");
  EXPECT_EQ(out[2002].prompt, "1001");
  EXPECT_TRUE(out[2002].label);
  EXPECT_EQ(out[2003].prompt, "1000");
  EXPECT_FALSE(out[2003].label);
  for (const SourceRow& r : out) EXPECT_EQ(r.shape, RowShape::Text);
}

TEST(Rows, DatasetFiles) {
  const std::string dir = test::temp_dir("dataset_files");
  for (const char* name : {"b.jsonl", "a.json", "c.txt", "d.JSONL"}) std::ofstream(dir + "/" + name) << "";
  std::filesystem::create_directory(dir + "/sub.jsonl");
  std::vector<std::string> files = dataset_files(dir);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(std::filesystem::path(files[0]).filename(), "a.json");
  EXPECT_EQ(std::filesystem::path(files[1]).filename(), "b.jsonl");
  EXPECT_EQ(std::filesystem::path(files[2]).filename(), "d.JSONL");
  EXPECT_EQ(dataset_files(dir + "/b.jsonl").size(), 1u);

  auto expect_kind = [](const std::string& path, ErrorKind kind) {
    try {
      dataset_files(path);
      FAIL() << "no error for " << path;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  expect_kind(dir + "/missing.jsonl", ErrorKind::NotFound);
  std::filesystem::create_directory(dir + "/empty");
  expect_kind(dir + "/empty", ErrorKind::NotFound);
  std::ofstream(dir + "/rows.parquet") << "PAR1";
  expect_kind(dir + "/rows.parquet", ErrorKind::Unsupported);
}

TEST(Rows, ReadSourceRowsNamesFileAndLine) {
  const std::string dir = test::temp_dir("read_rows");
  const std::string good = dir + "/good.jsonl", bad = dir + "/bad.jsonl";
  std::ofstream(good) << R"({"prompt": "p", "completion": "c", "label": true})" << "\n";
  std::ofstream(bad) << R"({"prompt": "p", "completion": "c", "label": true})" << "\n\n"
                     << R"({"prompt": "p", "completion": "c", "label": tru})" << "\n";
  const std::vector<std::string> files = {good, bad};
  try {
    read_source_rows(files, TrlCompat::No);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Format);
    EXPECT_NE(std::string(e.what()).find(bad + ":3"), std::string::npos) << e.what();
  }
  std::vector<SourceRow> rows = read_source_rows(std::span(files).first(1), TrlCompat::No);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(source_where(rows[0].source, files), good + ":1");
}

}  // namespace
}  // namespace kto
