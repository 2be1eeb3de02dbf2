// The per-architecture hooks behind model_config_from_json: config.cpp reads what every
// transformers decoder config shares (LlamaConfig's fields); each model/arch/<name>.cpp holds only
// what its transformers Config/Attention class does differently (llama.cpp's src/models/ idea).
// Also ConfigJson, typed config.json access whose errors name the file and the key.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "model/config.h"

namespace kto {

// Read-only view of a config.json object (or a nested object such as rope_scaling). Absent and
// null keys both count as "not given", as transformers' keyword defaults treat them.
class ConfigJson {
 public:
  ConfigJson(const nlohmann::json& json, std::string source, std::string prefix = "");

  const nlohmann::json* find(std::string_view key) const;  // nullptr when absent or null
  bool has(std::string_view key) const { return find(key) != nullptr; }
  int64_t required_int(std::string_view key) const;  // Format error when missing or not an integer
  int64_t get_int(std::string_view key, int64_t fallback) const;
  std::optional<int64_t> opt_int(std::string_view key) const;
  double get_double(std::string_view key, double fallback) const;  // any JSON number
  double required_double(std::string_view key) const;
  bool get_bool(std::string_view key, bool fallback) const;
  std::string get_string(std::string_view key, const std::string& fallback) const;
  // Integer or list of integers (eos_token_id); empty when absent.
  std::vector<int64_t> int_or_list(std::string_view key) const;
  // A nested object; Format error when present but not an object.
  std::optional<ConfigJson> object(std::string_view key) const;

  [[noreturn]] void fail_key(std::string_view key, const std::string& problem) const;
  const std::string& source() const { return source_; }
  const nlohmann::json& json() const { return json_; }

 private:
  const nlohmann::json& json_;
  std::string source_;  // the config.json path
  std::string prefix_;  // "rope_scaling." for nested objects
};

struct ArchSpec {
  const char* model_type;
  // transformers' Config-class defaults that differ from LlamaConfig's; runs before the JSON is read.
  void (*set_defaults)(ModelConfig& config);
  // Everything else that differs (biases, q/k norm, sliding windows); runs after the common fields.
  void (*apply)(const ConfigJson& json, ModelConfig& config);
};

const ArchSpec* arch_find(std::string_view model_type);  // nullptr when unsupported
std::string arch_supported_list();                        // "llama, mistral, qwen2, qwen3"

extern const ArchSpec kArchLlama;
extern const ArchSpec kArchMistral;
extern const ArchSpec kArchQwen2;
extern const ArchSpec kArchQwen3;

// Qwen2/Qwen3 sliding windows: `layer_types` when given, else use_sliding_window + max_window_layers.
void qwen2_layer_windows(const ConfigJson& json, ModelConfig& config);

}  // namespace kto
