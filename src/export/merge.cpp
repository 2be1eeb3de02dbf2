// PEFT merge_and_unload + transformers save_pretrained for kto's Weights (see merge.h). The
// state dict is walked in transformers' module order (self_attn, mlp, then the two layer norms),
// which is what split_state_dict_into_shards_factory shards by.
#include "export/merge.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <tuple>

#include "formats/safetensors.h"
#include "tensor/dtype.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {
namespace {

namespace fs = std::filesystem;

const HostTensor& module_weight(const LayerWeights& l, LoraModule m) {
  switch (m) {
    case LoraModule::Q: return l.q_proj;
    case LoraModule::K: return l.k_proj;
    case LoraModule::V: return l.v_proj;
    case LoraModule::O: return l.o_proj;
    case LoraModule::Gate: return l.gate_proj;
    case LoraModule::Up: return l.up_proj;
    case LoraModule::Down: return l.down_proj;
  }
  return l.q_proj;
}

// The state dict in transformers' named_parameters order (a tied head appears once).
std::vector<NamedTensor> state_dict(const Weights& w) {
  std::vector<NamedTensor> out{{"model.embed_tokens.weight", w.embed.view()}};
  auto add = [&out](const std::string& name, const HostTensor& t) {
    if (!t.empty()) out.push_back({name, t.view()});
  };
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (auto [name, weight, bias] : {std::tuple{"self_attn.q_proj", &l.q_proj, &l.q_bias}, {"self_attn.k_proj", &l.k_proj, &l.k_bias},
                                      {"self_attn.v_proj", &l.v_proj, &l.v_bias}, {"self_attn.o_proj", &l.o_proj, &l.o_bias}}) {
      add(p + name + ".weight", *weight);
      add(p + name + ".bias", *bias);
    }
    add(p + "self_attn.q_norm.weight", l.q_norm);
    add(p + "self_attn.k_norm.weight", l.k_norm);
    for (auto [name, weight, bias] : {std::tuple{"mlp.gate_proj", &l.gate_proj, &l.gate_bias}, {"mlp.up_proj", &l.up_proj, &l.up_bias},
                                      {"mlp.down_proj", &l.down_proj, &l.down_bias}}) {
      add(p + name + ".weight", *weight);
      add(p + name + ".bias", *bias);
    }
    add(p + "input_layernorm.weight", l.input_norm);
    add(p + "post_attention_layernorm.weight", l.post_attention_norm);
  }
  add("model.norm.weight", w.final_norm);
  add("lm_head.weight", w.lm_head);
  return out;
}

const char* dtype_st(MergeDtype d) { return d == MergeDtype::F32 ? "F32" : d == MergeDtype::BF16 ? "BF16" : "F16"; }
const char* dtype_torch(MergeDtype d) { return d == MergeDtype::F32 ? "float32" : d == MergeDtype::BF16 ? "bfloat16" : "float16"; }
size_t dtype_bytes(MergeDtype d) { return d == MergeDtype::F32 ? 4 : 2; }

std::vector<uint8_t> convert(const Tensor& t, MergeDtype d) {
  const float* src = t.f32();
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<uint8_t> out(n * dtype_bytes(d));
  if (d == MergeDtype::F32) {
    std::memcpy(out.data(), src, n * 4);
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = d == MergeDtype::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

void copy_side_files(const std::string& model_dir, const std::string& out_dir) {
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                        "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                        "generation_config.json"}) {
    const fs::path src = fs::path(model_dir) / f;
    if (!fs::exists(src)) continue;
    std::error_code ec;
    fs::copy_file(src, fs::path(out_dir) / f, fs::copy_options::overwrite_existing, ec);
    if (ec) fail(ErrorKind::Io, (fs::path(out_dir) / f).string(), ": cannot copy from ", src.string(), ": ", ec.message());
  }
}

void write_config(const ModelConfig& config, const std::string& model_dir, const MergeOptions& o) {
  nlohmann::json cfg = json_read_file(path_join(model_dir, "config.json"));
  cfg.erase("quantization_config");  // a bnb 4-bit base is written dense
  bool set = false;
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (cfg.contains(key)) {
      cfg[key] = dtype_torch(o.dtype);
      set = true;
    }
  }
  if (!set) cfg["torch_dtype"] = dtype_torch(o.dtype);
  file_write_atomic(path_join(o.output_dir, "config.json"), cfg.dump(2) + "\n");
  if (!file_exists(path_join(o.output_dir, "generation_config.json"))) {
    nlohmann::json gen = {{"_from_model_config", true}};
    if (config.bos_token_id) gen["bos_token_id"] = *config.bos_token_id;
    if (config.eos_token_ids.size() == 1) gen["eos_token_id"] = config.eos_token_ids[0];
    if (config.eos_token_ids.size() > 1) gen["eos_token_id"] = config.eos_token_ids;
    if (config.pad_token_id) gen["pad_token_id"] = *config.pad_token_id;
    file_write_atomic(path_join(o.output_dir, "generation_config.json"), gen.dump(2) + "\n");
  }
}

