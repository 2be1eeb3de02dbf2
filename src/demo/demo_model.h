// The demo's model directory, made from nothing: a byte-level tokenizer.json (the 256 byte
// tokens of GPT-2's ByteLevel alphabet, no merges, plus <|eos|> and <|pad|>), a chat template
// that turns a user's last "12+34" into the prompt "12+34=", and a tiny Llama (transformers'
// LlamaForCausalLM layout) with weights drawn as LlamaPreTrainedModel._init_weights does
// (normal(0, 0.02) for projections and embeddings, ones for RMSNorms). The directory loads in
// kto (Model::load, Tokenizer::load) and in transformers (AutoModelForCausalLM, AutoTokenizer).
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/weights.h"

namespace kto {

struct TinyLlamaShape {
  int64_t hidden_size = 128;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t intermediate_size = 256;
  int64_t max_positions = 64;
};

constexpr int32_t kDemoVocab = 258;  // 256 bytes + <|eos|> (256) + <|pad|> (257)
constexpr int32_t kDemoEos = 256;

// Writes tokenizer.json, tokenizer_config.json and chat_template.jinja into `dir`.
void demo_write_tokenizer(const std::string& dir);
ModelConfig demo_model_config(const TinyLlamaShape& shape);
// Random weights for `config` from `seed` (Box–Muller over mt19937_64: the same on every platform).
Weights demo_init_weights(const ModelConfig& config, uint64_t seed);
// config.json, generation_config.json and model.safetensors into `dir` (created).
void demo_save_model(const ModelConfig& config, const Weights& weights, const std::string& dir);

}  // namespace kto
