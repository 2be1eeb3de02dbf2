// A tokenizer.json `pattern` ({"String": …} or {"Regex": …}) and its matches, as the
// huggingface/tokenizers `Pattern` trait yields them (tokenizer/pattern.rs, utils/onig.rs).
// Regexes go through PCRE2 (UTF + UCP, JIT when available), compiled once. Thread-safe:
// matching allocates its own match data.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kto {

struct Span {
  size_t begin = 0;
  size_t end = 0;  // exclusive byte offsets
};

// A span of the text and whether the pattern matched it; the spans tile the text.
struct MatchSpan {
  Span span;
  bool is_match = false;
};

class Pattern {
 public:
  // A literal string (an empty one never matches).
  static Pattern literal(std::string text);
  // A PCRE2 regex; `where` names the file for the Format error a bad regex raises.
  static Pattern regex(const std::string& source, const std::string& where);
  // {"String": "…"} or {"Regex": "…"}.
  static Pattern from_json(const nlohmann::json& j, const std::string& where);

  // Non-overlapping leftmost matches over valid UTF-8 text. Like Oniguruma's find_iter,
  // an empty match is not accepted right where the previous match ended.
  std::vector<Span> find_all(std::string_view text) const;
  // find_all as a tiling of the text (tokenizers' Pattern::find_matches): empty text gives
  // one empty non-match span.
  std::vector<MatchSpan> find_matches(std::string_view text) const;

 private:
  struct Compiled;
  std::string literal_;
  std::shared_ptr<const Compiled> regex_;  // null for a literal
};

}  // namespace kto
