// Loading a Hugging Face decoder checkpoint into f32 Weights, with every name and shape checked
// against the config (transformers' PreTrainedModel.from_pretrained would report the same
// mismatches as "size mismatch" / "missing keys"; names from spec/formats.md §1.5).
#include "model/weights.h"

#include <set>

#include "formats/bnb4.h"
#include "formats/safetensors.h"
#include "util/log.h"

namespace kto {
namespace {

enum class Need { Required, Optional };

struct Slot {
  std::string name;
  Shape shape;
  HostTensor* dest;
  Need need = Need::Required;
  Nf4Tensor* nf4 = nullptr;  // projections: where an NF4 form goes (bnb-4bit file or load_in_4bit)
};

std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// The tensors of layer i that the config calls for (optional biases / norms only when enabled).
void add_layer_slots(const ModelConfig& c, int64_t i, LayerWeights& w, std::vector<Slot>& slots) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  const int64_t d = c.hidden_size, f = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  auto add = [&](const std::string& name, Shape shape, HostTensor& dest) { slots.push_back({p + name, shape, &dest}); };
  auto add_projection = [&](const std::string& name, Shape shape, size_t index) {
    slots.push_back({p + name, shape, &w.projection(index), Need::Required, &w.nf4[index]});
  };
  add("input_layernorm.weight", {d}, w.input_norm);
  add_projection("self_attn.q_proj.weight", {q, d}, 0);
  add_projection("self_attn.k_proj.weight", {kv, d}, 1);
  add_projection("self_attn.v_proj.weight", {kv, d}, 2);
  add_projection("self_attn.o_proj.weight", {d, q}, 3);
  if (c.qkv_bias) {
    add("self_attn.q_proj.bias", {q}, w.q_bias);
    add("self_attn.k_proj.bias", {kv}, w.k_bias);
    add("self_attn.v_proj.bias", {kv}, w.v_bias);
  }
  if (c.o_bias) add("self_attn.o_proj.bias", {d}, w.o_bias);
  if (c.qk_norm) {
    add("self_attn.q_norm.weight", {c.head_dim}, w.q_norm);
    add("self_attn.k_norm.weight", {c.head_dim}, w.k_norm);
  }
  add("post_attention_layernorm.weight", {d}, w.post_attention_norm);
  add_projection("mlp.gate_proj.weight", {f, d}, 4);
  add_projection("mlp.up_proj.weight", {f, d}, 5);
  add_projection("mlp.down_proj.weight", {d, f}, 6);
  if (c.mlp_bias) {
    add("mlp.gate_proj.bias", {f}, w.gate_bias);
    add("mlp.up_proj.bias", {f}, w.up_bias);
    add("mlp.down_proj.bias", {d}, w.down_bias);
  }
}

DType checkpoint_float_dtype(const SafetensorsTensor& t) {
  return t.dtype == "BF16" ? DType::BF16 : t.dtype == "F16" ? DType::F16 : DType::F32;
}

void load_slot(const Slot& slot, const SafetensorsTensor& t, const std::string& dir) {
  Shape actual;
  bool same_rank = static_cast<int>(t.shape.size()) == slot.shape.rank;
  for (int i = 0; same_rank && i < slot.shape.rank; ++i) same_rank = t.shape[static_cast<size_t>(i)] == slot.shape[i];
  if (!same_rank) {
    fail(ErrorKind::Format, dir, ": tensor ", slot.name, " has shape ", shape_str(t.shape), ", but config.json implies ",
         slot.shape.str(), "; the checkpoint and its config.json do not belong together");
  }
  *slot.dest = HostTensor(DType::F32, slot.shape);
  safetensors_to_f32(t, slot.dest->f32());
}

void warn_unused(const SafetensorsCheckpoint& ckpt, const std::set<std::string>& used) {
  std::vector<std::string> unused;
  for (const std::string& name : ckpt.names()) {
    if (!used.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos) unused.push_back(name);
  }
  if (unused.empty()) return;
  std::string list;
  for (size_t i = 0; i < unused.size() && i < 5; ++i) list += (i ? ", " : "") + unused[i];
  log_warn(ckpt.dir(), ": ", unused.size(), " checkpoint tensor(s) not used by this model: ", list,
           unused.size() > 5 ? ", …" : "");
}

}  // namespace

