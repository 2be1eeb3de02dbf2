// Streaming reader for dataset files: JSON Lines (one object per line; blank lines skipped)
// or a single JSON array of objects. Every row carries its file:line so errors can say where.
#pragma once

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace kto {

struct DataRow {
  nlohmann::json value;  // an object
  std::string file;
  int64_t line = 0;      // JSONL: 1-based line; JSON array: 1-based element index
  bool in_array = false;
  std::string where() const;  // "file:line" or "file element N"
};

class JsonRowReader {
 public:
  // Opens `path`; detects a JSON array by its first non-space byte '['.
  explicit JsonRowReader(const std::string& path);
  // Next row, or nullopt at the end. Malformed JSON or a non-object row throws a Format
  // error naming file:line.
  std::optional<DataRow> next();

 private:
  std::string path_;
  std::ifstream in_;
  int64_t line_ = 0;
  bool is_array_ = false;
  nlohmann::json array_;
  size_t array_index_ = 0;
};

}  // namespace kto
