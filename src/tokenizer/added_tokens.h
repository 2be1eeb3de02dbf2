// Added tokens, as huggingface/tokenizers AddedVocabulary keeps and matches them
// (tokenizer/added_vocabulary.rs): non-normalized tokens are found in the raw text first, then
// normalized ones in each normalized piece; leftmost-longest matches, then the single_word,
// lstrip and rstrip rules. Ids follow AddedVocabulary::add_tokens.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pattern.h"

namespace kto {

class BpeModel;
class Normalizer;

struct AddedToken {
  std::string content;
  bool single_word = false;  // only matched with no word character (\w) on either side
  bool lstrip = false;       // swallows the white space on its left
  bool rstrip = false;       // swallows the white space on its right
  bool normalized = false;   // matched in the normalized text instead of the raw text
  bool special = false;      // skipped by decode(…, SkipSpecial::Yes)
  bool operator==(const AddedToken&) const = default;
};

// Which text a match runs on: the raw input, or a normalized piece of it.
enum class AddedStage { Raw, Normalized };

// split_special_tokens=true in tokenizer_config.json: special-token literals in text are
// encoded as ordinary text.
enum class SpecialLiterals { Match, Split };

// A span of the text, with the added token's id when it is one.
struct AddedSegment {
  Span span;
  std::optional<int32_t> id;
};

class AddedVocabulary {
 public:
  // AddedVocabulary::add_tokens for one token: reuses the id the content already has (added
  // or model vocab), else takes the next free id; a known content with other options replaces
  // them. Returns the id.
  int32_t add(const AddedToken& token, const BpeModel& model, const Normalizer* normalizer);
  void set_special_literals(SpecialLiterals mode) { special_literals_ = mode; }

  std::vector<AddedSegment> find_matches(std::string_view text, AddedStage stage) const;

  std::optional<int32_t> token_to_id(std::string_view content) const;
  const AddedToken* token(int32_t id) const;  // null when the id is not an added token
  bool is_special_content(std::string_view content) const { return special_.count(std::string(content)) != 0; }
  std::optional<int32_t> max_id() const;
  bool empty() const { return by_id_.empty(); }

 private:
  struct Candidate {
    std::string pattern;
    int32_t id;
  };
  void rebuild_patterns();

  std::unordered_map<std::string, int32_t> by_content_;
  std::map<int32_t, AddedToken> by_id_;
  std::map<int32_t, std::string> normalized_pattern_;  // normalized content when it differs
  std::set<std::string> special_;
  SpecialLiterals special_literals_ = SpecialLiterals::Match;
  // Per stage, candidates by first byte, longest first (leftmost-longest matching).
  std::vector<std::vector<Candidate>> raw_by_byte_, normalized_by_byte_;
};

}  // namespace kto