Weights weights_load(const ModelConfig& config, const SafetensorsCheckpoint& ckpt, const WeightsLoadOptions& options) {
  Weights w;
  w.layers.resize(static_cast<size_t>(config.n_layers));
  const int64_t v = config.vocab_size, d = config.hidden_size;
  std::vector<Slot> slots{{"model.embed_tokens.weight", {v, d}, &w.embed}};
  for (int64_t i = 0; i < config.n_layers; ++i) add_layer_slots(config, i, w.layers[static_cast<size_t>(i)], slots);
  slots.push_back({"model.norm.weight", {d}, &w.final_norm});
  const bool has_head = ckpt.find("lm_head.weight") != nullptr;
  if (!config.tie_word_embeddings && has_head) slots.push_back({"lm_head.weight", {v, d}, &w.lm_head});
  if (!config.tie_word_embeddings && !has_head) {
    log_warn(ckpt.dir(), ": no lm_head.weight although tie_word_embeddings is false; using the embedding as the head");
  }
  std::set<std::string> used;
  for (const Slot& slot : slots) {
    if (slot.nf4 && bnb4_is_quantized(ckpt, slot.name)) {
      std::vector<std::string> names;
      *slot.nf4 = bnb4_load(ckpt, slot.name, slot.shape[0], slot.shape[1], names);
      used.insert(names.begin(), names.end());
      continue;
    }
    const SafetensorsTensor* t = ckpt.find(slot.name);
    if (!t) {
      fail(ErrorKind::Format, ckpt.dir(), ": checkpoint has no tensor ", slot.name, " (expected shape ", slot.shape.str(),
           ") required by config.json (model_type ", config.model_type, ")");
    }
    load_slot(slot, *t, ckpt.dir());
    used.insert(slot.name);
    if (slot.nf4 && options.load_in_4bit) {
      Nf4QuantizeOptions nf4 = options.nf4;
      nf4.dtype = checkpoint_float_dtype(*t);
      *slot.nf4 = nf4_quantize(slot.dest->f32(), slot.shape[0], slot.shape[1], nf4);
      *slot.dest = HostTensor();
    }
  }
  if (config.tie_word_embeddings) used.insert("lm_head.weight");  // HF ignores a saved copy too
  warn_unused(ckpt, used);
  return w;
}

std::vector<NamedTensor> Weights::parameters() const {
  std::vector<NamedTensor> out{{"model.embed_tokens.weight", embed.view()}};
  auto add = [&out](const std::string& name, const HostTensor& t) {
    if (!t.empty()) out.push_back({name, t.view()});
  };
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerWeights& l = layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", l.input_norm);
    add(p + "self_attn.q_proj.weight", l.q_proj);
    add(p + "self_attn.q_proj.bias", l.q_bias);
    add(p + "self_attn.k_proj.weight", l.k_proj);
    add(p + "self_attn.k_proj.bias", l.k_bias);
    add(p + "self_attn.v_proj.weight", l.v_proj);
    add(p + "self_attn.v_proj.bias", l.v_bias);
    add(p + "self_attn.o_proj.weight", l.o_proj);
    add(p + "self_attn.o_proj.bias", l.o_bias);
    add(p + "self_attn.q_norm.weight", l.q_norm);
    add(p + "self_attn.k_norm.weight", l.k_norm);
    add(p + "post_attention_layernorm.weight", l.post_attention_norm);
    add(p + "mlp.gate_proj.weight", l.gate_proj);
    add(p + "mlp.gate_proj.bias", l.gate_bias);
    add(p + "mlp.up_proj.weight", l.up_proj);
    add(p + "mlp.up_proj.bias", l.up_bias);
    add(p + "mlp.down_proj.weight", l.down_proj);
    add(p + "mlp.down_proj.bias", l.down_bias);
  }
  add("model.norm.weight", final_norm);
  add("lm_head.weight", lm_head);
  return out;
}

}  // namespace kto

namespace kto {

HostTensor& LayerWeights::projection(size_t index) {
  std::array<HostTensor*, kProjectionCount> all{&q_proj, &k_proj, &v_proj, &o_proj, &gate_proj, &up_proj, &down_proj};
  KTO_ASSERT(index < all.size(), "projection index ", index);
  return *all[index];
}

const HostTensor& LayerWeights::projection(size_t index) const {
  return const_cast<LayerWeights*>(this)->projection(index);
}

int64_t LayerWeights::projection_rows(size_t index) const {
  return nf4[index].empty() ? projection(index).shape()[0] : nf4[index].rows;
}

void weights_quantize_nf4(Weights& weights, const Nf4QuantizeOptions& options) {
  for (LayerWeights& layer : weights.layers) {
    for (size_t i = 0; i < layer.nf4.size(); ++i) {
      HostTensor& dense = layer.projection(i);
      if (dense.empty()) continue;
      layer.nf4[i] = nf4_quantize(dense.f32(), dense.shape()[0], dense.shape()[1], options);
      dense = HostTensor();
    }
  }
}

void weights_dequantize_nf4(Weights& weights) {
  for (LayerWeights& layer : weights.layers) {
    for (size_t i = 0; i < layer.nf4.size(); ++i) {
      Nf4Tensor& q = layer.nf4[i];
      if (q.empty()) continue;
      HostTensor dense(DType::F32, Shape{q.rows, q.cols});
      nf4_dequantize(q.view(), 0, q.rows * q.cols, dense.f32());
      layer.projection(i) = std::move(dense);
      q = Nf4Tensor();
    }
  }
}

bool weights_have_nf4(const Weights& weights) {
  for (const LayerWeights& layer : weights.layers) {
    for (const Nf4Tensor& q : layer.nf4) {
      if (!q.empty()) return true;
    }
  }
  return false;
}

}  // namespace kto
