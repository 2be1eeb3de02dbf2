// kto merge against PEFT + transformers (fixtures by tools/reference/make_gguf_fixtures.py):
// the merged tensors must be bit-identical to PEFT's merge_and_unload (f32) and to torch's
// .to(bfloat16) of them (bf16), their logits equal the merged model's transformers logits, and
// the sharded layout must be byte-identical to what save_pretrained(max_shard_size="150KB")
// wrote for the llama fixture (a zero adapter leaves the weights unchanged).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "export/merge.h"
#include "export/test_gguf_reader.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "test_util.h"
#include "util/files.h"

namespace kto {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// adapter_dir "" = a fresh adapter (PEFT's init: B = 0, so merging changes nothing).
std::string merge_fixture(const std::string& arch, const std::string& adapter_dir, MergeDtype dtype,
                          uint64_t max_shard = 5'000'000'000) {
  const std::string model_dir = test::fixture("models/" + arch);
  Model model = Model::load(model_dir);
  const LoraAdapter adapter = adapter_dir.empty() ? lora_init(model.config(), LoraConfig{}, 1)
                                                  : lora_load_peft(adapter_dir, model.config());
  merge_lora_into(model.mutable_weights(), adapter);
  MergeOptions o;
  o.output_dir = test::temp_dir("merge-" + arch) + "/merged";
  o.dtype = dtype;
  o.max_shard_bytes = max_shard;
  o.base_model = arch;
  o.adapter = adapter_dir;
  merge_save_checkpoint(model.config(), model.weights(), model_dir, o);
  return o.output_dir;
}

class MergeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MergeTest, TensorsEqualPeftMergeAndUnload) {
  const std::string arch = GetParam();
  const json expected = json_read_file(test::fixture("merge/" + arch + "/expected.json"));
  for (const char* dtype : {"f32", "bf16"}) {
    const std::string dir = merge_fixture(arch, test::fixture("merge/" + arch + "/adapter"), *merge_dtype_parse(dtype));
    const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);
    EXPECT_EQ(ckpt.names().size(), expected["merged_fnv"].size()) << dtype;
    for (const auto& [name, h] : expected["merged_fnv"].items()) {
      const SafetensorsTensor* t = ckpt.find(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_EQ(t->dtype, std::string(dtype) == "f32" ? "F32" : "BF16");
      EXPECT_EQ(test::fnv1a64({reinterpret_cast<const char*>(t->data), t->nbytes}), h[dtype].get<std::string>())
          << dtype << " " << name;
    }
    const json cfg = json_read_file(dir + "/config.json");
    EXPECT_EQ(cfg.value("dtype", cfg.value("torch_dtype", "")), std::string(dtype) == "f32" ? "float32" : "bfloat16");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json", "README.md"}) {
      EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
    }
  }
}

TEST_P(MergeTest, LogitsEqualTransformersOnPeftMerge) {
  const std::string arch = GetParam();
  const json expected = json_read_file(test::fixture("merge/" + arch + "/expected.json"));
  const Model merged = Model::load(merge_fixture(arch, test::fixture("merge/" + arch + "/adapter"), MergeDtype::F32));
  std::vector<std::vector<int32_t>> seqs = expected["sequences"].get<std::vector<std::vector<int32_t>>>();
  const HostTensor logits = merged.forward_logits(PackedBatch::from_sequences(seqs));
  const std::string ref = test::read_binary(test::fixture("merge/" + arch + "/logits.bin"));
  ASSERT_EQ(ref.size(), static_cast<size_t>(logits.numel()) * 4);
  const float* hf = reinterpret_cast<const float*>(ref.data());
  double worst = 0;
  for (int64_t i = 0; i < logits.numel(); ++i) {
    worst = std::max(worst, std::abs(double{logits.f32()[i]} - hf[i]) / std::max(1.0, std::abs(double{hf[i]})));
  }
  EXPECT_LE(worst, 1e-4) << arch << ": max relative logit difference to transformers";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MergeTest, ::testing::Values("llama", "mistral", "qwen2", "qwen3"));

TEST(Merge, ShardsLikeSavePretrained) {
  // The llama fixture was saved by transformers with max_shard_size="150KB"; a fresh adapter has
  // B = 0, so the merged weights are the original ones and the files must be identical.
  const std::string dir = merge_fixture("llama", "", MergeDtype::F32, 150'000);
  const std::string ref = test::fixture("models/llama");
  EXPECT_EQ(test::read_binary(dir + "/model.safetensors.index.json"),
            test::read_binary(ref + "/model.safetensors.index.json"));
  for (int i = 1; i <= 4; ++i) {
    const std::string f = "/model-0000" + std::to_string(i) + "-of-00004.safetensors";
    ASSERT_TRUE(fs::exists(dir + f)) << f;
    EXPECT_TRUE(test::read_binary(dir + f) == test::read_binary(ref + f)) << f << " differs from save_pretrained's";
  }
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
}

TEST(Merge, ParseSizeAsHuggingfaceHub) {
  EXPECT_EQ(merge_parse_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(merge_parse_size("150KB"), 150'000u);
  EXPECT_EQ(merge_parse_size("1.5MB"), 1'500'000u);
  EXPECT_THROW(merge_parse_size("5GiB"), Error);
  EXPECT_THROW(merge_parse_size("lots"), Error);
}

}  // namespace
}  // namespace kto
