// Post-processors of huggingface/tokenizers on id lists (no type ids, no offsets).
#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"
#include "util/error.h"

namespace kto {

PostProcessor PostProcessor::from_json(const nlohmann::json& j, const std::string& where) {
  PostProcessor p;
  if (!j.is_null()) p.append_from_json(j, where);
  return p;
}

void PostProcessor::append_from_json(const nlohmann::json& j, const std::string& where) {
  const std::string type = json_type(j, "post_processor", where);
  if (type == "ByteLevel") return;  // trims offsets only
  if (type == "Sequence") {
    for (const auto& step : json_array(j, "processors", where)) append_from_json(step, where);
    return;
  }
  if (type != "TemplateProcessing") {
    fail(ErrorKind::Unsupported, where, ": post_processor type '", type,
         "' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  }
  const auto& specials = json_field(j, "special_tokens", where);
  Template t;
  for (const auto& piece : json_array(j, "single", where)) {
    if (piece.contains("Sequence")) {
      if (json_string(piece["Sequence"], "id", where) != "A") {
        fail(ErrorKind::Format, where, ": the single template may only use sequence $A, got ", piece.dump());
      }
      t.push_back({true, {}});
    } else if (piece.contains("SpecialToken")) {
      std::string name = json_string(piece["SpecialToken"], "id", where);
      if (!specials.contains(name)) fail(ErrorKind::Format, where, ": template token '", name, "' is not in special_tokens");
      Item item;
      for (const auto& id : json_array(specials[name], "ids", where)) {
        if (!id.is_number_integer()) fail(ErrorKind::Format, where, ": special_tokens['", name, "'].ids must be integers");
        item.ids.push_back(id.get<int32_t>());
      }
      t.push_back(std::move(item));
    } else {
      fail(ErrorKind::Format, where, ": unknown template piece ", piece.dump());
    }
  }
  templates_.push_back(std::move(t));
}

std::vector<int32_t> PostProcessor::apply(std::vector<int32_t> ids) const {
  for (const Template& t : templates_) {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const Item& item : t) {
      const auto& src = item.is_sequence ? ids : item.ids;
      out.insert(out.end(), src.begin(), src.end());
    }
    ids = std::move(out);
  }
  return ids;
}

}  // namespace kto
