// LoRA adapters on the seven decoder projections, as PEFT's LoraModel / lora.Linear hold them:
// per layer and targeted module an A [R, in] and a B [out, R] (fp32 master weights) with their
// gradients, scale alpha/r (or alpha/sqrt(r) with rsLoRA), PEFT's init (A kaiming-uniform with
// a = sqrt(5), i.e. U(±1/sqrt(in)), B = 0) and PEFT's on-disk adapter format (spec/formats.md §3:
// adapter_config.json + adapter_model.safetensors with base_model.model.… names).
// Thread-safety: an adapter is plain data; the trainer owns it and serialises updates.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace kto {

// The projections LoRA can wrap, in decoder order.
enum class LoraModule : uint8_t { Q, K, V, O, Gate, Up, Down };
constexpr int kLoraModuleCount = 7;
constexpr std::array<LoraModule, kLoraModuleCount> kLoraModules{LoraModule::Q,    LoraModule::K,  LoraModule::V,
                                                                 LoraModule::O,    LoraModule::Gate, LoraModule::Up,
                                                                 LoraModule::Down};
const char* lora_module_name(LoraModule module);  // "q_proj", …, "down_proj"
std::string lora_module_path(int64_t layer, LoraModule module);  // "model.layers.3.self_attn.q_proj"

// PEFT LoraConfig fields we support (names as in adapter_config.json).
struct LoraConfig {
  int64_t rank = 8;            // r
  double alpha = 8.0;          // lora_alpha
  double dropout = 0.0;        // lora_dropout (p); training forwards only
  bool use_rslora = false;     // scale alpha/sqrt(r) instead of alpha/r
  std::vector<std::string> target_modules{"all-linear"};  // suffixes (PEFT matching) or "all-linear"
  std::string base_model_name_or_path;

  double scale() const;
};

// One wrapped projection. Empty tensors when the module is not targeted.
struct LoraWeights {
  HostTensor a;    // [R, in]  f32  lora_A.weight
  HostTensor b;    // [out, R] f32  lora_B.weight
  HostTensor d_a;  // [R, in]  f32  accumulated gradient
  HostTensor d_b;  // [out, R] f32  accumulated gradient

  bool enabled() const { return !a.empty(); }
};

struct LoraLayer {
  std::array<LoraWeights, kLoraModuleCount> modules;
  LoraWeights& operator[](LoraModule m) { return modules[static_cast<size_t>(m)]; }
  const LoraWeights& operator[](LoraModule m) const { return modules[static_cast<size_t>(m)]; }
};

struct LoraAdapter {
  LoraConfig config;
  std::vector<LoraLayer> layers;  // [L]
  // Names the current values of every A and B for device mirrors (model/gpu/), which re-upload
  // when it changes: touch() after changing them (lora_init, lora_load_peft and the trainer's
  // updates do). 0 = unknown: a mirror then uploads on every use.
  uint64_t version = 0;
  void touch();  // a new process-wide unique version

  float scale() const { return static_cast<float>(config.scale()); }
  // The module's weights, or nullptr when it is not targeted.
  const LoraWeights* find(int64_t layer, LoraModule module) const;
  void zero_grad();
  // Every A and B (and their gradients) under the PEFT file names
  // "base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight", in layer, module, A-then-B order.
  std::vector<NamedTensor> parameters() const;
  std::vector<NamedTensor> gradients() const;
  int64_t n_params() const;
};

// The modules `targets` selects in every layer; "all-linear" selects all seven. A list entry
// matches a module path when it equals it or is a dot-separated suffix of it (PEFT
// check_target_module_exists). InvalidArgument / Unsupported when nothing matches or an entry
// names a module we cannot wrap (lm_head, embed_tokens, a regex).
std::vector<std::array<bool, kLoraModuleCount>> lora_resolve_targets(const ModelConfig& model,
                                                                    const std::vector<std::string>& targets);

// A fresh adapter: A from PEFT's kaiming_uniform_(a=sqrt(5)) distribution U(-1/sqrt(in), 1/sqrt(in))
// drawn from `seed` (deterministic, not torch's stream), B = 0, gradients 0.
LoraAdapter lora_init(const ModelConfig& model, const LoraConfig& config, uint64_t seed);

// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors as PEFT's save_pretrained
// does (F32 tensors, metadata {"format": "pt"}); creates DIR. Throws kto::Error(Io).
void lora_save_peft(const LoraAdapter& adapter, const std::string& dir);
// Reads a PEFT LoRA adapter directory for `model`. Throws kto::Error: NotFound (files), Format
// (missing tensor, wrong shape), Unsupported (DoRA, bias, rank/alpha patterns, other targets).
LoraAdapter lora_load_peft(const std::string& dir, const ModelConfig& model);

// Inverted-dropout mask [rows, cols] f32 (0 with probability p, else 1/(1-p)) from a seed,
// as nn.Dropout in training mode scales it. p must be in [0, 1).
HostTensor lora_dropout_mask(double p, int64_t rows, int64_t cols, uint64_t seed);

}  // namespace kto
