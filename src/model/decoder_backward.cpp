// Decoder backward over a packed batch, the mirror image of decoder_forward.cpp: final norm,
// then per layer (last first) MLP → post-attention norm → attention (o_proj, softmax, RoPE, q/k
// norm, q/k/v) → input norm, the residual stream's gradient d_h flowing straight through each
// residual add. Mirrors the autograd of transformers' LlamaDecoderLayer.forward with PEFT
// lora.Linear projections (only LoRA A/B receive gradients) or, for full fine-tuning, with every
// weight trainable (projections, norms, embedding).
#include "model/decoder_backward.h"

#include <cmath>
#include <utility>

#include "backend/ops.h"

namespace kto {
namespace {

Tensor i32_view(const std::vector<int32_t>& values) {
  return Tensor{const_cast<int32_t*>(values.data()), DType::I32, Shape{static_cast<int64_t>(values.size())}};
}

Tensor view_or_empty(const HostTensor& t) { return t.empty() ? Tensor{} : t.view(); }

// Exactly one of `adapter` (LoRA: A/B gradients) and `grads` (full fine-tuning: the layer's
// weight gradients) is set.
struct LayerBackward {
  const Decoder* decoder;
  const PackedBatch* batch;
  const LayerSaved* saved;
  LoraAdapter* adapter;
  int64_t layer;
  LayerWeights* grads = nullptr;
};

// The weight and bias gradient buffers of `module` in a layer's gradients.
std::pair<HostTensor*, HostTensor*> module_grads(LayerWeights& g, LoraModule module) {
  switch (module) {
    case LoraModule::Q: return {&g.q_proj, &g.q_bias};
    case LoraModule::K: return {&g.k_proj, &g.k_bias};
    case LoraModule::V: return {&g.v_proj, &g.v_bias};
    case LoraModule::O: return {&g.o_proj, &g.o_bias};
    case LoraModule::Gate: return {&g.gate_proj, &g.gate_bias};
    case LoraModule::Up: return {&g.up_proj, &g.up_bias};
    case LoraModule::Down: return {&g.down_proj, &g.down_bias};
  }
  return {nullptr, nullptr};
}

// d_x (store) = backward of project(module, x, weight) for d_out; LoRA grads or, in full
// fine-tuning, the weight and bias gradients accumulate.
void project_backward(const LayerBackward& ctx, LoraModule module, const HostTensor& x, const HostTensor& weight,
                      const HostTensor& d_out, const Tensor& d_x, GradStore store) {
  const Nf4Tensor& nf4 = ctx.decoder->weights->layers[static_cast<size_t>(ctx.layer)].nf4[static_cast<size_t>(module)];
  if (ctx.grads) {
    KTO_ASSERT(nf4.empty(), "full fine-tuning of an NF4 projection (", lora_module_path(ctx.layer, module), ")");
    auto [d_weight, d_bias] = module_grads(*ctx.grads, module);
    linear_backward_cpu({x.view(), weight.view(), d_out.view(), d_x, d_weight->view(), view_or_empty(*d_bias), store});
    return;
  }
  LoraWeights& lora = ctx.adapter->layers[static_cast<size_t>(ctx.layer)][module];
  const LoraSaved& keep = ctx.saved->lora[static_cast<size_t>(module)];
  KTO_ASSERT(lora.enabled() == !keep.xa.empty(), "LoRA module ", lora_module_path(ctx.layer, module),
             ": adapter differs from the one the forward ran with");
  lora_linear_backward_cpu({x.view(), weight.view(), view_or_empty(lora.a), view_or_empty(lora.b),
                            view_or_empty(keep.dropout_mask), view_or_empty(keep.xa), d_out.view(), d_x,
                            view_or_empty(lora.d_a), view_or_empty(lora.d_b), ctx.adapter->scale(), store,
                            nf4.empty() ? Nf4View{} : nf4.view()});
}

// MLP of one layer: d_h is ∂/∂(residual after the layer); adds the path through
// post_attention_layernorm into d_h (the residual path is the identity).
void mlp_backward(const LayerBackward& ctx, const LayerWeights& w, HostTensor& d_h) {
  const ModelConfig& c = *ctx.decoder->config;
  const LayerSaved& s = *ctx.saved;
  HostTensor d_act(DType::F32, s.act.shape());  // [T, F], then d_gate
  project_backward(ctx, LoraModule::Down, s.act, w.down_proj, d_h, d_act.view(), GradStore::Overwrite);
  HostTensor d_up(DType::F32, s.up.shape());  // [T, F]
  swiglu_backward_cpu({s.gate.view(), s.up.view(), d_act.view(), d_act.view(), d_up.view()});
  HostTensor d_x2(DType::F32, s.x_norm2.shape());  // [T, D]
  project_backward(ctx, LoraModule::Gate, s.x_norm2, w.gate_proj, d_act, d_x2.view(), GradStore::Overwrite);
  project_backward(ctx, LoraModule::Up, s.x_norm2, w.up_proj, d_up, d_x2.view(), GradStore::Accumulate);
  if (ctx.grads) {
    rms_norm_weight_backward_cpu({s.h_mid.view(), d_x2.view(), ctx.grads->post_attention_norm.view(),
                                  static_cast<float>(c.rms_norm_eps)});
  }
  rms_norm_backward_cpu({s.h_mid.view(), w.post_attention_norm.view(), d_x2.view(), d_h.view(),
                         static_cast<float>(c.rms_norm_eps), GradStore::Accumulate});
}

// Qwen3: RMSNorm over each head, backward in place on d [T, heads*Dh] with the pre-norm input;
// the norm weight's gradient accumulates into d_weight when given (full fine-tuning).
void head_norm_backward(const HostTensor& x_raw, const HostTensor& weight, HostTensor& d, const ModelConfig& c,
                        HostTensor* d_weight) {
  const Shape heads{d.numel() / c.head_dim, c.head_dim};
  const Tensor x_view{x_raw.f32(), DType::F32, heads}, d_view{d.f32(), DType::F32, heads};
  if (d_weight) rms_norm_weight_backward_cpu({x_view, d_view, d_weight->view(), static_cast<float>(c.rms_norm_eps)});
  rms_norm_backward_cpu({x_view, weight.view(), d_view, d_view, static_cast<float>(c.rms_norm_eps),
                         GradStore::Overwrite});
}

// Attention of one layer; adds the path through input_layernorm into d_h unless this is the
// first layer under LoRA (whose input is the frozen embedding). Full fine-tuning always adds it
// (the embedding is trained) and accumulates input_layernorm's weight gradient.
void attention_backward(const LayerBackward& ctx, const LayerWeights& w, HostTensor& d_h) {
  const ModelConfig& c = *ctx.decoder->config;
  const LayerSaved& s = *ctx.saved;
  HostTensor d_attn(DType::F32, s.attn.shape());  // [T, H*Dh]
  project_backward(ctx, LoraModule::O, s.attn, w.o_proj, d_h, d_attn.view(), GradStore::Overwrite);
  HostTensor d_q(DType::F32, s.q.shape()), d_k(DType::F32, s.k.shape()), d_v(DType::F32, s.v.shape());
  const size_t l = static_cast<size_t>(ctx.layer);
  const int64_t window = l < c.layer_window.size() ? c.layer_window[l] : 0;
  const Tensor starts = i32_view(ctx.batch->seq_starts);
  attention_backward_cpu({s.q.view(), s.k.view(), s.v.view(), starts, starts, d_attn.view(), d_q.view(), d_k.view(),
                          d_v.view(), c.n_heads, c.n_heads_kv, c.head_dim, window,
                          static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)))});
  const Tensor positions = i32_view(ctx.batch->positions);
  rope_backward_cpu({d_q.view(), positions, ctx.decoder->inv_freq, c.n_heads, c.head_dim});
  rope_backward_cpu({d_k.view(), positions, ctx.decoder->inv_freq, c.n_heads_kv, c.head_dim});
  if (c.qk_norm) {
    head_norm_backward(s.q_raw, w.q_norm, d_q, c, ctx.grads ? &ctx.grads->q_norm : nullptr);
    head_norm_backward(s.k_raw, w.k_norm, d_k, c, ctx.grads ? &ctx.grads->k_norm : nullptr);
  }
  HostTensor d_x1(DType::F32, s.x_norm1.shape());  // [T, D]
  project_backward(ctx, LoraModule::Q, s.x_norm1, w.q_proj, d_q, d_x1.view(), GradStore::Overwrite);
  project_backward(ctx, LoraModule::K, s.x_norm1, w.k_proj, d_k, d_x1.view(), GradStore::Accumulate);
  project_backward(ctx, LoraModule::V, s.x_norm1, w.v_proj, d_v, d_x1.view(), GradStore::Accumulate);
  if (ctx.grads) {
    rms_norm_weight_backward_cpu({s.x.view(), d_x1.view(), ctx.grads->input_norm.view(), static_cast<float>(c.rms_norm_eps)});
  } else if (ctx.layer == 0) {
    return;
  }
  rms_norm_backward_cpu({s.x.view(), w.input_norm.view(), d_x1.view(), d_h.view(), static_cast<float>(c.rms_norm_eps),
                         GradStore::Accumulate});
}

}  // namespace

