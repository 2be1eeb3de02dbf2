// tokenizer.json `normalizer`: NFC/NFD/NFKC/NFKD, Prepend, Replace and Sequence, mirroring
// huggingface/tokenizers normalizers/{unicode,prepend,replace,mod}.rs. Only the normalized
// text is kept (kto needs no offsets).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace kto {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;  // text: valid UTF-8
};

// Null for a JSON null; Unsupported for a type kto does not implement, naming it and `where`.
std::unique_ptr<const Normalizer> normalizer_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace kto
