// hub_model_card (hub_card.h); the layout follows the cards TRL's trainers write (YAML header,
// what was trained and how, how to load it).
#include "export/hub_card.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "export/hub_api.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {

namespace {
// `key: value` lines of the resolved config (train_config_dump writes flat YAML).
std::map<std::string, std::string> read_flat_yaml(const std::string& path) {
  std::map<std::string, std::string> out;
  if (!file_exists(path)) return out;
  std::istringstream in(file_read_text(path));
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (line.empty() || line[0] == '#' || line[0] == ' ' || colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.erase(v.begin());
    out[line.substr(0, colon)] = v;
  }
  return out;
}

nlohmann::json read_json(const std::string& path) {
  if (!file_exists(path)) return nlohmann::json();
  return nlohmann::json::parse(file_read_text(path), nullptr, false);
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) s = s.substr(1, s.size() - 2);
  return s;
}

// A Hub id (not a local path that exists here): what the card's metadata may name.
bool is_hub_id(std::string s) {
  s = s.substr(0, s.find('@'));
  std::error_code ec;
  if (s.empty() || std::filesystem::exists(s, ec)) return false;
  try {
    hub_repo_id_check(s);
  } catch (const Error&) {
    return false;
  }
  return s.find('/') != std::string::npos;
}

std::string scalar(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// The last log record's numbers (train metrics) and the last with eval_ keys.
void final_metrics(const nlohmann::json& state, std::ostringstream& md) {
  if (!state.is_object() || !state.contains("log_history") || !state["log_history"].is_array()) return;
  std::map<std::string, std::string> last;
  for (const nlohmann::json& rec : state["log_history"]) {
    if (!rec.is_object()) continue;
    for (const auto& [k, v] : rec.items()) {
      if (v.is_number()) last[k] = scalar(v);
    }
  }
  if (last.empty()) return;
  md << "\n## Final metrics\n\nAt step " << scalar(state.value("global_step", nlohmann::json(0)))
     << " (the last value of each logged metric):\n\n| metric | value |\n|---|---|\n";
  for (const auto& [k, v] : last) md << "| " << k << " | " << v << " |\n";
}
}  // namespace

std::string hub_model_card(const std::string& dir, const std::string& repo_id) {
  const nlohmann::json adapter = read_json(path_join(dir, "adapter_config.json"));
  const std::map<std::string, std::string> config = read_flat_yaml(path_join(dir, "train_config.yaml"));
  const nlohmann::json state = read_json(path_join(dir, "trainer_state.json"));
  auto cfg = [&](const std::string& k) { auto it = config.find(k); return it == config.end() ? std::string() : unquote(it->second); };
  std::string base = adapter.is_object() ? adapter.value("base_model_name_or_path", "") : "";
  if (base.empty()) base = cfg("model_name_or_path");
  const std::string data = cfg("dataset_name");
  const std::string objective = cfg("objective").empty() ? "kto" : cfg("objective");
  const bool is_adapter = adapter.is_object();

  std::ostringstream md;
  md << "---\n";
  if (is_hub_id(base)) md << "base_model: " << base << "\n";
  if (is_adapter) md << "library_name: peft\n";
  md << "tags:\n- kto.cpp\n- " << objective << "\n" << (is_adapter ? "- lora\n" : "");
  if (is_hub_id(data)) {
    md << "datasets:\n- " << data << "\n";
  }
  md << "---\n\n# " << repo_id << "\n\n";
  md << (is_adapter ? "A LoRA adapter" : "A model") << (base.empty() ? "" : " for `" + base + "`") << " trained with "
     << (objective == "kto" ? "KTO (Kahneman-Tversky Optimization)" : objective) << " by kto.cpp"
     << (data.empty() ? "" : " on `" + data + "`") << ".\n";
  if (is_adapter) {
    md << "\n## LoRA\n\n| key | value |\n|---|---|\n";
    for (const char* k : {"r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora"}) {
      if (adapter.contains(k)) md << "| " << k << " | " << scalar(adapter[k]) << " |\n";
    }
  }
  if (!config.empty()) {
    md << "\n## Training hyper-parameters\n\n| key | value |\n|---|---|\n";
    for (const char* k : {"objective", "loss_type", "beta", "desirable_weight", "undesirable_weight", "learning_rate",
                          "lr_scheduler_type", "warmup_ratio", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                          "gradient_accumulation_steps", "max_length", "optim", "weight_decay", "seed"}) {
      if (config.count(k)) md << "| " << k << " | " << cfg(k) << " |\n";
    }
  }
  final_metrics(state, md);
  if (is_adapter && !base.empty()) {
    md << "\n## Use\n\n```sh\nkto chat -m " << base << " -a " << repo_id << "\n```\n\nor with PEFT:\n\n```python\n"
       << "from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"" << repo_id << "\")\n```\n";
  }
  return md.str();
}

}  // namespace kto
