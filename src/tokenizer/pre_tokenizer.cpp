// Pre-tokenizers of huggingface/tokenizers on plain strings (no offsets kept).
#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "util/error.h"

namespace kto {
namespace {

// GPT-2's split regex, used by ByteLevel when use_regex is set (byte_level.rs RE).
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

const char* kReplacementDefault = "\xE2\x96\x81";  // U+2581 '▁'

// Applies `split` to every text piece, keeping order; drops empty results.
template <typename SplitFn>
void for_each_text_piece(std::vector<Piece>& pieces, SplitFn split) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& piece : pieces) {
    if (piece.token) {
      out.push_back(std::move(piece));
      continue;
    }
    for (Piece& sub : split(std::move(piece))) {
      if (!sub.text.empty()) out.push_back(std::move(sub));
    }
  }
  pieces = std::move(out);
}

std::vector<Piece> slice_piece(const Piece& piece, const std::vector<Span>& spans) {
  std::vector<Piece> out;
  out.reserve(spans.size());
  for (const Span& s : spans) {
    out.push_back({piece.text.substr(s.begin, s.end - s.begin), std::nullopt, piece.at_origin && s.begin == 0});
  }
  return out;
}

enum class Invert { No, Yes };

std::vector<Piece> split_piece(const Piece& piece, const Pattern& pattern, SplitBehavior behavior, Invert invert) {
  std::vector<MatchSpan> matches = pattern.find_matches(piece.text);
  if (invert == Invert::Yes) {
    for (MatchSpan& m : matches) m.is_match = !m.is_match;
  }
  return slice_piece(piece, split_behavior_apply(matches, behavior));
}

SplitBehavior parse_behavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail(ErrorKind::Format, where, ": unknown Split behavior '", name, "'");
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, Invert invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_text_piece(pieces, [&](Piece p) { return split_piece(p, pattern_, behavior_, invert_); });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  Invert invert_;
};

enum class PrefixSpace { No, Yes };
enum class UseRegex { No, Yes };

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(PrefixSpace prefix, UseRegex use_regex, const std::string& where)
      : prefix_(prefix), use_regex_(use_regex), gpt2_(Pattern::regex(kGpt2Regex, where)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_text_piece(pieces, [&](Piece p) {
      if (prefix_ == PrefixSpace::Yes && !p.text.empty() && p.text[0] != ' ') p.text = " " + p.text;
      std::vector<Piece> parts;
      if (use_regex_ == UseRegex::Yes) {
        parts = split_piece(p, gpt2_, SplitBehavior::Isolated, Invert::No);
      } else {
        parts.push_back(std::move(p));
      }
      for (Piece& part : parts) part.text = byte_level_encode(part.text);
      return parts;
    });
  }

 private:
  PrefixSpace prefix_;
  UseRegex use_regex_;
  Pattern gpt2_;
};

enum class PrependScheme { First, Always, Never };
enum class MetaspaceSplit { No, Yes };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, MetaspaceSplit split)
      : replacement_(replacement), scheme_(scheme), split_(split), separator_(Pattern::literal(std::move(replacement))) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_text_piece(pieces, [&](Piece p) {
      std::string replaced;
      for (char c : p.text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced += c;
        }
      }
      p.text = std::move(replaced);
      bool starts = p.text.compare(0, replacement_.size(), replacement_) == 0;
      bool prepend = scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && p.at_origin);
      if (prepend && !starts && !p.text.empty()) p.text = replacement_ + p.text;
      if (split_ == MetaspaceSplit::No) return std::vector<Piece>{std::move(p)};
      return split_piece(p, separator_, SplitBehavior::MergedWithNext, Invert::No);
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  MetaspaceSplit split_;
  Pattern separator_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<const PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<const PreTokenizer>> steps_;
};

PrependScheme metaspace_scheme(const nlohmann::json& j, const std::string& where) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "first") return PrependScheme::First;
    if (s == "always") return PrependScheme::Always;
    if (s == "never") return PrependScheme::Never;
    fail(ErrorKind::Format, where, ": unknown Metaspace prepend_scheme '", s, "'");
  }
  // Files written before tokenizers 0.19 carry add_prefix_space instead.
  return json_bool_or(j, "add_prefix_space", true, where) ? PrependScheme::Always : PrependScheme::Never;
}

}  // namespace

std::vector<Span> split_behavior_apply(const std::vector<MatchSpan>& matches, SplitBehavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const MatchSpan& m : matches) {
        if (!m.is_match) out.push_back(m.span);
      }
      return out;
    case SplitBehavior::Isolated:
      for (const MatchSpan& m : matches) out.push_back(m.span);
      return out;
    case SplitBehavior::Contiguous:
      for (const MatchSpan& m : matches) {
        if (m.is_match == previous_match && !out.empty()) {
          out.back().end = m.span.end;
        } else {
          out.push_back(m.span);
        }
        previous_match = m.is_match;
      }
      return out;
    case SplitBehavior::MergedWithPrevious:
      for (const MatchSpan& m : matches) {
        if (m.is_match && !previous_match && !out.empty()) {
          out.back().end = m.span.end;
        } else {
          out.push_back(m.span);
        }
        previous_match = m.is_match;
      }
      return out;
    case SplitBehavior::MergedWithNext:
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->span.begin;
        } else {
          out.push_back(it->span);
        }
        previous_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
  }
  return out;
}

std::unique_ptr<const PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, "pre_tokenizer", where);
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(Pattern::from_json(json_field(j, "pattern", where), where),
                                               parse_behavior(json_string(j, "behavior", where), where),
                                               json_bool_or(j, "invert", false, where) ? Invert::Yes : Invert::No);
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(
        json_bool_or(j, "add_prefix_space", true, where) ? PrefixSpace::Yes : PrefixSpace::No,
        json_bool_or(j, "use_regex", true, where) ? UseRegex::Yes : UseRegex::No, where);
  }
  if (type == "Metaspace") {
    return std::make_unique<MetaspacePreTokenizer>(json_string_or(j, "replacement", kReplacementDefault, where),
                                                   metaspace_scheme(j, where),
                                                   json_bool_or(j, "split", true, where) ? MetaspaceSplit::Yes
                                                                                        : MetaspaceSplit::No);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<const PreTokenizer>> steps;
    for (const auto& step : json_array(j, "pretokenizers", where)) {
      if (auto p = pre_tokenizer_from_json(step, where)) steps.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  fail(ErrorKind::Unsupported, where, ": pre_tokenizer type '", type,
       "' is not supported (supported: Split, ByteLevel, Metaspace, Sequence)");
}

}  // namespace kto

