// The PEFT LoRA adapter directory (spec/formats.md §3): adapter_config.json as
// PeftConfigMixin.save_pretrained writes it (sorted keys, indent 2, no trailing newline) and
// adapter_model.safetensors with "base_model.model.<module path>.lora_{A,B}.weight" names;
// loading mirrors PeftModel.load_adapter's key handling (either base_model prefix accepted).
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/safetensors.h"
#include "model/lora.h"
#include "util/files.h"

namespace kto {
namespace {

using nlohmann::json;

json number(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v))) return static_cast<int64_t>(v);
  return v;
}

// target_modules as PEFT saves them: the given list, or the resolved module names for "all-linear".
json saved_targets(const LoraAdapter& adapter) {
  const auto& targets = adapter.config.target_modules;
  if (std::find(targets.begin(), targets.end(), "all-linear") == targets.end()) return targets;
  std::set<std::string> names;
  for (const LoraLayer& layer : adapter.layers) {
    for (LoraModule m : kLoraModules) {
      if (layer[m].enabled()) names.insert(lora_module_name(m));
    }
  }
  return std::vector<std::string>(names.begin(), names.end());
}

json config_json(const LoraAdapter& adapter) {
  const LoraConfig& c = adapter.config;
  json j = {{"alpha_pattern", json::object()}, {"auto_mapping", nullptr},
            {"base_model_name_or_path", c.base_model_name_or_path}, {"bias", "none"}, {"exclude_modules", nullptr},
            {"fan_in_fan_out", false}, {"inference_mode", true}, {"init_lora_weights", true},
            {"layer_replication", nullptr}, {"layers_pattern", nullptr}, {"layers_to_transform", nullptr},
            {"loftq_config", json::object()}, {"lora_alpha", number(c.alpha)}, {"lora_bias", false},
            {"lora_dropout", c.dropout}, {"megatron_config", nullptr}, {"megatron_core", "megatron.core"},
            {"modules_to_save", nullptr}, {"peft_type", "LORA"}, {"r", c.rank}, {"rank_pattern", json::object()},
            {"revision", nullptr}, {"target_modules", saved_targets(adapter)}, {"target_parameters", nullptr},
            {"task_type", "CAUSAL_LM"}, {"trainable_token_indices", nullptr}, {"use_dora", false},
            {"use_qalora", false}, {"use_rslora", c.use_rslora}};
  return j;
}

// Throws Unsupported when `key` holds anything but its neutral value.
void require_neutral(const json& j, const std::string& path, const char* key, const json& neutral) {
  if (!j.contains(key) || j[key].is_null() || j[key] == neutral) return;
  fail(ErrorKind::Unsupported, path, ": ", key, " = ", j[key].dump(),
       " is not supported (kto reads plain LoRA adapters: no DoRA, biases, per-module ranks or layer subsets)");
}

LoraConfig parse_config(const json& j, const std::string& path) {
  if (j.value("peft_type", std::string("LORA")) != "LORA") {
    fail(ErrorKind::Unsupported, path, ": peft_type ", j["peft_type"].dump(), " is not a LoRA adapter");
  }
  require_neutral(j, path, "use_dora", false);
  require_neutral(j, path, "bias", "none");
  require_neutral(j, path, "lora_bias", false);
  require_neutral(j, path, "fan_in_fan_out", false);
  require_neutral(j, path, "rank_pattern", json::object());
  require_neutral(j, path, "alpha_pattern", json::object());
  require_neutral(j, path, "layers_to_transform", nullptr);
  require_neutral(j, path, "modules_to_save", nullptr);
  LoraConfig c;
  try {
    c.rank = j.value("r", int64_t{8});
    c.alpha = j.value("lora_alpha", 8.0);
    c.dropout = j.value("lora_dropout", 0.0);
    c.use_rslora = j.value("use_rslora", false);
    c.base_model_name_or_path = j.value("base_model_name_or_path", std::string());
    const json& targets = j.at("target_modules");
    if (targets.is_string() && targets.get<std::string>() != "all-linear") {
      fail(ErrorKind::Unsupported, path, ": target_modules regex ", targets.dump(),
           " is not supported; list the module names instead");
    }
    c.target_modules = targets.is_string() ? std::vector<std::string>{targets.get<std::string>()}
                                           : targets.get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    fail(ErrorKind::Format, path, ": ", e.what());
  }
  if (c.rank < 1) fail(ErrorKind::Format, path, ": r must be >= 1, got ", c.rank);
  return c;
}

