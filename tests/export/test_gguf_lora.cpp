// GGUF LoRA adapter export against llama.cpp's convert_lora_to_gguf.py (--outtype f32) on the
// fixture adapters (tests/fixtures/merge/<arch>/adapter, random A and B; qwen3's is rsLoRA):
// same keys and values, same tensors (names, dims, bytes — llama's lora_b rows permuted like
// q/k). The one intended difference: for rsLoRA we write alpha·√r, since llama.cpp scales by
// alpha / r and convert_lora_to_gguf ignores use_rslora.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "export/gguf_export.h"
#include "export/test_gguf_reader.h"
#include "test_util.h"
#include "util/files.h"

namespace kto {
namespace {

using nlohmann::json;

class GgufLoraTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufLoraTest, EqualsConvertLoraToGguf) {
  const std::string arch = GetParam();
  const ModelConfig config = model_config_load(test::fixture("models/" + arch));
  const LoraAdapter adapter = lora_load_peft(test::fixture("merge/" + arch + "/adapter"), config);
  const std::string path = test::temp_dir("gguf-lora") + "/adapter.gguf";
  gguf_export_lora(config, adapter, path, GgufOutType::F32, "adapter");
  const test::GgufFileRaw ours = test::gguf_read_raw(path);
  EXPECT_EQ(ours.layout_error, "");
  const json ref = json_read_file(test::fixture("gguf/lora_" + arch + ".json"));
  for (const auto& [key, e] : ref["kv"].items()) {
    ASSERT_TRUE(ours.kv.count(key)) << key;
    EXPECT_EQ(ours.kv.at(key).type, e["type"].get<int>()) << key;
    if (key == "adapter.lora.alpha" && adapter.config.use_rslora) {
      const double expected = e["value"].get<double>() * std::sqrt(static_cast<double>(adapter.config.rank));
      EXPECT_FLOAT_EQ(ours.f32_value(key), static_cast<float>(expected)) << "rsLoRA alpha·√r";
      continue;
    }
    EXPECT_EQ(test::fnv1a64(ours.kv.at(key).raw), e["fnv"].get<std::string>()) << key;
  }
  for (const auto& [key, kv] : ours.kv) EXPECT_TRUE(ref["kv"].contains(key) || key == "general.name") << key;
  EXPECT_EQ(ours.tensors.size(), ref["tensors"].size());
  for (const auto& [name, t] : ref["tensors"].items()) {
    ASSERT_TRUE(ours.tensors.count(name)) << name;
    const test::GgufTensorRaw& o = ours.tensors.at(name);
    EXPECT_EQ(o.type, t["type"].get<int>()) << name;
    EXPECT_EQ(o.ne, t["ne"].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(test::fnv1a64(o.data), t["fnv"].get<std::string>()) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufLoraTest, ::testing::Values("llama", "mistral", "qwen2", "qwen3"));

TEST(GgufLora, KQuantOuttypeIsRefused) {
  const ModelConfig config = model_config_load(test::fixture("models/qwen3"));
  const LoraAdapter adapter = lora_load_peft(test::fixture("merge/qwen3/adapter"), config);
  const std::string path = test::temp_dir("gguf-lora-q4") + "/a.gguf";
  EXPECT_THROW(gguf_export_lora(config, adapter, path, GgufOutType::Q4_K_M, "a"), Error);
}

}  // namespace
}  // namespace kto