void write_model_card(const MergeOptions& o, int64_t n_params) {
  std::string card = "---\nbase_model: " + o.base_model + "\nlibrary_name: transformers\ntags:\n- kto\n- kto.cpp\n";
  if (!o.adapter.empty()) card += "- lora\n- merged\n";
  card += "---\n\n# " + fs::path(o.output_dir).lexically_normal().filename().string() + "\n\n";
  card += o.adapter.empty() ? "A copy of `" + o.base_model + "`"
                            : "The LoRA adapter `" + o.adapter + "` merged into `" + o.base_model + "`";
  card += str_cat(" (", n_params, " parameters), saved by kto.cpp as ", dtype_torch(o.dtype),
                  " safetensors. The merge is W += scale·B·A in float32 (PEFT's merge_and_unload), then cast.\n\n");
  card += "Load it with transformers:\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
          "model = AutoModelForCausalLM.from_pretrained(\"PATH\")\ntokenizer = AutoTokenizer.from_pretrained(\"PATH\")\n```\n";
  file_write_atomic(path_join(o.output_dir, "README.md"), card);
}

}  // namespace

void merge_lora_into(Weights& weights, const LoraAdapter& adapter) {
  if (weights_have_nf4(weights)) {
    fail(ErrorKind::Unsupported, "merging into NF4 projections: dequantise them first (weights_dequantize_nf4)");
  }
  if (adapter.layers.size() != weights.layers.size()) {
    fail(ErrorKind::InvalidArgument, "the adapter has ", adapter.layers.size(), " layers, the model ", weights.layers.size());
  }
  const float scale = adapter.scale();
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    for (LoraModule m : kLoraModules) {
      const LoraWeights* lw = adapter.find(static_cast<int64_t>(i), m);
      if (!lw) continue;
      const HostTensor& w = module_weight(weights.layers[i], m);
      const int64_t out = w.shape()[0], in = w.shape()[1], rank = lw->a.shape()[0];
      KTO_ASSERT(lw->a.shape()[1] == in && lw->b.shape()[0] == out && lw->b.shape()[1] == rank, "LoRA shapes");
      const float *a = lw->a.f32(), *b = lw->b.f32();
      float* dst = w.f32();
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t c = 0; c < in; ++c) {
          float sum = 0;
          for (int64_t r = 0; r < rank; ++r) sum = std::fma(b[o * rank + r], a[r * in + c], sum);
          dst[o * in + c] += sum * scale;
        }
      }
    }
  }
}

std::optional<MergeDtype> merge_dtype_parse(std::string_view name) {
  if (name == "f32" || name == "float32" || name == "fp32") return MergeDtype::F32;
  if (name == "bf16" || name == "bfloat16") return MergeDtype::BF16;
  if (name == "f16" || name == "float16" || name == "fp16") return MergeDtype::F16;
  return std::nullopt;
}

MergeDtype merge_dtype_default(const ModelConfig& config) {
  return merge_dtype_parse(config.torch_dtype).value_or(MergeDtype::BF16);
}

