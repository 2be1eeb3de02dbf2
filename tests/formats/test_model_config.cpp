// ModelConfig against transformers: each fixture config.json was written (or, for hub-style
// legacy files, loaded) by the real config classes, and expected.json holds what the model that
// transformers builds from it has: head_dim, kv heads, biases, tied head, windows, parameter count
// and rotary_emb.inv_freq (tools/reference/make_safetensors.py).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

TEST(ModelConfig, MatchesTransformersOnEveryFixture) {
  const nlohmann::json all = json_read_file(test::fixture("configs/expected.json"));
  int checked = 0;
  for (const auto& [name, want] : all.items()) {
    if (name == "versions") continue;
    SCOPED_TRACE(name);
    const ModelConfig c = model_config_load(test::fixture("configs/" + name));
    EXPECT_EQ(c.model_type, want["model_type"].get<std::string>());
    EXPECT_EQ(c.head_dim, want["head_dim"].get<int64_t>());
    EXPECT_EQ(c.n_heads_kv, want["n_heads_kv"].get<int64_t>());
    EXPECT_EQ(c.qkv_bias, want["qkv_bias"].get<bool>());
    EXPECT_EQ(c.o_bias, want["o_bias"].get<bool>());
    EXPECT_EQ(c.mlp_bias, want["mlp_bias"].get<bool>());
    EXPECT_EQ(c.qk_norm, want["qk_norm"].get<bool>());
    EXPECT_EQ(c.tie_word_embeddings, want["tie_word_embeddings"].get<bool>());
    EXPECT_EQ(c.layer_window, want["layer_window"].get<std::vector<int64_t>>());
    EXPECT_EQ(c.eos_token_ids, want["eos_token_ids"].get<std::vector<int64_t>>());
    if (want["bos_token_id"].is_null()) {
      EXPECT_FALSE(c.bos_token_id.has_value());
    } else {
      EXPECT_EQ(c.bos_token_id, want["bos_token_id"].get<int64_t>());
    }
    EXPECT_EQ(c.max_position_embeddings, want["max_position_embeddings"].get<int64_t>());
    EXPECT_EQ(c.rms_norm_eps, want["rms_norm_eps"].get<double>());
    EXPECT_EQ(c.n_params(), want["n_params"].get<int64_t>());
    const std::vector<double> inv = rope_inv_freq(c);
    const auto& ref = want["inv_freq"];
    ASSERT_EQ(inv.size(), ref.size());
    for (size_t k = 0; k < inv.size(); ++k) {
      const double r = ref[k].get<double>();
      EXPECT_NEAR(inv[k], r, 2e-6 * r) << "inv_freq[" << k << "]";  // transformers keeps f32
    }
    ++checked;
  }
  EXPECT_GE(checked, 11);
}

TEST(ModelConfig, ReadsRopeInBothForms) {
  const ModelConfig legacy = model_config_load(test::fixture("configs/llama32_legacy"));
  EXPECT_EQ(legacy.rope.type, RopeType::Llama3);
  EXPECT_EQ(legacy.rope.theta, 500000.0);
  EXPECT_EQ(legacy.rope.factor, 32.0);
  EXPECT_EQ(legacy.rope.original_max_position, 8192);
  EXPECT_EQ(legacy.torch_dtype, "bfloat16");
  EXPECT_EQ(legacy.architecture, "LlamaForCausalLM");
  const ModelConfig v5 = model_config_load(test::fixture("configs/llama31_v5"));
  EXPECT_EQ(v5.rope.type, RopeType::Llama3);
  EXPECT_EQ(v5.rope.factor, 8.0);
  EXPECT_EQ(v5.rope.theta, 500000.0);
  const ModelConfig linear = model_config_load(test::fixture("configs/llama_linear_legacy"));  // "type" key
  EXPECT_EQ(linear.rope.type, RopeType::Linear);
  EXPECT_EQ(linear.rope.factor, 4.0);
  const ModelConfig linear5 = model_config_load(test::fixture("configs/llama_linear_v5"));
  EXPECT_EQ(linear5.rope.type, RopeType::Linear);
  EXPECT_EQ(linear5.rope.theta, 20000.0);
}

TEST(ModelConfig, GenerationConfig) {
  const GenerationConfig g = generation_config_load(test::fixture("configs/llama32_legacy"));
  EXPECT_EQ(g.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(g.bos_token_id, 128000);
  EXPECT_TRUE(g.do_sample);
  EXPECT_EQ(g.temperature, 0.6);
  EXPECT_EQ(g.top_p, 0.9);
  EXPECT_FALSE(g.top_k.has_value());
  const GenerationConfig none = generation_config_load(test::fixture("configs/qwen3"));
  EXPECT_TRUE(none.eos_token_ids.empty());
  EXPECT_FALSE(none.do_sample);
}

// --- errors -------------------------------------------------------------------------------------

nlohmann::json base_config() {
  return nlohmann::json::parse(R"({"model_type": "llama", "vocab_size": 32, "hidden_size": 16,
    "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2})");
}

// Returns the error of parsing `json` (checks it names the source file).
Error config_error(const nlohmann::json& json) {
  const std::string source = "/models/x/config.json";
  try {
    model_config_from_json(json, source);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(source + ": ", 0), 0u) << e.what();
    return e;
  }
  ADD_FAILURE() << "no error for " << json.dump();
  return Error(ErrorKind::Io, "");
}

