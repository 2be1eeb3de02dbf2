// `kto template` and conversational `kto score` as a user runs them: renders and ids equal what
// transformers' apply_chat_template gives (tests/fixtures/conv/template_<model>.json), the
// --tokens mask equals TRL v1.9's prompt/completion split, and bad input ends in one "kto:" line
// naming the problem (template errors with line:col).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

using nlohmann::json;

std::string model(const std::string& name) { return test::fixture("models/" + name); }
std::string conv(const std::string& name) { return test::fixture("conv/" + name); }
json expected(const std::string& name) { return json_read_file(conv("template_" + name + ".json")); }

test::CommandResult kto_template(const std::string& args) { return test::run_kto("template " + args); }

std::string write_file(const std::string& name, const std::string& text) {
  static const std::string dir = test::temp_dir("kto_template_cli");
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// The failed command printed one line, "kto: ...", containing every needle.
void expect_error(const test::CommandResult& r, std::initializer_list<std::string> needles) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.err;
  EXPECT_EQ(r.err.rfind("kto: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "missing '" << n << "' in: " << r.err;
}

struct TokenTable {
  std::vector<int32_t> ids, mask;
  std::vector<std::string> pieces;
};

// Parses --tokens output: a summary line, a header line, then "index id mask piece" rows.
TokenTable parse_tokens(const std::string& out) {
  TokenTable t;
  std::istringstream in(out);
  std::string line;
  std::getline(in, line);
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    int64_t index = 0;
    int32_t id = 0, mask = 0;
    fields >> index >> id >> mask;
    std::string piece;
    std::getline(fields >> std::ws, piece);
    t.ids.push_back(id);
    t.mask.push_back(mask);
    t.pieces.push_back(json::parse(piece).get<std::string>());
  }
  return t;
}

class TemplateCli : public testing::TestWithParam<std::string> {};

TEST_P(TemplateCli, RendersAsApplyChatTemplate) {
  const json want = expected(GetParam());
  auto r = kto_template("--model " + model(GetParam()) + " --messages " + conv("template_conv.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want["conv_text"].get<std::string>());
  r = kto_template("--model " + model(GetParam()) + " --messages " + conv("template_conv.json") + " --add-generation-prompt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want["conv_text_generation_prompt"].get<std::string>());
  r = kto_template("--model " + model(GetParam()) + " --messages " + conv("template_row.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want["row_text"].get<std::string>());
}

TEST_P(TemplateCli, TokensOfAConversation) {
  const json want = expected(GetParam());
  auto r = kto_template("--model " + model(GetParam()) + " --messages " + conv("template_conv.json") +
                        " --add-generation-prompt --tokens");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const TokenTable t = parse_tokens(r.out);
  EXPECT_EQ(t.ids, want["conv_ids_generation_prompt"].get<std::vector<int32_t>>());
  EXPECT_EQ(t.pieces, want["conv_pieces_generation_prompt"].get<std::vector<std::string>>());
  EXPECT_EQ(std::count(t.mask.begin(), t.mask.end(), 1), 0);
}

// The KTO row's split: the prompt rendered with the generation prompt (mask 0), then the ids of
// prompt + completion past it (mask 1), as TRL's tokenize_fn makes them.
TEST_P(TemplateCli, TokensOfAKtoRowCarryTheCompletionMask) {
  const json want = expected(GetParam());
  auto r = kto_template("--model " + model(GetParam()) + " --messages " + conv("template_row.json") + " --tokens");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto prompt = want["row_prompt_ids"].get<std::vector<int32_t>>();
  const auto completion = want["row_completion_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(r.out.rfind(str_cat("prompt: ", prompt.size(), " tokens, completion: ", completion.size(), " tokens"), 0), 0u) << r.out;
  const TokenTable t = parse_tokens(r.out);
  std::vector<int32_t> ids = prompt, mask(prompt.size(), 0);
  ids.insert(ids.end(), completion.begin(), completion.end());
  mask.resize(ids.size(), 1);
  EXPECT_EQ(t.ids, ids);
  EXPECT_EQ(t.mask, mask);
}

INSTANTIATE_TEST_SUITE_P(Models, TemplateCli, testing::Values("llama", "qwen2"));

TEST(TemplateCliMisc, TemplateFileOverridesTheModels) {
  const std::string tmpl = write_file("plain.jinja", "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
                                                     "{% if add_generation_prompt %}assistant:{% endif %}");
  auto r = kto_template("--model " + model("llama") + " --messages " + conv("template_conv.json") + " --template " + tmpl +
                        " --add-generation-prompt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "system: You are terse.\nuser: Name a colour.\nassistant: Blue.\nuser: Another?\nassistant:");
}

TEST(TemplateCliMisc, HelpAndErrors) {
  auto r = kto_template("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--add-generation-prompt"), std::string::npos) << r.out;

  // No template in the directory: say to pass --template.
  expect_error(kto_template("--model " + test::fixture("tokenizers/llama3_bpe") + " --messages " + conv("template_conv.json")),
               {"no chat template", "--template FILE.jinja"});
  // A syntax error names FILE:LINE:COL.
  const std::string bad = write_file("bad.jinja", "{{ bos_token }}\n{% if %}x{% endif %}");
  expect_error(kto_template("--model " + model("llama") + " --messages " + conv("template_conv.json") + " --template " + bad),
               {bad + ":2:"});
  // raise_exception in the model's template, with its line:col.
  const std::string tool = write_file("tool.json", R"([{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}])");
  expect_error(kto_template("--model " + model("mistral") + " --messages " + tool),
               {"chat_template.jinja:", "roles must be system, user or assistant"});
  const std::string no_role = write_file("no_role.json", R"([{"content": "x"}])");
  expect_error(kto_template("--model " + model("llama") + " --messages " + no_role), {no_role, "no string `role`"});
  expect_error(kto_template("--model " + model("llama") + " --messages " + write_file("num.json", "3")),
               {"expected a JSON list"});
  expect_error(kto_template("--model " + model("llama") + " --messages /nonexistent/conv.json"), {"/nonexistent/conv.json"});
}

// `kto score` on conversational rows: the token counts TRL's KTOTrainer gives the row
// (tests/fixtures/conv/trl_prompt_completion_llama.json, first row), and the same logp for the
// row as prompt/completion lists, {messages} and ShareGPT {conversations}.
TEST(ScoreCli, ConversationalRows) {
  const json trl = json_read_file(conv("trl_prompt_completion_llama.json"));
  const json& first = trl["train_dataset"][0];
  const std::string data = write_file("score.jsonl",
      R"({"prompt": [{"role": "user", "content": "What is the capital of France?"}], "completion": [{"role": "assistant", "content": "Paris."}]})" "\n"
      R"({"messages": [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}]})" "\n"
      R"({"conversations": [{"from": "human", "value": "What is the capital of France?"}, {"from": "gpt", "value": "Paris."}]})" "\n");
  auto r = test::run_kto("-q score --model " + model("llama") + " --data " + data);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 3u) << r.out;
  for (const json& line : lines) {
    EXPECT_EQ(line["prompt_tokens"].get<size_t>(), first["prompt_ids"].size());
    EXPECT_EQ(line["completion_tokens"].get<size_t>(), first["completion_ids"].size());
    EXPECT_NEAR(line["logp"].get<double>(), lines[0]["logp"].get<double>(), 1e-4);
  }
  const std::string bad = write_file("score_bad.jsonl", R"({"prompt": [{"role": "user", "content": "x"}], "completion": "text"})" "\n");
  expect_error(test::run_kto("score --model " + model("llama") + " --data " + bad), {bad + ":1", "`completion`"});
}

}  // namespace
}  // namespace kto
