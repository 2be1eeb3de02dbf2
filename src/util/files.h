// Small filesystem helpers with kto::Error messages that name the path.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace kto {

bool file_exists(const std::string& path);
std::string file_read_text(const std::string& path);  // whole file; NotFound / Io on failure
// Writes atomically: a temporary file beside `path`, fsync, then rename over it.
void file_write_atomic(const std::string& path, const std::string& contents);
// Parses a JSON file; a syntax error becomes a Format error naming path:line:column.
nlohmann::json json_read_file(const std::string& path);
std::string path_join(const std::string& a, const std::string& b);

}  // namespace kto