#define EXPECT_CONFIG_ERROR(json, want_kind, needle)                                   \
  do {                                                                                 \
    Error e_ = config_error(json);                                                     \
    EXPECT_EQ(e_.kind(), want_kind) << e_.what();                                      \
    EXPECT_NE(std::string(e_.what()).find(needle), std::string::npos) << e_.what();    \
  } while (0)

TEST(ModelConfigErrors, BaseConfigParses) {
  const ModelConfig c = model_config_from_json(base_config(), "x");
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(c.rope.type, RopeType::Default);
}

TEST(ModelConfigErrors, UnsupportedModelType) {
  auto j = base_config();
  j["model_type"] = "gemma2";
  EXPECT_CONFIG_ERROR(j, ErrorKind::Unsupported, "\"gemma2\" is not supported (supported: llama, mistral, qwen2, qwen3)");
  j.erase("model_type");
  EXPECT_CONFIG_ERROR(j, ErrorKind::Format, "model_type");
}

TEST(ModelConfigErrors, MissingOrIllTypedRequiredField) {
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}) {
    SCOPED_TRACE(key);
    auto j = base_config();
    j.erase(key);
    EXPECT_CONFIG_ERROR(j, ErrorKind::Format, std::string("\"") + key + "\" is missing");
    j[key] = "16";
    EXPECT_CONFIG_ERROR(j, ErrorKind::Format, std::string("\"") + key + "\" must be an integer");
  }
}

TEST(ModelConfigErrors, UnsupportedRopeTypes) {
  for (const char* type : {"yarn", "dynamic", "longrope"}) {
    auto j = base_config();
    j["rope_scaling"] = {{"rope_type", type}, {"factor", 4.0}};
    EXPECT_CONFIG_ERROR(j, ErrorKind::Unsupported, std::string("RoPE type \"") + type + "\"");
    auto k = base_config();
    k["rope_parameters"] = {{"rope_type", type}, {"factor", 4.0}, {"rope_theta", 1e4}};
    EXPECT_CONFIG_ERROR(k, ErrorKind::Unsupported, type);
  }
  auto j = base_config();
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 8.0}};
  EXPECT_CONFIG_ERROR(j, ErrorKind::Format, "rope_scaling.low_freq_factor");
}

TEST(ModelConfigErrors, InconsistentShapes) {
  auto j = base_config();
  j["num_key_value_heads"] = 3;
  EXPECT_CONFIG_ERROR(j, ErrorKind::Format, "not a multiple of num_key_value_heads");
  j = base_config();
  j["hidden_size"] = 18;
  EXPECT_CONFIG_ERROR(j, ErrorKind::Format, "no head_dim");
  j["head_dim"] = 6;  // an explicit head_dim wins over hidden/heads
  EXPECT_EQ(model_config_from_json(j, "x").head_dim, 6);
  j = base_config();
  j["num_hidden_layers"] = 0;
  EXPECT_CONFIG_ERROR(j, ErrorKind::Format, "num_hidden_layers");
  j = base_config();
  j["eos_token_id"] = {1, "2"};
  EXPECT_CONFIG_ERROR(j, ErrorKind::Format, "eos_token_id");
}

TEST(ModelConfigErrors, MistralWindowDefaultsAndNull) {
  auto j = base_config();
  j["model_type"] = "mistral";
  EXPECT_EQ(model_config_from_json(j, "x").layer_window, (std::vector<int64_t>{4096, 4096}));
  j["sliding_window"] = nullptr;
  EXPECT_EQ(model_config_from_json(j, "x").layer_window, (std::vector<int64_t>{0, 0}));
}

TEST(ModelConfigErrors, Qwen2WindowsWithoutLayerTypes) {
  auto j = base_config();
  j["model_type"] = "qwen2";
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 1;
  j["sliding_window"] = 64;
  EXPECT_EQ(model_config_from_json(j, "x").layer_window, (std::vector<int64_t>{0, 64}));
  j["sliding_window"] = nullptr;
  EXPECT_EQ(model_config_from_json(j, "x").layer_window, (std::vector<int64_t>{0, 0}));
  j["use_sliding_window"] = false;
  j["sliding_window"] = 64;
  EXPECT_EQ(model_config_from_json(j, "x").layer_window, (std::vector<int64_t>{0, 0}));
}

TEST(ModelConfigErrors, FilesOnDisk) {
  const std::string dir = test::temp_dir("cfg");
  try {
    model_config_load(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
  }
  file_write_atomic(path_join(dir, "config.json"), "{\n  \"model_type\": \"llama\",\n  oops\n}");
  try {
    model_config_load(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Format);
    EXPECT_NE(std::string(e.what()).find("config.json:3:"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kto
