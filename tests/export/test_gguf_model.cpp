// GGUF model export against llama.cpp's own tools (fixtures by tools/reference/make_gguf_fixtures.py):
// for every fixture architecture, the f16 / bf16 / q8_0 file must carry every key that
// convert_hf_to_gguf.py writes, with the same type and value bytes, and every tensor with the same
// name, ggml type, dims and bytes; q4_k_m / q5_k_m / q6_k tensors must equal what
// llama_model_quantize makes of convert_hf_to_gguf's f32 file. The file must obey ggml's layout
// rules. Documented deviation (mistral, a sentencepiece-style tokenizer.json without
// tokenizer.model): the token list is padded to vocab_size and the scores come from the merges —
// convert_hf_to_gguf's file has 1000 tokens for a 1024-row embedding and llama.cpp refuses it.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "export/gguf_export.h"
#include "export/modelfile.h"
#include "export/test_gguf_reader.h"
#include "model/model.h"
#include "test_util.h"
#include "util/files.h"

namespace kto {
namespace {

using nlohmann::json;

struct ModelCase {
  std::string arch, outtype;
};
void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.arch << " " << c.outtype; }

std::string export_model(const ModelCase& c, const std::string& dir) {
  const std::string model_dir = test::fixture("models/" + c.arch);
  const Model model = Model::load(model_dir);
  GgufExportOptions options;
  options.outtype = *gguf_outtype_parse(c.outtype);
  options.output = dir + "/" + c.arch + "-" + c.outtype + ".gguf";
  gguf_export_model(model.config(), model.weights(), model_dir, options);
  return options.output;
}

void expect_tensors_equal(const test::GgufFileRaw& ours, const json& ref, const std::string& what) {
  std::set<std::string> seen;
  for (const auto& [name, t] : ref.items()) {
    seen.insert(name);
    auto it = ours.tensors.find(name);
    if (it == ours.tensors.end()) {
      ADD_FAILURE() << what << ": tensor " << name << " missing";
      continue;
    }
    EXPECT_EQ(it->second.type, t["type"].get<int>()) << what << ": ggml type of " << name;
    EXPECT_EQ(it->second.ne, t["ne"].get<std::vector<int64_t>>()) << what << ": dims of " << name;
    EXPECT_EQ(test::fnv1a64(it->second.data), t["fnv"].get<std::string>()) << what << ": bytes of " << name;
  }
  for (const auto& [name, t] : ours.tensors) EXPECT_TRUE(seen.count(name)) << what << ": extra tensor " << name;
}

class GgufModelTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(GgufModelTest, EqualsLlamaCppConversion) {
  const ModelCase& c = GetParam();
  const std::string what = c.arch + " " + c.outtype;
  const std::string path = export_model(c, test::temp_dir("gguf-" + c.arch));
  const test::GgufFileRaw ours = test::gguf_read_raw(path);
  EXPECT_EQ(ours.layout_error, "") << what;
  const json ref = json_read_file(test::fixture("gguf/" + c.arch + "_" + c.outtype + ".json"));
  expect_tensors_equal(ours, ref["tensors"], what);
  if (!ref.contains("kv")) return;  // llama_model_quantize outputs: tensors only

