// Table-driven TrainConfig parsing: one row per key (canonical TRL/HF name → member), aliases
// mapped to canonical names, values parsed strictly (a typo in a number is an error).
#include "train/train_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <sstream>
#include <variant>

#include "tensor/nf4.h"
#include "util/error.h"
#include "util/log.h"

namespace kto {

namespace {
using Member = std::variant<std::string TrainConfig::*, double TrainConfig::*, int64_t TrainConfig::*,
                            bool TrainConfig::*, std::vector<std::string> TrainConfig::*>;
struct Key {
  const char* name;
  Member member;
};

const std::vector<Key>& keys() {
  static const std::vector<Key> k = {
      {"model_name_or_path", &TrainConfig::model_name_or_path}, {"dataset_name", &TrainConfig::dataset_name},
      {"eval_dataset", &TrainConfig::eval_dataset}, {"eval_split", &TrainConfig::eval_split},
      {"output_dir", &TrainConfig::output_dir}, {"objective", &TrainConfig::objective},
      {"finetuning_type", &TrainConfig::finetuning_type}, {"loss_type", &TrainConfig::loss_type}, {"beta", &TrainConfig::beta},
      {"desirable_weight", &TrainConfig::desirable_weight}, {"undesirable_weight", &TrainConfig::undesirable_weight},
      {"max_length", &TrainConfig::max_length}, {"max_prompt_length", &TrainConfig::max_prompt_length},
      {"truncation_mode", &TrainConfig::truncation_mode}, {"precompute_ref_log_probs", &TrainConfig::precompute_ref_log_probs},
      {"disable_dropout", &TrainConfig::disable_dropout}, {"trl_compat", &TrainConfig::trl_compat},
      {"learning_rate", &TrainConfig::learning_rate}, {"per_device_train_batch_size", &TrainConfig::per_device_train_batch_size},
      {"auto_find_batch_size", &TrainConfig::auto_find_batch_size},
      {"per_device_eval_batch_size", &TrainConfig::per_device_eval_batch_size},
      {"gradient_accumulation_steps", &TrainConfig::gradient_accumulation_steps},
      {"num_train_epochs", &TrainConfig::num_train_epochs}, {"max_steps", &TrainConfig::max_steps},
      {"lr_scheduler_type", &TrainConfig::lr_scheduler_type}, {"warmup_ratio", &TrainConfig::warmup_ratio},
      {"warmup_steps", &TrainConfig::warmup_steps}, {"weight_decay", &TrainConfig::weight_decay},
      {"adam_beta1", &TrainConfig::adam_beta1}, {"adam_beta2", &TrainConfig::adam_beta2},
      {"adam_epsilon", &TrainConfig::adam_epsilon}, {"max_grad_norm", &TrainConfig::max_grad_norm},
      {"optim", &TrainConfig::optim}, {"gradient_checkpointing", &TrainConfig::gradient_checkpointing},
      {"seed", &TrainConfig::seed}, {"device", &TrainConfig::device}, {"max_memory", &TrainConfig::max_memory},
      {"logging_steps", &TrainConfig::logging_steps}, {"save_steps", &TrainConfig::save_steps},
      {"save_total_limit", &TrainConfig::save_total_limit}, {"eval_steps", &TrainConfig::eval_steps},
      {"resume_from_checkpoint", &TrainConfig::resume_from_checkpoint}, {"lora_r", &TrainConfig::lora_r},
      {"lora_alpha", &TrainConfig::lora_alpha}, {"lora_dropout", &TrainConfig::lora_dropout},
      {"lora_target_modules", &TrainConfig::lora_target_modules}, {"use_rslora", &TrainConfig::use_rslora},
      {"adapter_name_or_path", &TrainConfig::adapter_name_or_path}, {"load_in_4bit", &TrainConfig::load_in_4bit},
      {"bnb_4bit_quant_type", &TrainConfig::bnb_4bit_quant_type},
      {"bnb_4bit_use_double_quant", &TrainConfig::bnb_4bit_use_double_quant},
      {"bnb_4bit_compute_dtype", &TrainConfig::bnb_4bit_compute_dtype},
  };
  return k;
}

// Names other tools use for the same setting (spec/kto.md §7) → canonical key.
const std::vector<std::pair<const char*, const char*>>& aliases() {
  static const std::vector<std::pair<const char*, const char*>> a = {
      {"rl_beta", "beta"}, {"pref_beta", "beta"}, {"kto_desirable_weight", "desirable_weight"},
      {"kto_chosen_weight", "desirable_weight"}, {"kto_undesirable_weight", "undesirable_weight"},
      {"kto_rejected_weight", "undesirable_weight"}, {"lora_rank", "lora_r"}, {"sequence_len", "max_length"},
      {"cutoff_len", "max_length"}, {"micro_batch_size", "per_device_train_batch_size"},
      {"num_epochs", "num_train_epochs"}, {"local_file", "dataset_name"}, {"model", "model_name_or_path"},
      {"stage", "objective"}, {"use_bnb_nested_quant", "bnb_4bit_use_double_quant"},
  };
  return a;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

[[noreturn]] void bad_value(const std::string& key, const std::string& value, const std::string& where, const char* want) {
  fail(ErrorKind::InvalidArgument, where, ": `", key, "` must be ", want, ", got '", value, "'");
}

template <typename T>
T parse_number(const std::string& key, const std::string& value, const std::string& where, const char* want) {
  T out{};
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, out);
  if (ec != std::errc() || ptr != end) bad_value(key, value, where, want);
  return out;
}

std::string lowercase(std::string v) {
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return v;
}

// max_memory as train_config_parse_bytes reads it back: the largest binary unit that divides it.
std::string bytes_text(int64_t bytes) {
  for (auto [unit, shift] : {std::pair{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}) {
    if (bytes > 0 && bytes % (int64_t{1} << shift) == 0) return str_cat(bytes >> shift, unit);
  }
  return std::to_string(bytes);
}

bool parse_bool(const std::string& key, const std::string& value, const std::string& where) {
  const std::string v = lowercase(value);
  if (v == "true" || v == "yes" || v == "1" || v == "on") return true;
  if (v == "false" || v == "no" || v == "0" || v == "off") return false;
  bad_value(key, value, where, "true or false");
}

// "[q_proj, v_proj]", "q_proj,v_proj" or "all-linear" → list.
std::vector<std::string> parse_list(const std::string& value) {
  std::string v = value;
  std::erase_if(v, [](char c) { return c == '[' || c == ']' || c == '"' || c == '\'' || c == ' '; });
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Checks every objective needs.
void validate_batch(const TrainConfig& c) {
  if (c.per_device_train_batch_size < 0 || c.gradient_accumulation_steps < 1) {
    fail(ErrorKind::InvalidArgument, "per_device_train_batch_size (or `auto`) and gradient_accumulation_steps must be >= 1");
  }
  if (c.max_memory < 0) fail(ErrorKind::InvalidArgument, "max_memory must be a size such as 24GiB, got ", c.max_memory);
}

// optim and the QLoRA keys.
void validate_optim_and_quantization(const TrainConfig& c) {
  (void)train_config_optim(c);
  if (!c.load_in_4bit) return;
  if (c.bnb_4bit_quant_type != "nf4") {
    fail(ErrorKind::Unsupported, "bnb_4bit_quant_type '", c.bnb_4bit_quant_type,
         "' is not supported; use nf4 (the QLoRA 4-bit type)");
  }
  const std::string& d = c.bnb_4bit_compute_dtype;
  if (d != "float32" && d != "bfloat16" && d != "float16" && d != "fp32" && d != "bf16" && d != "fp16") {
    fail(ErrorKind::InvalidArgument, "bnb_4bit_compute_dtype must be float32, bfloat16 or float16, got '", d, "'");
  }
  if (c.finetuning_type == "full") {
    fail(ErrorKind::InvalidArgument, "load_in_4bit with finetuning_type full: NF4 weights are frozen (QLoRA trains "
         "a LoRA adapter on them); use finetuning_type: lora, or drop load_in_4bit");
  }
}

void validate_lengths_and_lora(const TrainConfig& c) {
  if (c.max_length < 2) fail(ErrorKind::InvalidArgument, "max_length must be >= 2, got ", c.max_length);
  if (c.max_prompt_length > 0 && c.max_prompt_length >= c.max_length) {
    fail(ErrorKind::InvalidArgument, "max_prompt_length (", c.max_prompt_length, ") must be < max_length (", c.max_length, ")");
  }
  if (c.truncation_mode != "keep_end" && c.truncation_mode != "keep_start") {
    fail(ErrorKind::InvalidArgument, "truncation_mode must be keep_end or keep_start, got '", c.truncation_mode, "'");
  }
  if (c.lora_r < 1) fail(ErrorKind::InvalidArgument, "lora_r must be >= 1, got ", c.lora_r);
  if (c.eval_split < 0 || c.eval_split >= 1) fail(ErrorKind::InvalidArgument, "eval_split must be in [0, 1), got ", c.eval_split);
}

}  // namespace

std::vector<std::string> train_config_keys() {
  std::vector<std::string> out;
  for (const Key& k : keys()) out.emplace_back(k.name);
  return out;
}

std::string train_config_dump(const TrainConfig& config) {
  std::ostringstream out;
  for (const Key& k : keys()) {
    out << k.name << ": ";
    if (std::string_view(k.name) == "per_device_train_batch_size" && config.per_device_train_batch_size == 0) {
      out << "auto\n";
      continue;
    }
    if (std::string_view(k.name) == "max_memory") {
      out << bytes_text(config.max_memory) << "\n";
      continue;
    }
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(config.*member)>;
          const T& v = config.*member;
          if constexpr (std::is_same_v<T, std::string>) out << (v.empty() ? "\"\"" : v);
          if constexpr (std::is_same_v<T, int64_t>) out << v;
          if constexpr (std::is_same_v<T, double>) {  // shortest text that reads back to the same double
            char buf[32];
            out << std::string_view(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
          }
          if constexpr (std::is_same_v<T, bool>) out << (v ? "true" : "false");
          if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            out << "[";
            for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
            out << "]";
          }
        },
        k.member);
    out << "\n";
  }
  return out.str();
}

std::string train_config_suggest(const std::string& unknown) {
  std::string best;
  size_t best_distance = std::max<size_t>(3, unknown.size() / 3) + 1;
  auto consider = [&](const std::string& name) {
    size_t d = edit_distance(unknown, name);
    if (d < best_distance) best_distance = d, best = name;
  };
  for (const Key& k : keys()) consider(k.name);
  for (const auto& [alias, canonical] : aliases()) consider(alias);
  return best;
}

void train_config_set(TrainConfig& config, const std::string& key_in, const std::string& value, const std::string& where) {
  std::string key = key_in;
  for (const auto& [alias, canonical] : aliases()) {
    if (key == alias) {
      log_info(where, ": `", alias, "` is read as `", canonical, "` (the TRL name)");
      key = canonical;
    }
  }
  auto it = std::find_if(keys().begin(), keys().end(), [&](const Key& k) { return key == k.name; });
  if (it == keys().end()) {
    std::string hint = train_config_suggest(key);
    fail(ErrorKind::InvalidArgument, where, ": unknown setting `", key, "`",
         hint.empty() ? str_cat(" (no known setting is close; the names are TRL's KTOConfig names)")
                      : str_cat("; did you mean `", hint, "`?"));
  }
  if (key == "per_device_train_batch_size" && lowercase(value) == "auto") {
    config.per_device_train_batch_size = 0;
    return;
  }
  if (key == "max_memory") {
    config.max_memory = train_config_parse_bytes(value, where);
    return;
  }
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, std::string>) config.*member = value;
        if constexpr (std::is_same_v<T, double>) config.*member = parse_number<double>(key, value, where, "a number");
        if constexpr (std::is_same_v<T, int64_t>) config.*member = parse_number<int64_t>(key, value, where, "an integer");
        if constexpr (std::is_same_v<T, bool>) config.*member = parse_bool(key, value, where);
        if constexpr (std::is_same_v<T, std::vector<std::string>>) config.*member = parse_list(value);
      },
      it->member);
}

