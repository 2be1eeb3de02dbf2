// LoRA adapter state, target matching, PEFT-compatible init and dropout masks; mirrors
// peft.tuners.lora (LoraConfig, check_target_module_exists, LoraLayer.update_layer /
// reset_lora_parameters). The on-disk format is in lora_peft.cpp.
#include "model/lora.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <set>

#include "util/error.h"

namespace kto {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) with 53 random bits (independent of the standard library's distributions).
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

struct ModuleDims {
  int64_t in, out;
};

ModuleDims module_dims(const ModelConfig& c, LoraModule m) {
  switch (m) {
    case LoraModule::Q: return {c.hidden_size, c.q_dim()};
    case LoraModule::K:
    case LoraModule::V: return {c.hidden_size, c.kv_dim()};
    case LoraModule::O: return {c.q_dim(), c.hidden_size};
    case LoraModule::Gate:
    case LoraModule::Up: return {c.hidden_size, c.intermediate_size};
    case LoraModule::Down: return {c.intermediate_size, c.hidden_size};
  }
  return {0, 0};
}

std::string peft_name(int64_t layer, LoraModule m, const char* which) {
  return "base_model.model." + lora_module_path(layer, m) + "." + which + ".weight";
}

// Allocates A, B and zeroed gradients of one module.
void allocate(LoraWeights& w, ModuleDims dims, int64_t rank) {
  w.a = HostTensor(DType::F32, Shape{rank, dims.in});
  w.b = HostTensor(DType::F32, Shape{dims.out, rank});
  w.d_a = HostTensor(DType::F32, Shape{rank, dims.in});
  w.d_b = HostTensor(DType::F32, Shape{dims.out, rank});
}

bool matches(const std::string& entry, const std::string& path) {
  return path == entry || (path.size() > entry.size() && path.ends_with("." + entry));
}

const std::set<std::string>& wrappable_names() {
  static const std::set<std::string> names = [] {
    std::set<std::string> s;
    for (LoraModule m : kLoraModules) s.insert(lora_module_name(m));
    return s;
  }();
  return names;
}

}  // namespace

