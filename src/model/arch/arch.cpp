// Registry of supported architectures (model_type → hooks) and ConfigJson, the typed reader of
// config.json values that mirrors how transformers' Config classes take keyword defaults.
#include "model/arch/arch.h"

#include <array>

#include "util/error.h"

namespace kto {

namespace {
const std::array<const ArchSpec*, 4> kArchs = {&kArchLlama, &kArchMistral, &kArchQwen2, &kArchQwen3};
}  // namespace

const ArchSpec* arch_find(std::string_view model_type) {
  for (const ArchSpec* a : kArchs) {
    if (model_type == a->model_type) return a;
  }
  return nullptr;
}

std::string arch_supported_list() {
  std::string out;
  for (const ArchSpec* a : kArchs) out += (out.empty() ? "" : ", ") + std::string(a->model_type);
  return out;
}

ConfigJson::ConfigJson(const nlohmann::json& json, std::string source, std::string prefix)
    : json_(json), source_(std::move(source)), prefix_(std::move(prefix)) {}

const nlohmann::json* ConfigJson::find(std::string_view key) const {
  auto it = json_.find(key);
  return it == json_.end() || it->is_null() ? nullptr : &*it;
}

void ConfigJson::fail_key(std::string_view key, const std::string& problem) const {
  fail(ErrorKind::Format, source_, ": key \"", prefix_, key, "\" ", problem);
}

int64_t ConfigJson::required_int(std::string_view key) const {
  if (!has(key)) fail_key(key, "is missing; it is required in a decoder-only model's config.json");
  return *opt_int(key);
}

std::optional<int64_t> ConfigJson::opt_int(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) fail_key(key, "must be an integer, got " + v->dump());
  return v->get<int64_t>();
}

int64_t ConfigJson::get_int(std::string_view key, int64_t fallback) const {
  return opt_int(key).value_or(fallback);
}

double ConfigJson::get_double(std::string_view key, double fallback) const {
  const nlohmann::json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) fail_key(key, "must be a number, got " + v->dump());
  return v->get<double>();
}

double ConfigJson::required_double(std::string_view key) const {
  if (!has(key)) fail_key(key, "is missing");
  return get_double(key, 0.0);
}

bool ConfigJson::get_bool(std::string_view key, bool fallback) const {
  const nlohmann::json* v = find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail_key(key, "must be true or false, got " + v->dump());
  return v->get<bool>();
}

std::string ConfigJson::get_string(std::string_view key, const std::string& fallback) const {
  const nlohmann::json* v = find(key);
  if (!v) return fallback;
  if (!v->is_string()) fail_key(key, "must be a string, got " + v->dump());
  return v->get<std::string>();
}

std::vector<int64_t> ConfigJson::int_or_list(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (!v) return {};
  if (v->is_number_integer()) return {v->get<int64_t>()};
  std::vector<int64_t> out;
  if (v->is_array()) {
    for (const auto& e : *v) {
      if (!e.is_number_integer()) break;
      out.push_back(e.get<int64_t>());
    }
    if (out.size() == v->size()) return out;
  }
  fail_key(key, "must be an integer or a list of integers, got " + v->dump());
}

std::optional<ConfigJson> ConfigJson::object(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_object()) fail_key(key, "must be an object, got " + v->dump());
  return ConfigJson(*v, source_, prefix_ + std::string(key) + ".");
}

}  // namespace kto