// Adapter tensors by module-relative name ("model.layers.0.self_attn.q_proj.lora_A.weight").
std::map<std::string, const SafetensorsTensor*> tensors_by_module(const SafetensorsFile& file) {
  std::map<std::string, const SafetensorsTensor*> out;
  for (const SafetensorsTensor& t : file.tensors()) {
    std::string name = t.name;
    for (const char* prefix : {"base_model.model.", "base_model."}) {
      if (name.starts_with(prefix)) {
        name = name.substr(std::string(prefix).size());
        break;
      }
    }
    out[name] = &t;
  }
  return out;
}

void read_into(const SafetensorsTensor* t, HostTensor& dest, const std::string& name, const std::string& path) {
  if (!t) fail(ErrorKind::Format, path, ": no tensor ", name, " although adapter_config.json targets that module");
  bool same = static_cast<int>(t->shape.size()) == dest.shape().rank;
  for (int i = 0; same && i < dest.shape().rank; ++i) same = t->shape[static_cast<size_t>(i)] == dest.shape()[i];
  if (!same) {
    fail(ErrorKind::Format, path, ": tensor ", name, " has the wrong shape; expected ", dest.shape().str(),
         " from r and the base model's config; is this adapter for another model?");
  }
  safetensors_to_f32(*t, dest.f32());
}

}  // namespace

void lora_save_peft(const LoraAdapter& adapter, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(ErrorKind::Io, dir, ": cannot create directory: ", ec.message());
  std::vector<SafetensorsWriteTensor> tensors;
  for (const NamedTensor& p : adapter.parameters()) {
    tensors.push_back({p.name, "F32", {p.tensor.shape[0], p.tensor.shape[1]}, p.tensor.data, p.tensor.nbytes()});
  }
  safetensors_write(path_join(dir, "adapter_model.safetensors"), std::move(tensors));
  file_write_atomic(path_join(dir, "adapter_config.json"), config_json(adapter).dump(2));
}

LoraAdapter lora_load_peft(const std::string& dir, const ModelConfig& model) {
  const std::string config_path = path_join(dir, "adapter_config.json");
  const std::string weights_path = path_join(dir, "adapter_model.safetensors");
  LoraConfig config = parse_config(json_read_file(config_path), config_path);
  if (!file_exists(weights_path) && file_exists(path_join(dir, "adapter_model.bin"))) {
    fail(ErrorKind::Unsupported, dir, ": only adapter_model.bin (pickle) found; re-save the adapter with "
         "safe_serialization=True");
  }
  const SafetensorsFile file = SafetensorsFile::open(weights_path);
  auto by_name = tensors_by_module(file);
  LoraAdapter adapter = lora_init(model, config, 0);
  for (size_t l = 0; l < adapter.layers.size(); ++l) {
    for (LoraModule m : kLoraModules) {
      LoraWeights& w = adapter.layers[l][m];
      if (!w.enabled()) continue;
      const std::string base = lora_module_path(static_cast<int64_t>(l), m);
      for (auto [which, dest] : {std::pair{".lora_A.weight", &w.a}, std::pair{".lora_B.weight", &w.b}}) {
        const auto it = by_name.find(base + which);
        read_into(it == by_name.end() ? nullptr : it->second, *dest, base + which, weights_path);
        if (it != by_name.end()) by_name.erase(it);
      }
    }
  }
  if (!by_name.empty()) {
    fail(ErrorKind::Unsupported, weights_path, ": tensor ", by_name.begin()->second->name,
         " is not a lora_A/lora_B of a module adapter_config.json targets (", by_name.size(),
         " such tensors); kto loads plain LoRA on the attention and MLP projections only");
  }
  adapter.touch();
  return adapter;
}

}  // namespace kto
