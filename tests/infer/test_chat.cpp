// Chat sessions and adapter generation against outside truth: prompts rendered as transformers'
// apply_chat_template renders them (text and ids), greedy continuations with the unmerged
// PEFT adapter as PeftModel.generate gives them (tests/fixtures/adapter_generate/expected.json,
// tools/reference/make_adapter_generate.py), plus the session's history rules.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "infer/chat.h"
#include "test_util.h"
#include "util/files.h"

namespace kto {
namespace {

const nlohmann::json& expected() {
  static const nlohmann::json json = json_read_file(test::fixture("adapter_generate/expected.json"));
  return json;
}

std::vector<ChatMessage> to_messages(const nlohmann::json& rows) {
  std::vector<ChatMessage> out;
  for (const auto& m : rows) out.push_back({m["role"], m["content"]});
  return out;
}

const InferenceModel& llama_with_adapter() {
  static const InferenceModel model =
      InferenceModel::load(test::fixture(expected()["model"]), test::fixture(expected()["adapter"]));
  return model;
}

GenerateOptions greedy(const InferenceModel& model, int64_t max_new_tokens) {
  GenerateOptions options = model.generate_options(max_new_tokens);
  options.sampling = SamplingOptions{};
  return options;
}

TEST(Chat, RenderedPromptEqualsApplyChatTemplate) {
  for (const auto& [name, rows] : expected()["templates"].items()) {
    const std::string dir = test::fixture("models/" + name);
    const Tokenizer tokenizer = Tokenizer::load(dir);
    const ChatTemplate chat_template = chat_template_for_model(dir);
    for (const auto& row : rows) {
      const std::string text = chat_render(chat_template, tokenizer, to_messages(row["messages"]));
      EXPECT_EQ(text, row["text"].get<std::string>()) << name;
      EXPECT_EQ(nlohmann::json(tokenizer.encode(text, AddSpecial::No)), row["ids"]) << name;
    }
  }
}

TEST(Chat, EndOfTurnTokenComesFromTheTemplate) {
  const std::pair<const char*, int32_t> cases[] = {{"llama", 1005}, {"mistral", 2}, {"qwen2", 1002}, {"qwen3", 1002}};
  for (const auto& [name, id] : cases) {
    const std::string dir = test::fixture(std::string("models/") + name);
    EXPECT_EQ(chat_end_of_turn_id(chat_template_for_model(dir), Tokenizer::load(dir)), id) << name;
  }
}

TEST(Chat, AdapterGreedyEqualsPeftGenerate) {
  const InferenceModel& model = llama_with_adapter();
  ASSERT_NE(model.lora(), nullptr);
  ASSERT_TRUE(expected()["base_differs"].get<bool>());  // else the comparison proves nothing
  for (const auto& row : expected()["greedy"]) {
    const std::vector<int32_t> prompt = model.tokenizer.encode(row["prompt"].get<std::string>());
    EXPECT_EQ(nlohmann::json(prompt), row["prompt_ids"]);
    const GenerateResult r = generate(model.model, model.tokenizer, prompt, greedy(model, expected()["max_new_tokens"]));
    EXPECT_EQ(nlohmann::json(r.tokens), row["new_ids"]) << row["prompt"];
    EXPECT_EQ(r.text, row["text_skip_special"].get<std::string>());
  }
}

TEST(Chat, FirstTurnWithAdapterEqualsPeftOnTheTemplatePrompt) {
  const InferenceModel& model = llama_with_adapter();
  const auto& want = expected()["chat"];
  ChatSession session(model);
  EXPECT_EQ(session.end_of_turn_id(), 1005);
  const GenerateResult r = session.send(want["user"], greedy(model, expected()["max_new_tokens"]));
  EXPECT_EQ(nlohmann::json(model.tokenizer.encode(session.last_prompt(), AddSpecial::No)), want["prompt_ids"]);
  EXPECT_EQ(nlohmann::json(r.tokens), want["new_ids"]);
  ASSERT_EQ(session.turns().size(), 2u);
  EXPECT_EQ(session.turns()[1].content, want["text_skip_special"].get<std::string>());
}

TEST(Chat, HistoryGrowsAndResetAndSystemApply) {
  const InferenceModel model = InferenceModel::load(test::fixture("models/qwen2"));
  ChatSession session(model);
  const GenerateOptions options = greedy(model, 3);
  session.send("first question", options);
  session.send("second question", options);
  const std::string reply2 = session.turns()[3].content;
  session.send("third question", options);
  ASSERT_EQ(session.turns().size(), 6u);
  const std::string& prompt3 = session.last_prompt();
  EXPECT_EQ(prompt3, chat_render(session.chat_template(), model.tokenizer,
                                 {{"user", "first question"}, session.turns()[1], {"user", "second question"},
                                  {"assistant", reply2}, {"user", "third question"}}));
  EXPECT_LT(prompt3.find("first question"), prompt3.find("second question"));

  session.reset();
  EXPECT_TRUE(session.turns().empty());
  session.set_system("Answer in French.");
  session.send("fourth question", options);
  EXPECT_EQ(session.last_prompt(), "<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nfourth "
                                   "question<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(session.messages().front().role, "system");
}

TEST(Chat, CancelStopsTheAnswerAndKeepsThePartialReply) {
  const InferenceModel model = InferenceModel::load(test::fixture("models/llama"));
  ChatSession session(model);
  std::atomic<bool> cancel{false};
  GenerateOptions options = greedy(model, 50);
  options.stop_ids.clear();
  options.cancel = &cancel;
  const GenerateResult r = session.send("hello", options, [&](std::string_view) { cancel.store(true); });
  EXPECT_EQ(r.stop, StopReason::Cancelled);
  EXPECT_LT(r.tokens.size(), 50u);
  EXPECT_EQ(session.turns().back().content, r.text);
}

TEST(Chat, ConversationLongerThanTheContextIsAClearError) {
  const InferenceModel model = InferenceModel::load(test::fixture("models/qwen3"));
  ChatSession session(model);
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += " word";
  try {
    session.send(long_text, greedy(model, 2));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/reset"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(session.turns().empty());
}

}  // namespace
}  // namespace kto