uint64_t merge_parse_size(const std::string& size) {
  static const std::map<std::string, double> units{{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}};
  std::string s = size;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::string unit = s.size() >= 2 ? s.substr(s.size() - 2) : "";
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  try {
    if (units.count(unit)) {
      size_t used = 0;
      const std::string number = s.substr(0, s.size() - 2);
      const double v = std::stod(number, &used);
      if (used == number.size() && v > 0) return static_cast<uint64_t>(v * units.at(unit));
    }
  } catch (const std::exception&) {
  }
  fail(ErrorKind::InvalidArgument, "max shard size \"", size, "\": expected a number and a unit KB, MB, GB or TB, e.g. 5GB");
}

void merge_save_checkpoint(const ModelConfig& config, const Weights& weights, const std::string& model_dir,
                           const MergeOptions& o) {
  if (weights_have_nf4(weights)) {
    fail(ErrorKind::Unsupported, "saving NF4 projections as a dense checkpoint: dequantise them first (weights_dequantize_nf4)");
  }
  std::error_code ec;
  fs::create_directories(o.output_dir, ec);
  if (ec) fail(ErrorKind::Io, o.output_dir, ": cannot create the directory: ", ec.message());
  // split_state_dict_into_shards_factory: a tensor over the limit gets its own shard at once;
  // otherwise a new shard starts when the next tensor would tip the current one over.
  const std::vector<NamedTensor> tensors = state_dict(weights);
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_bytes = 0, total_bytes = 0;
  int64_t n_params = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t bytes = static_cast<uint64_t>(tensors[i].tensor.numel()) * dtype_bytes(o.dtype);
    total_bytes += bytes;
    n_params += tensors[i].tensor.numel();
    if (bytes > o.max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_bytes + bytes > o.max_shard_bytes && !current.empty()) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += bytes;
  }
  if (!current.empty()) shards.push_back(std::move(current));

  const size_t n = shards.size();
  nlohmann::json weight_map = nlohmann::json::object();
  std::vector<std::string> names;
  for (size_t s = 0; s < n; ++s) {
    char shard_name[64];
    std::snprintf(shard_name, sizeof shard_name, "model-%05zu-of-%05zu.safetensors", s + 1, n);
    const std::string file = n == 1 ? "model.safetensors" : shard_name;
    names.push_back(file);
    std::vector<std::vector<uint8_t>> buffers;
    std::vector<SafetensorsWriteTensor> st;
    for (size_t i : shards[s]) {
      const Tensor& t = tensors[i].tensor;
      buffers.push_back(convert(t, o.dtype));
      st.push_back({tensors[i].name, dtype_st(o.dtype), std::vector<int64_t>(t.shape.dims.begin(), t.shape.dims.begin() + t.shape.rank),
                    buffers.back().data(), buffers.back().size()});
      weight_map[tensors[i].name] = file;
    }
    safetensors_write(path_join(o.output_dir, file), std::move(st));
  }
  // Remove what a previous save left behind (transformers deletes stale shards the same way).
  const std::regex shard_re("model(-\\d{5}-of-\\d{5})?\\.safetensors(\\.index\\.json)?");
  for (const auto& entry : fs::directory_iterator(o.output_dir)) {
    const std::string f = entry.path().filename().string();
    if (!std::regex_match(f, shard_re) || std::find(names.begin(), names.end(), f) != names.end()) continue;
    if (n > 1 && f == "model.safetensors.index.json") continue;
    fs::remove(entry.path(), ec);
  }
  if (n > 1) {
    nlohmann::json index = {{"metadata", {{"total_parameters", n_params}, {"total_size", total_bytes}}},
                            {"weight_map", weight_map}};
    file_write_atomic(path_join(o.output_dir, "model.safetensors.index.json"), index.dump(2) + "\n");
  }
  copy_side_files(model_dir, o.output_dir);
  write_config(config, model_dir, o);
  write_model_card(o, n_params);
  log_info("wrote ", o.output_dir, " (", n, n == 1 ? " safetensors file, " : " shards, ", dtype_torch(o.dtype), ")");
}

}  // namespace kto