void decoder_backward(const Decoder& decoder, const PackedBatch& batch, const DecoderSaved& saved,
                      const Tensor& d_hidden, LoraAdapter& adapter) {
  const ModelConfig& c = *decoder.config;
  const Weights& weights = *decoder.weights;
  KTO_ASSERT(decoder.lora == &adapter, "decoder_backward: the adapter must be the one the forward ran with");
  KTO_ASSERT(static_cast<int64_t>(saved.layers.size()) == c.n_layers, "decoder_backward: no saved forward");
  KTO_ASSERT(d_hidden.shape == saved.hidden.shape(), "decoder_backward: d_hidden ", d_hidden.shape.str(),
             " does not match the hidden states ", saved.hidden.shape().str());
  HostTensor d_h(DType::F32, saved.x_final.shape());  // [T, D] ∂loss/∂(residual stream)
  rms_norm_backward_cpu({saved.x_final.view(), weights.final_norm.view(), d_hidden, d_h.view(),
                         static_cast<float>(c.rms_norm_eps), GradStore::Overwrite});
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    const LayerWeights& w = weights.layers[static_cast<size_t>(l)];
    const LayerBackward ctx{&decoder, &batch, &saved.layers[static_cast<size_t>(l)], &adapter, l};
    mlp_backward(ctx, w, d_h);
    attention_backward(ctx, w, d_h);
  }
}