const char* lora_module_name(LoraModule module) {
  static constexpr const char* kNames[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return kNames[static_cast<size_t>(module)];
}

std::string lora_module_path(int64_t layer, LoraModule module) {
  const bool attention = module <= LoraModule::O;
  return "model.layers." + std::to_string(layer) + (attention ? ".self_attn." : ".mlp.") + lora_module_name(module);
}

double LoraConfig::scale() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

const LoraWeights* LoraAdapter::find(int64_t layer, LoraModule module) const {
  const LoraWeights& w = layers[static_cast<size_t>(layer)][module];
  return w.enabled() ? &w : nullptr;
}

void LoraAdapter::touch() {
  static std::atomic<uint64_t> next{1};
  version = next.fetch_add(1);
}

void LoraAdapter::zero_grad() {
  for (LoraLayer& layer : layers) {
    for (LoraWeights& w : layer.modules) {
      if (!w.enabled()) continue;
      std::fill_n(w.d_a.f32(), w.d_a.numel(), 0.0f);
      std::fill_n(w.d_b.f32(), w.d_b.numel(), 0.0f);
    }
  }
}

std::vector<NamedTensor> LoraAdapter::parameters() const {
  std::vector<NamedTensor> out;
  for (size_t l = 0; l < layers.size(); ++l) {
    for (LoraModule m : kLoraModules) {
      const LoraWeights& w = layers[l][m];
      if (!w.enabled()) continue;
      out.push_back({peft_name(static_cast<int64_t>(l), m, "lora_A"), w.a.view()});
      out.push_back({peft_name(static_cast<int64_t>(l), m, "lora_B"), w.b.view()});
    }
  }
  return out;
}

std::vector<NamedTensor> LoraAdapter::gradients() const {
  std::vector<NamedTensor> out;
  for (size_t l = 0; l < layers.size(); ++l) {
    for (LoraModule m : kLoraModules) {
      const LoraWeights& w = layers[l][m];
      if (!w.enabled()) continue;
      out.push_back({peft_name(static_cast<int64_t>(l), m, "lora_A"), w.d_a.view()});
      out.push_back({peft_name(static_cast<int64_t>(l), m, "lora_B"), w.d_b.view()});
    }
  }
  return out;
}

int64_t LoraAdapter::n_params() const {
  int64_t n = 0;
  for (const NamedTensor& p : parameters()) n += p.tensor.numel();
  return n;
}

std::vector<std::array<bool, kLoraModuleCount>> lora_resolve_targets(const ModelConfig& model,
                                                                    const std::vector<std::string>& targets) {
  const bool all = std::find(targets.begin(), targets.end(), "all-linear") != targets.end();
  for (const std::string& t : targets) {
    const std::string last = t.substr(t.find_last_of('.') + 1);
    if (!all && !wrappable_names().count(last)) {
      fail(ErrorKind::Unsupported, "LoRA target module '", t,
           "' is not supported; use any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or "
           "all-linear");
    }
  }
  std::vector<std::array<bool, kLoraModuleCount>> out(static_cast<size_t>(model.n_layers));
  bool any = false;
  for (int64_t l = 0; l < model.n_layers; ++l) {
    for (LoraModule m : kLoraModules) {
      const std::string path = lora_module_path(l, m);
      bool hit = all;
      for (const std::string& t : targets) hit = hit || matches(t, path);
      out[static_cast<size_t>(l)][static_cast<size_t>(m)] = hit;
      any = any || hit;
    }
  }
  if (!any) fail(ErrorKind::InvalidArgument, "LoRA target_modules select no module of the model");
  return out;
}

LoraAdapter lora_init(const ModelConfig& model, const LoraConfig& config, uint64_t seed) {
  if (config.rank < 1) fail(ErrorKind::InvalidArgument, "LoRA rank r must be >= 1, got ", config.rank);
  if (!(config.dropout >= 0.0 && config.dropout < 1.0)) {
    fail(ErrorKind::InvalidArgument, "lora_dropout must be in [0, 1), got ", config.dropout);
  }
  const auto targets = lora_resolve_targets(model, config.target_modules);
  LoraAdapter adapter;
  adapter.config = config;
  adapter.layers.resize(static_cast<size_t>(model.n_layers));
  std::mt19937_64 rng(splitmix64(seed));
  for (int64_t l = 0; l < model.n_layers; ++l) {
    for (LoraModule m : kLoraModules) {
      if (!targets[static_cast<size_t>(l)][static_cast<size_t>(m)]) continue;
      LoraWeights& w = adapter.layers[static_cast<size_t>(l)][m];
      const ModuleDims dims = module_dims(model, m);
      allocate(w, dims, config.rank);
      // kaiming_uniform_(a=sqrt(5)): gain sqrt(2/(1+5)), bound = gain*sqrt(3/fan_in) = 1/sqrt(fan_in).
      const double bound = 1.0 / std::sqrt(static_cast<double>(dims.in));
      float* a = w.a.f32();
      for (int64_t i = 0; i < w.a.numel(); ++i) a[i] = static_cast<float>((2.0 * uniform01(rng) - 1.0) * bound);
    }
  }
  adapter.touch();
  return adapter;
}

HostTensor lora_dropout_mask(double p, int64_t rows, int64_t cols, uint64_t seed) {
  KTO_ASSERT(p >= 0.0 && p < 1.0, "dropout probability ", p, " outside [0, 1)");
  HostTensor mask(DType::F32, Shape{rows, cols});
  std::mt19937_64 rng(splitmix64(seed));
  const float keep = static_cast<float>(1.0 / (1.0 - p));
  float* m = mask.f32();
  for (int64_t i = 0; i < mask.numel(); ++i) m[i] = uniform01(rng) < p ? 0.0f : keep;
  return mask;
}

}  // namespace kto
