// tokenizer_config.json reading (transformers 5 tokenization_utils_base / _tokenizers).
#include "tokenizer/tokenizer_config.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"
#include "util/error.h"

namespace kto {
namespace {

// transformers' SPECIAL_TOKENS_ATTRIBUTES order.
constexpr const char* kNamedTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                        "pad_token", "cls_token", "mask_token"};

// A token given as "text" or as an AddedToken dict {"content": …, "lstrip": …, …}.
std::optional<AddedToken> parse_token(const nlohmann::json& v, const std::string& where, const std::string& key) {
  if (v.is_null()) return std::nullopt;
  AddedToken t;
  if (v.is_string()) {
    t.content = v.get<std::string>();
    t.special = true;  // AddedToken(token, special=True): normalized defaults to not special
    return t.content.empty() ? std::nullopt : std::optional<AddedToken>(t);
  }
  if (!v.is_object()) fail(ErrorKind::Format, where, ": '", key, "' must be a string, a token object or null");
  t.content = json_string(v, "content", where);
  t.single_word = json_bool_or(v, "single_word", false, where);
  t.lstrip = json_bool_or(v, "lstrip", false, where);
  t.rstrip = json_bool_or(v, "rstrip", false, where);
  t.special = json_bool_or(v, "special", false, where);
  t.normalized = json_bool_or(v, "normalized", !t.special, where);
  return t.content.empty() ? std::nullopt : std::optional<AddedToken>(t);
}

void add_extra(const nlohmann::json& v, const std::string& where, const char* key, std::vector<AddedToken>& out) {
  auto add_one = [&](const nlohmann::json& item) {
    if (auto t = parse_token(item, where, key)) {
      t->special = true;
      out.push_back(*t);
    }
  };
  if (v.is_array()) {
    for (const auto& item : v) add_one(item);
  } else if (v.is_object()) {  // transformers 5 extra_special_tokens may be {name: token}
    for (const auto& item : v) add_one(item);
  }
}

}  // namespace

TokenizerConfig tokenizer_config_parse(const nlohmann::json& config, const nlohmann::json& special_map,
                                       const std::string& where) {
  TokenizerConfig c;
  const nlohmann::json empty = nlohmann::json::object();
  const nlohmann::json& cfg = config.is_object() ? config : empty;
  const nlohmann::json& map = special_map.is_object() ? special_map : empty;
  for (const char* key : kNamedTokens) {
    const nlohmann::json* v = cfg.contains(key) ? &cfg[key] : (map.contains(key) ? &map[key] : nullptr);
    if (v == nullptr) continue;
    auto t = parse_token(*v, where, key);
    if (!t) continue;
    t->special = true;  // a named token is special whatever its dict says
    c.special_tokens.push_back(*t);
    std::string name(key);
    if (name == "bos_token") c.bos_token = t->content;
    if (name == "eos_token") c.eos_token = t->content;
    if (name == "pad_token") c.pad_token = t->content;
  }
  for (const char* key : {"extra_special_tokens", "additional_special_tokens"}) {
    if (cfg.contains(key)) {
      add_extra(cfg[key], where, key, c.special_tokens);
    } else if (map.contains(key)) {
      add_extra(map[key], where, key, c.special_tokens);
    }
  }
  if (cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object()) {
    std::vector<std::pair<long, AddedToken>> by_id;
    for (auto it = cfg["added_tokens_decoder"].begin(); it != cfg["added_tokens_decoder"].end(); ++it) {
      auto t = parse_token(it.value(), where, "added_tokens_decoder");
      if (t) by_id.emplace_back(std::strtol(it.key().c_str(), nullptr, 10), *t);
    }
    std::stable_sort(by_id.begin(), by_id.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [id, t] : by_id) c.added_tokens_decoder.push_back(std::move(t));
  }
  c.split_special_tokens = json_bool_or(cfg, "split_special_tokens", false, where);
  c.clean_up_spaces = json_bool_or(cfg, "clean_up_tokenization_spaces", false, where);
  c.clean_up_spaces_for_bpe =
      json_bool_or(cfg, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", false, where);
  return c;
}

}  // namespace kto
