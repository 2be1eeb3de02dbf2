// generate() on the fixture models: greedy tokens and text equal transformers' generate
// (tests/fixtures/models/*/expected_text.json, tools/reference/make_models.py), and the streamed
// pieces add up to that text, including sentencepiece byte-fallback runs that the decoder
// rewrites as U+FFFD once they turn out invalid (the mistral fixture has one).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "infer/inference_model.h"
#include "test_util.h"
#include "util/files.h"

namespace kto {
namespace {

TEST(Generate, GreedyAndStreamedTextEqualTransformers) {
  for (const char* name : {"llama", "mistral", "qwen2", "qwen3"}) {
    const std::string dir = test::fixture(std::string("models/") + name);
    const InferenceModel model = InferenceModel::load(dir);
    const nlohmann::json rows = json_read_file(dir + "/expected_text.json")["greedy"];
    ASSERT_FALSE(rows.empty()) << name;
    for (const auto& row : rows) {
      GenerateOptions options = model.generate_options(static_cast<int64_t>(row["new_ids"].size()));
      options.sampling = SamplingOptions{};
      std::string streamed;
      const GenerateResult r = generate(model.model, model.tokenizer, row["prompt_ids"].get<std::vector<int32_t>>(),
                                        options, [&](std::string_view piece) { streamed += piece; });
      EXPECT_EQ(nlohmann::json(r.tokens), row["new_ids"]) << name << ": " << row["prompt"];
      EXPECT_EQ(r.text, row["text_skip_special"].get<std::string>()) << name;
      EXPECT_EQ(streamed, r.text) << name;
    }
  }
}

}  // namespace
}  // namespace kto
