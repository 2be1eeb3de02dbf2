// tokenizer.json `post_processor`: TemplateProcessing (single-sequence template), ByteLevel
// (offsets only, so nothing to do on ids) and Sequence, as in huggingface/tokenizers
// processors/{template,byte_level,sequence}.rs. Applied only when special tokens are wanted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kto {

class PostProcessor {
 public:
  // Null JSON gives the identity.
  static PostProcessor from_json(const nlohmann::json& j, const std::string& where);

  std::vector<int32_t> apply(std::vector<int32_t> ids) const;  // the add-special-tokens path

 private:
  // One TemplateProcessing `single` template: a sequence of special-token id runs and $A.
  struct Item {
    bool is_sequence = false;
    std::vector<int32_t> ids;  // for a special token
  };
  using Template = std::vector<Item>;
  void append_from_json(const nlohmann::json& j, const std::string& where);

  std::vector<Template> templates_;  // applied in order (Sequence of processors)
};

}  // namespace kto
