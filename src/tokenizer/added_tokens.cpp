// Added-token bookkeeping and matching (huggingface/tokenizers tokenizer/added_vocabulary.rs).
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/bpe.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace kto {
namespace {

// Last / first code point of a non-empty valid UTF-8 string.
char32_t last_char(std::string_view s) {
  size_t pos = s.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) --pos;
  size_t len = 0;
  return utf8::decode(s, pos, &len);
}

char32_t first_char(std::string_view s) {
  size_t len = 0;
  return utf8::decode(s, 0, &len);
}

// Start of the white-space run that ends `s` (regex \s*$).
size_t white_space_run_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t pos = end - 1;
    while (pos > 0 && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) --pos;
    size_t len = 0;
    if (!unicode_is_white_space(utf8::decode(s, pos, &len))) break;
    end = pos;
  }
  return end;
}

// Length of the white-space run that starts `s` (regex ^\s*).
size_t white_space_run_length(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len = 0;
    if (!unicode_is_white_space(utf8::decode(s, pos, &len))) break;
    pos += len;
  }
  return pos;
}

}  // namespace

int32_t AddedVocabulary::add(const AddedToken& token, const BpeModel& model, const Normalizer* normalizer) {
  KTO_ASSERT(!token.content.empty(), "empty added token");
  auto known = by_content_.find(token.content);
  if (known != by_content_.end()) {
    auto it = by_id_.find(known->second);
    if (it != by_id_.end() && it->second == token) return known->second;
  }
  std::optional<int32_t> id = token_to_id(token.content);
  if (!id) id = model.token_to_id(token.content);
  if (!id) {
    auto model_size = static_cast<int32_t>(model.vocab_count());
    auto top = max_id();
    id = (top && (*top >= model_size || model_size == 0)) ? *top + 1 : model_size;
  }
  normalized_pattern_.erase(*id);
  if (token.normalized && normalizer != nullptr) {
    std::string normed = token.content;
    normalizer->normalize(normed);
    if (normed != token.content) normalized_pattern_[*id] = normed;
  }
  by_content_[token.content] = *id;
  if (token.special) special_.insert(token.content);
  by_id_[*id] = token;
  rebuild_patterns();
  return *id;
}

void AddedVocabulary::rebuild_patterns() {
  raw_by_byte_.assign(256, {});
  normalized_by_byte_.assign(256, {});
  for (const auto& [id, token] : by_id_) {
    auto np = normalized_pattern_.find(id);
    const std::string& pattern = (token.normalized && np != normalized_pattern_.end()) ? np->second : token.content;
    if (pattern.empty()) continue;
    auto& table = token.normalized ? normalized_by_byte_ : raw_by_byte_;
    table[static_cast<uint8_t>(pattern[0])].push_back({pattern, id});
  }
  for (auto* table : {&raw_by_byte_, &normalized_by_byte_}) {
    for (auto& bucket : *table) {
      std::stable_sort(bucket.begin(), bucket.end(),
                       [](const Candidate& a, const Candidate& b) { return a.pattern.size() > b.pattern.size(); });
    }
  }
}

std::vector<AddedSegment> AddedVocabulary::find_matches(std::string_view text, AddedStage stage) const {
  std::vector<AddedSegment> out;
  const auto& table = stage == AddedStage::Raw ? raw_by_byte_ : normalized_by_byte_;
  size_t start_offset = 0;
  size_t pos = 0;
  while (!table.empty() && pos < text.size()) {
    const Candidate* found = nullptr;
    for (const Candidate& c : table[static_cast<uint8_t>(text[pos])]) {
      if (text.compare(pos, c.pattern.size(), c.pattern) == 0) {
        found = &c;
        break;
      }
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + found->pattern.size();
    pos = stop;  // the matcher goes on after this match whether or not it is kept
    const AddedToken& token = by_id_.at(found->id);
    if (special_literals_ == SpecialLiterals::Split && special_.count(token.content) != 0) continue;
    if (token.single_word) {
      bool word_before = start > 0 && unicode_is_word_char(last_char(text.substr(0, start)));
      bool word_after = stop < text.size() && unicode_is_word_char(first_char(text.substr(stop)));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) start = std::max(white_space_run_start(text.substr(0, start)), start_offset);
    if (token.rstrip) stop += white_space_run_length(text.substr(stop));
    if (start_offset < start) out.push_back({{start_offset, start}, std::nullopt});
    out.push_back({{start, stop}, found->id});
    start_offset = stop;
  }
  if (start_offset != text.size()) out.push_back({{start_offset, text.size()}, std::nullopt});
  return out;
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const AddedToken* AddedVocabulary::token(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

std::optional<int32_t> AddedVocabulary::max_id() const {
  if (by_id_.empty()) return std::nullopt;
  return by_id_.rbegin()->first;
}

}  // namespace kto
