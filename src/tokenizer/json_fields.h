// Typed access to tokenizer.json / tokenizer_config.json fields with Format errors that name
// the file and the key, so a malformed file never surfaces as a bare nlohmann exception.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace kto {

const nlohmann::json& json_field(const nlohmann::json& j, const char* key, const std::string& where);
std::string json_string(const nlohmann::json& j, const char* key, const std::string& where);
const nlohmann::json& json_array(const nlohmann::json& j, const char* key, const std::string& where);
// Optional fields: the default when absent or null.
bool json_bool_or(const nlohmann::json& j, const char* key, bool fallback, const std::string& where);
std::string json_string_or(const nlohmann::json& j, const char* key, const std::string& fallback,
                           const std::string& where);
// The "type" tag of a component (`what`: "normalizer", "decoder", …).
std::string json_type(const nlohmann::json& j, const char* what, const std::string& where);

}  // namespace kto
