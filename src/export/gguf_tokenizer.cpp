// tokenizer.* GGUF keys from a Hugging Face directory, following convert_hf_to_gguf
// (get_vocab_base, _set_vocab_gpt2, _set_vocab_llama_hf) and gguf-py's SpecialVocab. Two
// deliberate differences, both so that llama.cpp tokenises as transformers does: the
// sentencepiece-style vocabulary is padded with [PAD{i}] up to config.vocab_size (llama.cpp
// refuses a token list shorter than the embedding), and its scores are synthesised from the
// merge ranks (LlamaHfVocab writes -1000 for every token, which makes llama.cpp's SPM tokenizer
// merge in the wrong order); spec/formats.md §5.9 calls for that synthesis.
#include "export/gguf_tokenizer.h"

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>

#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {
namespace {

using nlohmann::json;

enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

const char* kL3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Every Split regex and whether a ByteLevel pre-tokenizer with use_regex is present.
void collect_pre(const json& pre, std::vector<std::string>& regexes, bool& byte_level_regex) {
  if (!pre.is_object()) return;
  const std::string type = pre.value("type", "");
  if (type == "Sequence") {
    for (const json& p : pre.value("pretokenizers", json::array())) collect_pre(p, regexes, byte_level_regex);
  } else if (type == "Split" && pre.contains("pattern") && pre["pattern"].contains("Regex")) {
    regexes.push_back(pre["pattern"]["Regex"].get<std::string>());
  } else if (type == "ByteLevel" && pre.value("use_regex", true)) {
    byte_level_regex = true;
  }
}

std::string pre_name(const json& tokenizer) {
  std::vector<std::string> regexes;
  bool byte_level_regex = false;
  collect_pre(tokenizer.value("pre_tokenizer", json()), regexes, byte_level_regex);
  if (regexes.size() == 1 && regexes[0] == kL3Regex) return "llama-bpe";
  if (regexes.size() == 1 && regexes[0] == kQwen2Regex) return "qwen2";
  if (regexes.empty() && byte_level_regex) return "gpt-2";
  return "";
}

// A special-token setting of tokenizer_config.json: a string, or an AddedToken dict's content.
std::string config_token(const json& tc, const std::string& key) {
  if (!tc.is_object() || !tc.contains(key)) return "";
  const json& v = tc[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

bool looks_special(const std::string& t) {
  auto ends = [&](const std::string& s) { return t.size() >= s.size() && t.compare(t.size() - s.size(), s.size(), s) == 0; };
  auto starts = [&](const std::string& s) { return t.rfind(s, 0) == 0; };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || (starts("<|") && ends("|>")) ||
         (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>")) || (starts("<unused") && ends(">"));
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

// gguf-py SpecialVocab: special ids and add_* flags from tokenizer.json's post_processor,
// tokenizer_config.json and config.json, in that precedence.
struct Specials {
  std::vector<std::pair<std::string, int32_t>> ids;  // type → id, first set wins
  std::vector<std::pair<std::string, bool>> add;     // type → add flag
  void set_id(const std::string& type, std::optional<int64_t> id, int64_t n_vocab) {
    if (!id || *id < 0 || (n_vocab > 0 && *id >= n_vocab)) return;
    for (auto& [t, v] : ids) {
      if (t == type) return;
    }
    ids.emplace_back(type, static_cast<int32_t>(*id));
  }
  std::optional<bool> get_add(const std::string& type) const {
    for (const auto& [t, v] : add) {
      if (t == type) return v;
    }
    return std::nullopt;
  }
  void set_add(const std::string& type, bool value, bool only_if_unset) {
    for (auto& [t, v] : add) {
      if (t == type) {
        if (!only_if_unset) v = value;
        return;
      }
    }
    add.emplace_back(type, value);
  }
};

std::string special_token_id(const json& item) {
  if (item.is_object() && item.contains("SpecialToken")) return item["SpecialToken"].value("id", "");
  return "";
}

// The crude TemplateProcessing reading of SpecialVocab._try_load_from_tokenizer_json.
void read_template_processing(const json& p, json& tc, Specials& s) {
  const json single = p.value("single", json::array()), pair = p.value("pair", json::array());
  std::string bos = config_token(tc, "bos_token"), cls = config_token(tc, "cls_token");
  std::string eos = config_token(tc, "eos_token"), sep = config_token(tc, "sep_token");
  std::string first, last;
  if (single.size() > 1) {
    if (!(first = special_token_id(single.front())).empty()) {
      if (first != bos && first != cls) {
        if (bos.empty()) tc["bos_token"] = bos = first;
        if (cls.empty()) tc["cls_token"] = cls = first;
      }
      s.set_add("bos", first == bos || first == cls, false);
    }
    if (!(last = special_token_id(single.back())).empty()) {
      if (last != eos) {
        log_warn("tokenizer.json's post_processor ends with ", last, ", not the eos token ", eos,
                 "; treating it as the eos token, as llama.cpp's converter does");
        tc["eos_token"] = eos = last;
      }
      s.set_add("eos", true, false);
    }
  }
  if (pair.empty()) return;
  size_t begin = (!first.empty() && special_token_id(pair.front()) == first) ? 1 : 0;
  size_t end = (!last.empty() && special_token_id(pair.back()) == last) ? pair.size() - 1 : pair.size();
  if (begin >= end) return;
  auto seq_id = [](const json& item) {
    return item.is_object() && item.contains("Sequence") ? item["Sequence"].value("id", "") : std::string();
  };
  if (seq_id(pair[begin]) != "A" || seq_id(pair[end - 1]) != "B" || end - begin <= 2) return;
  bool add_sep = false;
  const std::string entry = special_token_id(pair[begin + 1]);
  if (!entry.empty() && (entry == sep || entry == eos) && last.empty()) add_sep = true;
  if (end - begin - 2 == 2) {
    const std::string second = special_token_id(pair[begin + 2]);
    if (!second.empty() && (second == sep || second == eos)) add_sep = true;
  }
  s.set_add("sep", add_sep, false);
}

Specials read_specials(const json& tokenizer, json tc, const json& config, int64_t n_vocab) {
  Specials s;
  if (tc.is_object()) {
    if (config_token(tc, "bos_token").empty() && !config_token(tc, "cls_token").empty()) tc["bos_token"] = tc["cls_token"];
    if (config_token(tc, "eos_token").empty() && !config_token(tc, "sep_token").empty()) tc["eos_token"] = tc["sep_token"];
  }
  const json pp = tokenizer.value("post_processor", json());
  if (pp.is_object()) {
    const json list = pp.contains("processors") ? pp["processors"] : json::array({pp});
    for (const json& p : list) {
      const std::string type = p.value("type", "");
      if (type == "ByteLevel") {
        s.set_add("bos", false, true);
        s.set_add("eos", false, true);
      } else if (type == "RobertaProcessing") {
        s.set_add("bos", true, false);
        s.set_add("eos", true, false);
        s.set_add("sep", true, false);
      } else if (type == "TemplateProcessing" && tc.is_object()) {
        read_template_processing(p, tc, s);
      }
    }
  }
  if (!tc.is_object()) return s;
  const std::vector<std::string> types{"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  for (const std::string& type : types) {
    if (tc.contains("add_" + type + "_token") && tc["add_" + type + "_token"].is_boolean()) {
      s.set_add(type, tc["add_" + type + "_token"].get<bool>(), true);
    }
    const std::string content = config_token(tc, type + "_token");
    if (content.empty()) continue;
    for (const json& added : tokenizer.value("added_tokens", json::array())) {
      if (added.value("content", "") == content) {
        s.set_id(type, added.value("id", int64_t{-1}), n_vocab);
        break;
      }
    }
  }
  for (const std::string& type : types) {
    const std::string key = type + "_token_id";
    if (config.contains(key) && config[key].is_number_integer()) s.set_id(type, config[key].get<int64_t>(), n_vocab);
  }
  return s;
}

std::vector<std::string> merges_as_strings(const json& merges) {
  std::vector<std::string> out;
  for (const json& m : merges) {
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2) {
      // Spaces inside a part are written as U+0120 so that "a b" stays splittable.
      out.push_back(replace_all(m[0].get<std::string>(), " ", "\xc4\xa0") + " " +
                    replace_all(m[1].get<std::string>(), " ", "\xc4\xa0"));
    } else {
      fail(ErrorKind::Format, "tokenizer.json: a merge is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return out;
}

std::string read_chat_template(const std::string& dir, const json& tc) {
  if (!tc.is_object()) return "";
  if (tc.contains("chat_template")) {
    const json& t = tc["chat_template"];
    if (t.is_string()) return t.get<std::string>();
    if (t.is_array()) {  // named templates: the default one
      for (const json& item : t) {
        if (item.value("name", "") == "default") return item.value("template", "");
      }
    }
    return "";
  }
  const std::string jinja = path_join(dir, "chat_template.jinja");
  if (file_exists(jinja)) return file_read_text(jinja);
  const std::string json_file = path_join(dir, "chat_template.json");
  if (file_exists(json_file)) {
    const json j = json_read_file(json_file);
    if (j.contains("chat_template") && j["chat_template"].is_string()) return j["chat_template"].get<std::string>();
  }
  return "";
}

// The id-indexed token list, types and scores (get_vocab_base for byte-level BPE, LlamaHfVocab
// for sentencepiece-style BPE), padded with [PAD{i}] up to vocab_size.
struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;
};

Vocab build_vocab(const json& tokenizer, const json& model, int64_t n_vocab, bool spm, const std::string& where) {
  std::map<int64_t, std::string> by_id;
  const json vocab = model.value("vocab", json::object());
  for (const auto& [content, id] : vocab.items()) by_id[id.get<int64_t>()] = content;
  std::map<std::string, json> added;  // content → added token
  for (const json& a : tokenizer.value("added_tokens", json::array())) {
    added[a.value("content", "")] = a;
    by_id[a.value("id", int64_t{0})] = a.value("content", "");
  }
  if (!by_id.empty() && by_id.rbegin()->first >= n_vocab) {
    fail(ErrorKind::Format, where, ": token id ", by_id.rbegin()->first, " is outside config.json's vocab_size ", n_vocab);
  }
  std::map<std::string, int64_t> merge_rank;  // merged token → rank of the merge making it
  if (spm) {
    const std::vector<std::string> merges = merges_as_strings(model.value("merges", json::array()));
    for (size_t r = 0; r < merges.size(); ++r) merge_rank.emplace(replace_all(merges[r], " ", ""), static_cast<int64_t>(r));
  }
  const std::regex byte_token("<0x[0-9A-Fa-f]{2}>");
  Vocab v;
  for (int64_t i = 0; i < n_vocab; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      v.tokens.push_back(str_cat("[PAD", i, "]"));
      v.types.push_back(kUnused);
      v.scores.push_back(-1000.0f);
      continue;
    }
    std::string token = it->second;
    int32_t type = kNormal;
    if (auto a = added.find(token); a != added.end()) {
      if (a->second.value("special", false) || (!spm && looks_special(token))) {
        type = kControl;
      } else {
        type = kUserDefined;
        if (!spm) token = replace_all(token, "\xe2\x96\x81", " ");
      }
    } else if (spm && std::regex_match(token, byte_token)) {
      type = kByte;
    }
    float score = -1000.0f;
    if (auto m = merge_rank.find(token); type == kNormal && m != merge_rank.end()) score = -static_cast<float>(m->second);
    v.tokens.push_back(token);
    v.types.push_back(type);
    v.scores.push_back(score);
  }
  return v;
}

}  // namespace

GgufTokenizerInfo gguf_add_tokenizer(GgufWriter& writer, const std::string& model_dir, const ModelConfig& config,
                                     const std::string& arch) {
  const std::string tok_path = path_join(model_dir, "tokenizer.json");
  if (!file_exists(tok_path)) {
    fail(ErrorKind::NotFound, tok_path, ": not found; a GGUF model needs the tokenizer (copy tokenizer.json and "
         "tokenizer_config.json of the base model into ", model_dir, ")");
  }
  const json tokenizer = json_read_file(tok_path);
  const std::string tc_path = path_join(model_dir, "tokenizer_config.json");
  const json tc = file_exists(tc_path) ? json_read_file(tc_path) : json();
  const std::string cfg_path = path_join(model_dir, "config.json");
  const json cfg = file_exists(cfg_path) ? json_read_file(cfg_path) : json::object();
  const json model = tokenizer.value("model", json());
  if (!model.is_object() || model.value("type", "") != "BPE") {
    fail(ErrorKind::Unsupported, tok_path, ": tokenizer model type ", model.is_object() ? model.value("type", "?") : "?",
         " is not supported for GGUF export (kto exports BPE tokenizers: byte-level or sentencepiece-style)");
  }
  const json decoder = tokenizer.value("decoder", json());
  const bool spm = arch == "llama" && model.value("byte_fallback", false) && decoder.is_object() &&
                   decoder.value("type", "") == "Sequence";

  GgufTokenizerInfo info;
  info.model = spm ? "llama" : "gpt2";
  Vocab vocab = build_vocab(tokenizer, model, config.vocab_size, spm, tok_path);
  info.tokens = vocab.tokens;
  if (spm) {
    info.pre = "default";
  } else {
    info.pre = pre_name(tokenizer);
    if (info.pre.empty()) {
      log_warn(tok_path, ": pre-tokenizer not recognised (not Llama-3, Qwen2 or GPT-2 style); writing "
               "tokenizer.ggml.pre = \"default\", llama.cpp may split text differently from transformers");
      info.pre = "default";
    }
  }
  if (arch == "llama" && tc.is_object() && tc.contains("add_prefix_space") && tc["add_prefix_space"].is_boolean()) {
    writer.add_bool("tokenizer.ggml.add_space_prefix", tc["add_prefix_space"].get<bool>());
  }
  writer.add_string("tokenizer.ggml.model", info.model);
  writer.add_string("tokenizer.ggml.pre", info.pre);
  writer.add_strings("tokenizer.ggml.tokens", info.tokens);
  if (spm) writer.add_f32s("tokenizer.ggml.scores", vocab.scores);
  writer.add_i32s("tokenizer.ggml.token_type", vocab.types);
  if (!spm) writer.add_strings("tokenizer.ggml.merges", merges_as_strings(model.value("merges", json::array())));

  const Specials specials = read_specials(tokenizer, tc, cfg, spm ? config.vocab_size : 0);
  const std::map<std::string, std::string> id_keys{{"bos", "bos_token_id"},     {"eos", "eos_token_id"},
                                                   {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
                                                   {"pad", "padding_token_id"}, {"mask", "mask_token_id"}};
  for (const auto& [type, id] : specials.ids) {
    auto k = id_keys.find(type);
    if (k == id_keys.end()) continue;  // cls: gguf-py has no key for it
    writer.add_u32("tokenizer.ggml." + k->second, static_cast<uint32_t>(id));
    if (type == "eos") info.eos_ids.push_back(id);
  }
  for (const auto& [type, value] : specials.add) writer.add_bool("tokenizer.ggml.add_" + type + "_token", value);
  info.chat_template = read_chat_template(model_dir, tc);
  if (!info.chat_template.empty()) writer.add_string("tokenizer.chat_template", info.chat_template);
  return info;
}

}  // namespace kto
