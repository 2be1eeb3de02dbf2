// What kto reads from tokenizer_config.json (and special_tokens_map.json): the named special
// tokens, extra special tokens, added_tokens_decoder and decode options, following
// transformers 5 TokenizersBackend.__init__ / PreTrainedTokenizerBase._from_pretrained.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/added_tokens.h"

namespace kto {

struct TokenizerConfig {
  // Named special tokens (bos, eos, unk, pad, …) in transformers' order, then extra ones.
  std::vector<AddedToken> special_tokens;
  std::string bos_token, eos_token, pad_token;  // "" when absent or null
  std::vector<AddedToken> added_tokens_decoder;  // by increasing id
  bool split_special_tokens = false;
  bool clean_up_spaces = false;  // clean_up_tokenization_spaces, which transformers 5 ignores for BPE…
  bool clean_up_spaces_for_bpe = false;  // …unless this flag forces it
};

// `config` may be null (no file); `special_map` (special_tokens_map.json) fills named tokens
// the config does not set. Neither add_bos_token nor add_eos_token is read: transformers 5
// drops them whenever tokenizer.json exists, and uses tokenizer.json's post_processor.
TokenizerConfig tokenizer_config_parse(const nlohmann::json& config, const nlohmann::json& special_map,
                                       const std::string& where);

}  // namespace kto
