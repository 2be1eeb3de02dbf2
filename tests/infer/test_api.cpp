// The public API (include/kto/kto.h) on the fixture llama with its PEFT adapter: generate() and
// chat() give what PEFT gives (tests/fixtures/adapter_generate/expected.json), streaming pieces
// add up to the result, a callback can stop the answer, and a model without a template says so.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "kto/kto.h"
#include "test_util.h"
#include "util/files.h"

namespace {

const nlohmann::json& expected() {
  static const nlohmann::json json = kto::json_read_file(kto::test::fixture("adapter_generate/expected.json"));
  return json;
}

const kto::LoadedModel& model() {
  static const kto::LoadedModel m =
      kto::load(kto::test::fixture(expected()["model"]), kto::test::fixture(expected()["adapter"]));
  return m;
}

kto::GenerateParams greedy() {
  kto::GenerateParams p;
  p.max_new_tokens = expected()["max_new_tokens"];
  p.temperature = 0.0;
  return p;
}

TEST(Api, GenerateWithAdapterStreamsPeftsText) {
  ASSERT_TRUE(model().has_adapter());
  for (const auto& row : expected()["greedy"]) {
    std::string streamed;
    const std::string text = kto::generate(model(), row["prompt"], greedy(), [&](std::string_view piece) {
      streamed += piece;
      return true;
    });
    EXPECT_EQ(text, row["text_skip_special"].get<std::string>());
    EXPECT_EQ(streamed, text);
  }
}

TEST(Api, ChatEqualsPeftOnTheTemplatePrompt) {
  ASSERT_TRUE(model().has_chat_template());
  const std::vector<kto::Message> messages = {{"user", expected()["chat"]["user"]}};
  EXPECT_EQ(kto::chat(model(), messages, greedy()), expected()["chat"]["text_skip_special"].get<std::string>());
  const auto& row = expected()["templates"]["llama"][1];
  std::vector<kto::Message> history;
  for (const auto& m : row["messages"]) history.push_back({m["role"], m["content"]});
  EXPECT_EQ(model().render_chat(history), row["text"].get<std::string>());
}

TEST(Api, CallbackReturningFalseStopsTheAnswer) {
  int calls = 0;
  kto::GenerateParams params = greedy();
  params.max_new_tokens = 40;
  const std::string text = kto::generate(model(), "The quick brown fox", params, [&](std::string_view) {
    ++calls;
    return false;
  });
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(text.empty());
  EXPECT_LT(text.size(), kto::generate(model(), "The quick brown fox", params).size());
}

TEST(Api, ModelWithoutTemplateGeneratesButCannotChat) {
  namespace fs = std::filesystem;
  const fs::path dir = kto::test::temp_dir("api-no-template");
  for (const auto& entry : fs::directory_iterator(kto::test::fixture("models/qwen3"))) {
    if (entry.path().filename() != "chat_template.jinja") fs::create_symlink(entry.path(), dir / entry.path().filename());
  }
  const kto::LoadedModel m = kto::load(dir.string());
  EXPECT_FALSE(m.has_chat_template());
  EXPECT_NO_THROW(kto::generate(m, "hello", greedy()));
  try {
    kto::chat(m, {{"user", "hi"}}, greedy());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("kto generate"), std::string::npos) << e.what();
  }
}

}  // namespace