  const std::set<std::string> padded_vocab_keys{"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
  for (const auto& [key, e] : ref["kv"].items()) {
    auto it = ours.kv.find(key);
    if (it == ours.kv.end()) {
      ADD_FAILURE() << what << ": key " << key << " missing";
      continue;
    }
    EXPECT_EQ(it->second.type, e["type"].get<int>()) << what << ": type of " << key;
    if (c.arch == "mistral" && padded_vocab_keys.count(key)) {
      EXPECT_EQ(ours.array_count(key), 1024u) << what << ": " << key << " padded to vocab_size";
      continue;
    }
    EXPECT_EQ(test::fnv1a64(it->second.raw), e["fnv"].get<std::string>())
        << what << ": value of " << key << (e.contains("value") ? " (llama.cpp: " + e["value"].dump() + ")" : "");
  }
  for (const auto& [key, kv] : ours.kv) {
    EXPECT_TRUE(ref["kv"].contains(key) || key == "general.name") << what << ": extra key " << key;
  }
  EXPECT_EQ(ours.string_value("general.name"), c.arch);
}

std::vector<ModelCase> cases() {
  std::vector<ModelCase> out;
  for (const char* arch : {"llama", "mistral", "qwen2", "qwen3"}) {
    for (const char* t : {"f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k"}) out.push_back({arch, t});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufModelTest, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return p.param.arch + "_" + p.param.outtype; });

// The Modelfile beside each export: FROM the file, the family's TEMPLATE and its end tokens.
TEST(Modelfile, WrittenBesideTheGguf) {
  const std::vector<std::tuple<std::string, std::string, std::vector<std::string>>> expected{
      {"llama", "<|start_header_id|>{{ .Role }}<|end_header_id|>", {"<|end_of_text|>", "<|eot_id|>"}},
      {"mistral", "[INST] ", {"</s>", "[INST]", "[/INST]"}},
      {"qwen2", "<|im_start|>{{ .Role }}\n", {"<|im_end|>", "<|im_start|>"}}};
  for (const auto& [arch, fragment, stops] : expected) {
    const std::string dir = test::temp_dir("modelfile-" + arch);
    export_model({arch, "q8_0"}, dir);
    const std::string text = test::read_binary(dir + "/Modelfile");
    EXPECT_NE(text.find("FROM ./" + arch + "-q8_0.gguf\n"), std::string::npos) << text;
    EXPECT_NE(text.find("TEMPLATE \"\"\""), std::string::npos) << text;
    EXPECT_NE(text.find(fragment), std::string::npos) << arch << ": " << text;
    for (const std::string& stop : stops) {
      EXPECT_NE(text.find("PARAMETER stop \"" + stop + "\"\n"), std::string::npos) << arch << " stop " << stop;
    }
  }
}

TEST(Modelfile, SaysWhenItCannotDeriveATemplate) {
  const std::string odd = "{% for m in messages %}<<{{ m.role }}>> {{ m.content }}{% endfor %}";
  EXPECT_EQ(modelfile_template(odd, "</s>"), std::nullopt);
  const std::string text = modelfile_text("m.gguf", odd, {"</s>"});
  EXPECT_EQ(text.find("\nTEMPLATE "), std::string::npos) << text;  // mentioned in comments only
  EXPECT_NE(text.find("could not derive"), std::string::npos);
  EXPECT_NE(text.find("PARAMETER stop \"</s>\""), std::string::npos);
}

// llama.cpp's per-tensor type choice (llama_tensor_get_type) on the shapes of a real model.
TEST(GgufTypes, QuantMixesFollowLlamaQuantize) {
  using R = GgufTensorRole;
  // 32 layers, 4096 columns: attn_v / ffn_down get Q6_K on use_more_bits layers.
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::AttnV, 0, 32, 4096, false), GgmlType::Q6_K);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::AttnV, 4, 32, 4096, false), GgmlType::Q4_K);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::AttnV, 6, 32, 4096, false), GgmlType::Q6_K);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::FfnDown, 31, 32, 14336, false), GgmlType::Q6_K);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::AttnQ, 0, 32, 4096, false), GgmlType::Q4_K);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q5_K_M, R::FfnUp, 3, 32, 4096, false), GgmlType::Q5_K);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::Output, 32, 32, 4096, false), GgmlType::Q6_K);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::TokenEmbd, 0, 32, 4096, false), GgmlType::Q4_K);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::TokenEmbd, 0, 32, 4096, true), GgmlType::Q6_K);
  // Qwen2.5-0.5B's 896 columns: Q4_K → Q5_0, Q6_K → Q8_0, output → Q8_0.
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::AttnQ, 5, 24, 896, true), GgmlType::Q5_0);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::AttnV, 0, 24, 896, true), GgmlType::Q8_0);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q5_K_M, R::AttnQ, 5, 24, 896, true), GgmlType::Q5_1);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::TokenEmbd, 0, 24, 896, true), GgmlType::Q8_0);
  // Columns not even a multiple of 32: F16.
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q4_K_M, R::AttnQ, 0, 2, 48, false), GgmlType::F16);
  EXPECT_EQ(gguf_weight_type(GgufOutType::Q8_0, R::AttnQ, 0, 2, 48, false), GgmlType::F16);
}

TEST(GgufTypes, OutTypeNames) {
  EXPECT_EQ(gguf_outtype_parse("Q4_K_M"), GgufOutType::Q4_K_M);
  EXPECT_EQ(gguf_outtype_parse("bf16"), GgufOutType::BF16);
  EXPECT_EQ(gguf_outtype_parse("q4_0"), std::nullopt);
  EXPECT_EQ(gguf_file_type(GgufOutType::Q4_K_M), 15u);
  EXPECT_EQ(gguf_file_type(GgufOutType::BF16), 32u);
}

}  // namespace
}  // namespace kto
