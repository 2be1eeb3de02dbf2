// The demo's tokenizer files and tiny Llama (see demo_model.h). The tokenizer.json follows the
// HF `tokenizers` serialisation of a BPE model with a ByteLevel pre-tokenizer and decoder, as
// `tokenizers.Tokenizer.save` writes it for GPT-2-style byte-level vocabularies.
#include "demo/demo_model.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>

#include "util/files.h"

namespace kto {
namespace {

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards.
std::string byte_token(int byte) {
  const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
  int code = byte;
  if (!printable) {
    int n = 0;
    for (int b = 0; b < byte; ++b) {
      const bool p = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      n += p ? 0 : 1;
    }
    code = 256 + n;
  }
  std::string out;  // UTF-8 of `code` (< 0x800)
  if (code < 0x80) out += static_cast<char>(code);
  else out += static_cast<char>(0xC0 | (code >> 6)), out += static_cast<char>(0x80 | (code & 0x3F));
  return out;
}

nlohmann::json added_token(int id, const char* content) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

// Only the last question (and its answer) is rendered: the model was trained on single sums, so
// a chat about several of them must not show it the earlier ones.
constexpr const char* kChatTemplate =
    "{%- set ns = namespace(last_user=0) %}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}"
    "{%- endfor %}"
    "{%- for message in messages[ns.last_user:] %}"
    "{%- if message['role'] == 'user' %}{{ message['content'] | trim }}="
    "{%- elif message['role'] == 'assistant' %}{{ message['content'] | trim }}{{ eos_token }}"
    "{%- endif %}"
    "{%- endfor %}";

}  // namespace

void demo_write_tokenizer(const std::string& dir) {
  std::filesystem::create_directories(dir);
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  const nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  nlohmann::json tok = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
      {"added_tokens", {added_token(kDemoEos, "<|eos|>"), added_token(kDemoEos + 1, "<|pad|>")}},
      {"normalizer", nullptr}, {"pre_tokenizer", byte_level}, {"post_processor", nullptr}, {"decoder", byte_level},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                 {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  file_write_atomic(path_join(dir, "tokenizer.json"), tok.dump(1) + "\n");
  const nlohmann::json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"eos_token", "<|eos|>"},
                                 {"pad_token", "<|pad|>"}, {"bos_token", nullptr}, {"model_max_length", 64},
                                 {"clean_up_tokenization_spaces", false}};
  file_write_atomic(path_join(dir, "tokenizer_config.json"), config.dump(2) + "\n");
  file_write_atomic(path_join(dir, "chat_template.jinja"), std::string(kChatTemplate) + "\n");
}

ModelConfig demo_model_config(const TinyLlamaShape& shape) {
  ModelConfig c;
  c.model_type = "llama";
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = kDemoVocab;
  c.hidden_size = shape.hidden_size;
  c.intermediate_size = shape.intermediate_size;
  c.n_layers = shape.n_layers;
  c.n_heads = c.n_heads_kv = shape.n_heads;
  c.head_dim = shape.hidden_size / shape.n_heads;
  c.max_position_embeddings = shape.max_positions;
  c.rms_norm_eps = 1e-5;
  c.eos_token_ids = {kDemoEos};
  c.pad_token_id = kDemoEos + 1;
  c.layer_window.assign(static_cast<size_t>(shape.n_layers), 0);
  return c;
}

Weights demo_init_weights(const ModelConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed * 0xD1B54A32D192ED03ull + 7);
  auto uniform = [&rng] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
  auto normal = [&](Shape shape) {
    HostTensor t(DType::F32, shape);
    for (int64_t i = 0; i < t.numel(); ++i) {  // Box–Muller, one draw per pair of uniforms
      t.f32()[i] = static_cast<float>(0.02 * std::sqrt(-2.0 * std::log(uniform())) * std::cos(2.0 * std::numbers::pi * uniform()));
    }
    return t;
  };
  auto ones = [](int64_t n) {
    HostTensor t(DType::F32, Shape{n});
    std::fill_n(t.f32(), n, 1.0f);
    return t;
  };
  const int64_t d = c.hidden_size, f = c.intermediate_size;
  Weights w;
  w.embed = normal({c.vocab_size, d});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights layer;
    layer.input_norm = ones(d), layer.post_attention_norm = ones(d);
    layer.q_proj = normal({c.q_dim(), d}), layer.k_proj = normal({c.kv_dim(), d}), layer.v_proj = normal({c.kv_dim(), d});
    layer.o_proj = normal({d, c.q_dim()});
    layer.gate_proj = normal({f, d}), layer.up_proj = normal({f, d}), layer.down_proj = normal({d, f});
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = ones(d);
  w.lm_head = normal({c.vocab_size, d});
  return w;
}

void demo_save_model(const ModelConfig& config, const Weights& weights, const std::string& dir) {
  std::filesystem::create_directories(dir);
  file_write_atomic(path_join(dir, "config.json"), model_config_to_json(config).dump(2) + "\n");
  const nlohmann::json generation = {{"eos_token_id", kDemoEos}, {"pad_token_id", kDemoEos + 1}, {"do_sample", false}};
  file_write_atomic(path_join(dir, "generation_config.json"), generation.dump(2) + "\n");
  weights_save_safetensors(weights, path_join(dir, "model.safetensors"));
}

}  // namespace kto
