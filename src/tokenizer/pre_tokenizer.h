// tokenizer.json `pre_tokenizer`: Split, ByteLevel, Metaspace and Sequence, mirroring
// huggingface/tokenizers pre_tokenizers/{split,byte_level,metaspace,sequence}.rs and
// NormalizedString::split's delimiter behaviours.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/pattern.h"

namespace kto {

// One split of the text on its way to the model (tokenizers' PreTokenizedString split).
struct Piece {
  std::string text;
  std::optional<int32_t> token;  // set for an added token: pre-tokenizers leave it alone
  bool at_origin = false;        // starts at byte 0 of the input (Metaspace prepend_scheme "first")
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// The spans to keep after applying `behavior` to a tiling of match / non-match spans.
std::vector<Span> split_behavior_apply(const std::vector<MatchSpan>& matches, SplitBehavior behavior);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each text piece by its splits (empty splits dropped); token pieces pass through.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// Null for a JSON null; Unsupported for an unknown type, Format for a bad regex.
std::unique_ptr<const PreTokenizer> pre_tokenizer_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace kto