void decoder_backward_full(const Decoder& decoder, const PackedBatch& batch, const DecoderSaved& saved,
                           const Tensor& d_hidden, Weights& grads) {
  const ModelConfig& c = *decoder.config;
  const Weights& weights = *decoder.weights;
  KTO_ASSERT(decoder.lora == nullptr, "decoder_backward_full: full fine-tuning runs without an adapter");
  KTO_ASSERT(static_cast<int64_t>(saved.layers.size()) == c.n_layers, "decoder_backward_full: no saved forward");
  KTO_ASSERT(static_cast<int64_t>(grads.layers.size()) == c.n_layers && grads.embed.shape() == weights.embed.shape(),
             "decoder_backward_full: gradients do not match the model (use weights_zeros_like)");
  KTO_ASSERT(d_hidden.shape == saved.hidden.shape(), "decoder_backward_full: d_hidden ", d_hidden.shape.str(),
             " does not match the hidden states ", saved.hidden.shape().str());
  const float eps = static_cast<float>(c.rms_norm_eps);
  rms_norm_weight_backward_cpu({saved.x_final.view(), d_hidden, grads.final_norm.view(), eps});
  HostTensor d_h(DType::F32, saved.x_final.shape());  // [T, D] ∂loss/∂(residual stream)
  rms_norm_backward_cpu({saved.x_final.view(), weights.final_norm.view(), d_hidden, d_h.view(), eps, GradStore::Overwrite});
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    const LayerWeights& w = weights.layers[static_cast<size_t>(l)];
    const LayerBackward ctx{&decoder, &batch, &saved.layers[static_cast<size_t>(l)], nullptr, l,
                            &grads.layers[static_cast<size_t>(l)]};
    mlp_backward(ctx, w, d_h);
    attention_backward(ctx, w, d_h);
  }
  embedding_backward_cpu({i32_view(batch.tokens), d_h.view(), grads.embed.view()});
}

}  // namespace kto
