// The tokenizer.* metadata of a GGUF model, as llama.cpp's convert_hf_to_gguf writes it from a
// Hugging Face directory (TextModel.get_vocab_base / _set_vocab_gpt2 for byte-level BPE,
// LlamaHfVocab for sentencepiece-style BPE, gguf-py SpecialVocab for special ids, add_* flags
// and the chat template). spec/formats.md §5.9.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "export/gguf_writer.h"
#include "model/config.h"

namespace kto {

// What the Modelfile writer needs besides the keys.
struct GgufTokenizerInfo {
  std::string model;          // "gpt2" | "llama"
  std::string pre;            // tokenizer.ggml.pre
  std::string chat_template;  // "" when the directory has none
  std::vector<std::string> tokens;  // id-indexed
  std::vector<int32_t> eos_ids;     // eos (+ eot) ids, for PARAMETER stop
};

// Adds the tokenizer keys for DIR/tokenizer.json (+ tokenizer_config.json, chat_template.jinja,
// config.json) to `writer`. `arch` is the GGUF architecture ("llama" reads add_prefix_space).
// Throws kto::Error: NotFound without tokenizer.json, Unsupported for a non-BPE model.
GgufTokenizerInfo gguf_add_tokenizer(GgufWriter& writer, const std::string& model_dir, const ModelConfig& config,
                                     const std::string& arch);

}  // namespace kto
