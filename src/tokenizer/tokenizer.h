// kto::Tokenizer: a Hugging Face tokenizer.json (BPE model; byte-level or sentencepiece-style)
// plus tokenizer_config.json, giving the ids AutoTokenizer (transformers 5, tokenizers 0.23)
// gives. Loading mirrors transformers' TokenizersBackend; encoding mirrors tokenizers'
// TokenizerImpl::encode (added tokens → normalizer → pre-tokenizer → BPE → post-processor).
// Immutable once loaded: encode/decode may run concurrently; copies share the loaded state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kto {

enum class AddSpecial { No, Yes };   // apply the post-processor template (BOS/EOS)
enum class SkipSpecial { No, Yes };  // decode: drop special added tokens

class Tokenizer {
 public:
  // DIR/tokenizer.json + DIR/tokenizer_config.json (optional) + DIR/special_tokens_map.json
  // (optional; fills special tokens the config does not name).
  static Tokenizer load(const std::string& dir);
  // tokenizer_config_json may be "" (no config: no bos/eos/pad names).
  static Tokenizer from_files(const std::string& tokenizer_json, const std::string& tokenizer_config_json);

  // `text` must be valid UTF-8 (InvalidArgument otherwise). Added-token literals in the text
  // become their ids, as with transformers' default split_special_tokens=false.
  std::vector<int32_t> encode(std::string_view text, AddSpecial add = AddSpecial::Yes) const;
  // Unknown ids are skipped, as tokenizers does; negative ids are InvalidArgument.
  std::string decode(std::span<const int32_t> ids, SkipSpecial skip = SkipSpecial::No) const;

  std::string id_to_token(int32_t id) const;  // raw vocab / added-token string; "" for an unused id
  std::optional<int32_t> token_to_id(std::string_view token) const;
  int32_t vocab_size() const;  // max id + 1 over the model vocab and the added tokens

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  const std::string& bos_token() const;  // "" if none
  const std::string& eos_token() const;
  bool is_special(int32_t id) const;  // an added token flagged special

  struct Impl;  // the loaded pipeline (tokenizer.cpp); public only so helpers there can fill it

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace kto
