// Loading and the encode/decode pipeline of kto::Tokenizer: huggingface/tokenizers
// TokenizerImpl::{encode, decode} (tokenizer/mod.rs) behind transformers 5's
// TokenizersBackend (tokenization_utils_tokenizers.py), which is what AutoTokenizer returns.
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {

struct Tokenizer::Impl {
  std::unique_ptr<const Normalizer> normalizer;
  std::unique_ptr<const PreTokenizer> pre_tokenizer;
  BpeModel model;
  PostProcessor post_processor;
  std::unique_ptr<const Decoder> decoder;
  AddedVocabulary added;
  std::string bos_token, eos_token, pad_token;
  bool clean_up_spaces = false;
};

namespace {

// tokenizer.json's "added_tokens", through AddedVocabulary::add_tokens like tokenizers'
// deserializer: the ids in the file are only checked, the vocabulary decides.
void load_added_tokens(const nlohmann::json& doc, Tokenizer::Impl& t, const std::string& where) {
  if (!doc.contains("added_tokens") || doc["added_tokens"].is_null()) return;
  for (const auto& j : json_array(doc, "added_tokens", where)) {
    AddedToken token;
    token.content = json_string(j, "content", where);
    token.single_word = json_bool_or(j, "single_word", false, where);
    token.lstrip = json_bool_or(j, "lstrip", false, where);
    token.rstrip = json_bool_or(j, "rstrip", false, where);
    token.normalized = json_bool_or(j, "normalized", true, where);
    token.special = json_bool_or(j, "special", false, where);
    if (token.content.empty()) continue;
    int32_t id = t.added.add(token, t.model, t.normalizer.get());
    if (j.contains("id") && j["id"].is_number_integer() && j["id"].get<int64_t>() != id) {
      log_warn(where, ": added token '", token.content, "' is listed with id ", j["id"].get<int64_t>(),
               " but gets id ", id);
    }
  }
}

BpeModel load_model(const nlohmann::json& doc, const std::string& where) {
  if (!doc.contains("model") || !doc["model"].is_object()) {
    fail(ErrorKind::Format, where, ": no \"model\" object; is this a Hugging Face tokenizer.json?");
  }
  const auto& model = doc["model"];
  // Files written before tokenizers 0.9 have no "type"; the BPE fields identify the model.
  std::string type = model.contains("type") ? json_string(model, "type", where) : (model.contains("merges") ? "BPE" : "");
  if (type != "BPE") {
    fail(ErrorKind::Unsupported, where, ": tokenizer model type '", type, "' is not supported (supported: BPE)");
  }
  return BpeModel::from_json(model, where);
}

nlohmann::json read_optional_json(const std::string& path) {
  if (path.empty() || !file_exists(path)) return nullptr;
  return json_read_file(path);
}

// transformers' clean_up_tokenization.
std::string clean_up_spaces(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    std::string out;
    std::string_view f(from);
    size_t last = 0, pos = 0;
    while ((pos = text.find(f, last)) != std::string::npos) {
      out.append(text, last, pos - last);
      out += to;
      last = pos + f.size();
    }
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }
  return text;
}

std::shared_ptr<Tokenizer::Impl> build(const std::string& tokenizer_json, const std::string& config_json,
                                       const std::string& special_map_json) {
  const std::string& where = tokenizer_json;
  nlohmann::json doc = json_read_file(tokenizer_json);
  if (!doc.is_object()) fail(ErrorKind::Format, where, ": expected a JSON object");
  auto t = std::make_shared<Tokenizer::Impl>();
  t->model = load_model(doc, where);
  t->normalizer = normalizer_from_json(doc.value("normalizer", nlohmann::json()), where);
  t->pre_tokenizer = pre_tokenizer_from_json(doc.value("pre_tokenizer", nlohmann::json()), where);
  t->post_processor = PostProcessor::from_json(doc.value("post_processor", nlohmann::json()), where);
  t->decoder = decoder_from_json(doc.value("decoder", nlohmann::json()), where);
  load_added_tokens(doc, *t, where);

  const std::string config_where = config_json.empty() ? where : config_json;
  TokenizerConfig config =
      tokenizer_config_parse(read_optional_json(config_json), read_optional_json(special_map_json), config_where);
  // TokenizersBackend.__init__: added_tokens_decoder entries (re-added when their options
  // differ), then named/extra special tokens the vocabulary does not have yet.
  for (const AddedToken& token : config.added_tokens_decoder) t->added.add(token, t->model, t->normalizer.get());
  for (const AddedToken& token : config.special_tokens) {
    if (!t->added.token_to_id(token.content)) t->added.add(token, t->model, t->normalizer.get());
  }
  t->added.set_special_literals(config.split_special_tokens ? SpecialLiterals::Split : SpecialLiterals::Match);
  t->bos_token = config.bos_token;
  t->eos_token = config.eos_token;
  t->pad_token = config.pad_token;
  t->clean_up_spaces = config.clean_up_spaces && config.clean_up_spaces_for_bpe;
  return t;
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& dir) {
  std::string json = path_join(dir, "tokenizer.json");
  if (!file_exists(json)) {
    fail(ErrorKind::NotFound, json, ": not found; kto needs a fast-tokenizer tokenizer.json (a sentencepiece "
         "tokenizer.model alone is not supported: convert it with transformers first)");
  }
  return Tokenizer(build(json, path_join(dir, "tokenizer_config.json"), path_join(dir, "special_tokens_map.json")));
}

Tokenizer Tokenizer::from_files(const std::string& tokenizer_json, const std::string& tokenizer_config_json) {
  return Tokenizer(build(tokenizer_json, tokenizer_config_json, ""));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, AddSpecial add) const {
  const Impl& t = *impl_;
  size_t bad = utf8::first_invalid(text);
  if (bad != text.size()) fail(ErrorKind::InvalidArgument, "tokenizer: text is not valid UTF-8 (at byte ", bad, ")");

  // AddedVocabulary::extract_and_normalize: raw-text tokens, normalizer, normalized tokens.
  std::vector<Piece> pieces;
  for (const AddedSegment& seg : t.added.find_matches(text, AddedStage::Raw)) {
    std::string part(text.substr(seg.span.begin, seg.span.end - seg.span.begin));
    if (part.empty()) continue;
    if (seg.id) {
      pieces.push_back({std::move(part), seg.id, false});
      continue;
    }
    if (t.normalizer) t.normalizer->normalize(part);
    for (const AddedSegment& sub : t.added.find_matches(part, AddedStage::Normalized)) {
      if (sub.span.end == sub.span.begin) continue;
      pieces.push_back({part.substr(sub.span.begin, sub.span.end - sub.span.begin), sub.id,
                        seg.span.begin == 0 && sub.span.begin == 0});
    }
  }
  if (t.pre_tokenizer) t.pre_tokenizer->pre_tokenize(pieces);

  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const Piece& piece : pieces) {
    if (piece.token) {
      ids.push_back(*piece.token);
    } else {
      t.model.tokenize(piece.text, ids);
    }
  }
  return add == AddSpecial::Yes ? t.post_processor.apply(std::move(ids)) : ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, SkipSpecial skip) const {
  const Impl& t = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0) fail(ErrorKind::InvalidArgument, "tokenizer: cannot decode negative token id ", id);
    const AddedToken* added = t.added.token(id);
    const std::string* s = added != nullptr ? &added->content : t.model.id_to_token(id);
    if (s == nullptr) continue;
    if (skip == SkipSpecial::Yes && t.added.is_special_content(*s)) continue;
    tokens.push_back(*s);
  }
  std::string text;
  if (t.decoder) {
    t.decoder->decode_chain(tokens);
    for (const std::string& s : tokens) text += s;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  return t.clean_up_spaces ? clean_up_spaces(std::move(text)) : text;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail(ErrorKind::InvalidArgument, "tokenizer: token id ", id, " is out of range [0, ", vocab_size(), ")");
  if (const AddedToken* added = impl_->added.token(id)) return added->content;
  const std::string* s = impl_->model.id_to_token(id);
  return s != nullptr ? *s : std::string();
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.token_to_id(token)) return id;
  return impl_->model.token_to_id(token);
}

int32_t Tokenizer::vocab_size() const {
  int32_t top = impl_->model.max_id();
  if (auto added = impl_->added.max_id()) top = std::max(top, *added);
  return top + 1;
}

std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos_token.empty() ? std::nullopt : token_to_id(impl_->bos_token);
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->eos_token.empty() ? std::nullopt : token_to_id(impl_->eos_token);
}
std::optional<int32_t> Tokenizer::pad_id() const {
  return impl_->pad_token.empty() ? std::nullopt : token_to_id(impl_->pad_token);
}
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* added = impl_->added.token(id);
  return added != nullptr && added->special;
}

}  // namespace kto