namespace {
// TRL's `datasets:` list ([{path, data_files?, split?}]): one entry becomes dataset_name (a local
// file or folder, or a hub id plus an optional file inside it).
void set_datasets(TrainConfig& config, const YAML::Node& list, const std::string& where) {
  if (!list.IsSequence() || list.size() == 0 || !list[0].IsMap() || !list[0]["path"]) {
    fail(ErrorKind::InvalidArgument, where, ": `datasets` must be a list of {path: FILE|FOLDER|HUB_ID} entries");
  }
  if (list.size() > 1) {
    fail(ErrorKind::Unsupported, where, ": `datasets` with ", list.size(),
         " entries: only one is supported so far; put the files in one folder and give that folder as `path`");
  }
  std::string path = list[0]["path"].as<std::string>();
  if (list[0]["data_files"]) path += "/" + list[0]["data_files"].as<std::string>();
  train_config_set(config, "dataset_name", path, where);
}
}  // namespace

void train_config_load_yaml(TrainConfig& config, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail(ErrorKind::NotFound, path, ": cannot open the config file");
  } catch (const YAML::ParserException& e) {
    fail(ErrorKind::Format, path, ":", e.mark.line + 1, ":", e.mark.column + 1, ": invalid YAML: ", e.msg);
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) fail(ErrorKind::Format, path, ": the config must be a mapping of `key: value` lines");
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    const std::string where = str_cat(path, ":", entry.first.Mark().line + 1);
    const YAML::Node& v = entry.second;
    if (key == "datasets") {
      set_datasets(config, v, where);
    } else if (v.IsSequence()) {
      std::string joined;
      for (const auto& item : v) {
        if (!item.IsScalar()) fail(ErrorKind::InvalidArgument, where, ": `", key, "` must be a list of values");
        joined += (joined.empty() ? "" : ",") + item.as<std::string>();
      }
      train_config_set(config, key, joined, where);
    } else if (v.IsScalar()) {
      train_config_set(config, key, v.as<std::string>(), where);
    } else if (v.IsMap()) {
      fail(ErrorKind::InvalidArgument, where, ": `", key, "` must be a value or a list, not a mapping");
    } else if (!v.IsNull()) {
      fail(ErrorKind::Format, where, ": `", key, "` must be a value or a list");
    }
  }
}

