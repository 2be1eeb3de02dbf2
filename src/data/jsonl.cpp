// JsonRowReader: line-by-line JSONL parsing, or a whole-file JSON array whose rows are named
// by their 1-based element index.
#include "data/jsonl.h"

#include <cctype>

#include "util/error.h"

namespace kto {

std::string DataRow::where() const {
  return in_array ? str_cat(file, " element ", line) : str_cat(file, ":", line);
}

JsonRowReader::JsonRowReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  if (!in_) fail(ErrorKind::NotFound, path, ": cannot open the dataset file");
  int c;
  while ((c = in_.peek()) != EOF && std::isspace(c)) in_.get();
  if (c == '[') {
    is_array_ = true;
    try {
      array_ = nlohmann::json::parse(in_);
    } catch (const nlohmann::json::parse_error& e) {
      fail(ErrorKind::Format, path, ": invalid JSON array near byte ", e.byte, "; write one JSON object per line (JSONL) or a valid array");
    }
  } else {
    in_.clear();
    in_.seekg(0);
  }
}

std::optional<DataRow> JsonRowReader::next() {
  if (is_array_) {
    if (array_index_ >= array_.size()) return std::nullopt;
    DataRow row{std::move(array_[array_index_]), path_, static_cast<int64_t>(array_index_) + 1, true};
    ++array_index_;
    if (!row.value.is_object()) fail(ErrorKind::Format, row.where(), ": expected a JSON object");
    return row;
  }
  std::string text;
  while (std::getline(in_, text)) {
    ++line_;
    size_t first = text.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    DataRow row;
    row.file = path_;
    row.line = line_;
    try {
      row.value = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      fail(ErrorKind::Format, row.where(), ": invalid JSON at column ", e.byte, "; each line must be one JSON object");
    }
    if (!row.value.is_object()) fail(ErrorKind::Format, row.where(), ": expected a JSON object, got ", row.value.type_name());
    return row;
  }
  return std::nullopt;
}

}  // namespace kto
