// Checked JSON field access for the tokenizer files (see json_fields.h).
#include "tokenizer/json_fields.h"

#include "util/error.h"

namespace kto {

const nlohmann::json& json_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) fail(ErrorKind::Format, where, ": missing key '", key, "' in ", j.dump().substr(0, 200));
  return j[key];
}

std::string json_string(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_string()) fail(ErrorKind::Format, where, ": key '", key, "' must be a string, got ", v.dump().substr(0, 200));
  return v.get<std::string>();
}

const nlohmann::json& json_array(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_array()) fail(ErrorKind::Format, where, ": key '", key, "' must be an array");
  return v;
}

bool json_bool_or(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) fail(ErrorKind::Format, where, ": key '", key, "' must be true or false");
  return j[key].get<bool>();
}

std::string json_string_or(const nlohmann::json& j, const char* key, const std::string& fallback,
                           const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  return json_string(j, key, where);
}

std::string json_type(const nlohmann::json& j, const char* what, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    fail(ErrorKind::Format, where, ": ", what, " has no \"type\": ", j.dump().substr(0, 200));
  }
  return j["type"].get<std::string>();
}

}  // namespace kto