void train_config_validate(const TrainConfig& c) {
  if (c.objective != "kto" && c.objective != "sft") {
    fail(ErrorKind::InvalidArgument, "objective '", c.objective, "' is not supported; use kto or sft");
  }
  if (c.finetuning_type != "lora" && c.finetuning_type != "full") {
    fail(ErrorKind::InvalidArgument, "finetuning_type '", c.finetuning_type, "' is not supported; use lora or full");
  }
  if (c.finetuning_type == "full" && c.objective != "sft") {
    fail(ErrorKind::InvalidArgument, "finetuning_type full works with objective sft only: KTO's reference model is "
         "the frozen base, which full fine-tuning would change; use finetuning_type: lora for KTO");
  }
  validate_optim_and_quantization(c);
  if (c.objective == "sft") {
    validate_batch(c);
    return validate_lengths_and_lora(c);
  }
  if (c.loss_type != "kto" && c.loss_type != "apo_zero_unpaired") {
    fail(ErrorKind::InvalidArgument, "loss_type '", c.loss_type, "' is not supported; use kto or apo_zero_unpaired");
  }
  if (c.loss_type == "kto" && c.per_device_train_batch_size == 1) {
    fail(ErrorKind::InvalidArgument,
         "per_device_train_batch_size 1 with loss_type kto: the KL estimate of a micro-batch of one row uses that "
         "row's own prompt with a completion rotated from itself, so it equals the implied reward and the loss "
         "carries no signal; use per_device_train_batch_size >= 2, or loss_type: apo_zero_unpaired (no KL term)");
  }
  validate_batch(c);
  if (c.beta <= 0) fail(ErrorKind::InvalidArgument, "beta must be > 0, got ", c.beta);
  validate_lengths_and_lora(c);
}

