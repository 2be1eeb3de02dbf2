// JSON text written by hand where byte-exact output matters (safetensors headers as serde_json
// writes them, chat-template `tojson` as Python's json.dumps(ensure_ascii=False) writes it):
// both escape exactly '"', '\\', the five short control escapes and other bytes < 0x20 as
// \u00xx (lower-case hex), and pass every other byte (UTF-8 included) through.
#pragma once

#include <string>
#include <string_view>

namespace kto {

void json_append_string(std::string& out, std::string_view s);  // appends "…" with escapes

}  // namespace kto