int64_t train_config_parse_bytes(const std::string& text, const std::string& where) {
  std::string t = text;
  std::erase_if(t, [](char c) { return c == ' ' || c == '_'; });
  const char* end = t.data() + t.size();
  double number = 0.0;
  auto [ptr, ec] = std::from_chars(t.data(), end, number);
  const std::string unit = lowercase(std::string(ptr, end));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1.0},         {"b", 1.0},     {"kib", 0x1p10},   {"mib", 0x1p20}, {"gib", 0x1p30}, {"tib", 0x1p40},
      {"kb", 1e3},       {"mb", 1e6},    {"gb", 1e9},       {"tb", 1e12},    {"k", 0x1p10},   {"m", 0x1p20},
      {"g", 0x1p30},     {"t", 0x1p40}};
  if (t == "auto" || t.empty()) return 0;  // unset: the GPU's free memory
  for (auto [name, scale] : kUnits) {
    if (ec == std::errc() && ptr != t.data() && unit == name && number >= 0 && number * scale < 0x1p62) {
      return static_cast<int64_t>(number * scale);
    }
  }
  fail(ErrorKind::InvalidArgument, where, ": `max_memory` must be a size such as 24GiB, 80GB or 512MiB (or a byte count), got '",
       text, "'");
}

OptimKind train_config_optim(const TrainConfig& c) {
  const std::string& o = c.optim;
  if (o == "adamw_torch" || o == "adamw_torch_fused" || o == "paged_adamw_32bit") return OptimKind::AdamW;
  if (o == "adamw_8bit" || o == "adamw_bnb_8bit" || o == "paged_adamw_8bit") return OptimKind::AdamW8bit;
  fail(ErrorKind::InvalidArgument, "optim '", o, "' is not supported; use adamw_torch, adamw_8bit (bitsandbytes "
       "AdamW8bit: 8-bit blockwise moments), paged_adamw_8bit or paged_adamw_32bit");
}

Nf4QuantizeOptions train_config_nf4(const TrainConfig& c, const std::string& weight_dtype) {
  Nf4QuantizeOptions options;
  options.double_quant = c.bnb_4bit_use_double_quant;
  options.dtype = weight_dtype == "bfloat16" ? DType::BF16 : weight_dtype == "float16" ? DType::F16 : DType::F32;
  return options;
}

}  // namespace kto
