// A decoder layer's backward on the GPU under LoRA, the mirror of gpu_forward.cpp and op for op
// the CPU reference's (decoder_backward.cpp): MLP (down, SwiGLU, gate/up, post-attention norm),
// then attention (o_proj, softmax recomputed from q/k/v, RoPE, q/k norm, q/k/v, input norm).
// Only LoRA A/B receive gradients (fp32, accumulated); activation gradients are bf16.
#include <algorithm>
#include <cmath>
#include <tuple>

#include "backend/cuda/ops_cuda.h"
#include "model/gpu/gpu_program.h"

namespace kto {
namespace {

// d_x (store) = ∂/∂x of project(module, x) for d_out; LoRA gradients accumulate.
void project_backward(const GpuDecoder& d, int64_t layer, LoraModule module, const Tensor& x, const Tensor& d_out,
                      const Tensor& d_x, GradStore store, const GpuLayerTensors& t, const GpuBackwardScratch& s) {
  const size_t m = static_cast<size_t>(module);
  const GpuLoraModule* lora = d.lora ? d.lora->find(layer, module) : nullptr;
  LoraLinearBackwardArgs args;
  args.x = x, args.weight = gpu_projection(*d.ctx, *d.weights, layer, module), args.d_out = d_out, args.d_x = d_x, args.store = store;
  if (lora) {
    args.lora_a = lora->a, args.lora_b = lora->b, args.dropout_mask = t.mask[m], args.xa = t.xa[m];
    args.d_lora_a = lora->d_a, args.d_lora_b = lora->d_b, args.scale = d.lora->scale;
  }
  lora_linear_backward_cuda(args, s.lora_ws, *d.ctx);
}

Tensor as_heads(const Tensor& t, int64_t head_dim) {
  return Tensor{t.data, t.dtype, Shape{t.numel() / head_dim, head_dim}, Device::Cuda};
}

// From d_attn (s.d_attn) to the gradients of q and k before RoPE and of v (s.d_q, s.d_k, s.d_v):
// the attention backward (softmax recomputed) and the inverse rotations. Shared by both backwards.
void softmax_rope_backward(const GpuDecoder& d, int64_t layer, const GpuPassInputs& in, const GpuLayerTensors& t,
                           const GpuBackwardScratch& s) {
  const ModelConfig& c = *d.config;
  CudaContext& ctx = *d.ctx;
  const size_t l = static_cast<size_t>(layer);
  AttentionBackwardArgs attention;
  attention.q = t.q, attention.k = t.k, attention.v = t.v;
  attention.q_starts = in.q_starts, attention.k_starts = in.k_starts, attention.d_out = s.d_attn;
  attention.d_q = s.d_q, attention.d_k = s.d_k, attention.d_v = s.d_v;
  attention.n_heads = c.n_heads, attention.n_heads_kv = c.n_heads_kv, attention.head_dim = c.head_dim;
  attention.window = l < c.layer_window.size() ? c.layer_window[l] : 0;
  attention.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  attention_backward_cuda(attention, s.attn_ws, ctx);
  rope_backward_cuda({s.d_q, in.positions, d.weights->inv_freq, c.n_heads, c.head_dim}, ctx);
  rope_backward_cuda({s.d_k, in.positions, d.weights->inv_freq, c.n_heads_kv, c.head_dim}, ctx);
}

}  // namespace

GpuBackwardScratch gpu_carve_backward(GpuArena& a, const ModelConfig& c, const GpuLora* lora, int64_t n_tokens) {
  const int64_t t = n_tokens;
  GpuBackwardScratch s;
  s.d_h = a.take(DType::BF16, Shape{t, c.hidden_size});
  s.d_x1 = a.take(DType::BF16, Shape{t, c.hidden_size});
  s.d_x2 = a.take(DType::BF16, Shape{t, c.hidden_size});
  s.d_attn = a.take(DType::BF16, Shape{t, c.q_dim()});
  s.d_q = a.take(DType::BF16, Shape{t, c.q_dim()});
  s.d_k = a.take(DType::BF16, Shape{t, c.kv_dim()});
  s.d_v = a.take(DType::BF16, Shape{t, c.kv_dim()});
  s.d_act = a.take(DType::BF16, Shape{t, c.intermediate_size});
  s.d_up = a.take(DType::BF16, Shape{t, c.intermediate_size});
  s.attn_ws = a.take(DType::U8, Shape{attention_backward_workspace_bytes_cuda(t, c.n_heads)});
  const int64_t widest = std::max({c.hidden_size, c.q_dim(), c.intermediate_size});
  const int64_t rank = lora ? std::max<int64_t>(lora->max_rank, 1) : 1;
  s.lora_ws = a.take(DType::U8, Shape{lora_linear_workspace_bytes_cuda(t, widest, rank)});
  s.norm_ws = a.take(DType::U8, Shape{rms_norm_weight_backward_workspace_bytes_cuda(t * std::max<int64_t>(c.n_heads, 1))});
  return s;
}

void gpu_layer_backward(const GpuDecoder& d, int64_t layer, const GpuPassInputs& in, const GpuLayerTensors& t,
                        const GpuBackwardScratch& s) {
  const ModelConfig& c = *d.config;
  const GpuLayerWeights& w = d.weights->layers[static_cast<size_t>(layer)];
  CudaContext& ctx = *d.ctx;
  const float eps = static_cast<float>(c.rms_norm_eps);
  // MLP: d_h is ∂/∂next; the residual passes it through, the MLP path adds into it.
  project_backward(d, layer, LoraModule::Down, t.act, s.d_h, s.d_act, GradStore::Overwrite, t, s);
  swiglu_backward_cuda({t.gate, t.up, s.d_act, s.d_act, s.d_up}, ctx);
  project_backward(d, layer, LoraModule::Gate, t.x_norm2, s.d_act, s.d_x2, GradStore::Overwrite, t, s);
  project_backward(d, layer, LoraModule::Up, t.x_norm2, s.d_up, s.d_x2, GradStore::Accumulate, t, s);
  rms_norm_backward_cuda({t.h_mid, w.post_attention_norm, s.d_x2, s.d_h, eps, GradStore::Accumulate}, ctx);
  // Attention: d_h is now ∂/∂h_mid.
  project_backward(d, layer, LoraModule::O, t.attn, s.d_h, s.d_attn, GradStore::Overwrite, t, s);
  softmax_rope_backward(d, layer, in, t, s);
  if (c.qk_norm) {
    rms_norm_backward_cuda({as_heads(t.q_raw, c.head_dim), w.q_norm, as_heads(s.d_q, c.head_dim),
                            as_heads(s.d_q, c.head_dim), eps, GradStore::Overwrite},
                           ctx);
    rms_norm_backward_cuda({as_heads(t.k_raw, c.head_dim), w.k_norm, as_heads(s.d_k, c.head_dim),
                            as_heads(s.d_k, c.head_dim), eps, GradStore::Overwrite},
                           ctx);
  }
  project_backward(d, layer, LoraModule::Q, t.x_norm1, s.d_q, s.d_x1, GradStore::Overwrite, t, s);
  project_backward(d, layer, LoraModule::K, t.x_norm1, s.d_k, s.d_x1, GradStore::Accumulate, t, s);
  project_backward(d, layer, LoraModule::V, t.x_norm1, s.d_v, s.d_x1, GradStore::Accumulate, t, s);
  if (layer == 0) return;  // the input is the frozen embedding
  rms_norm_backward_cuda({t.x, w.input_norm, s.d_x1, s.d_h, eps, GradStore::Accumulate}, ctx);
}

namespace {

// nn.Linear backward of `module` with its weight and bias gradients (full fine-tuning).
void linear_backward(const GpuDecoder& d, int64_t layer, LoraModule module, const Tensor& x, const Tensor& d_out,
                     const Tensor& d_x, GradStore store, const GpuLayerWeights& grads) {
  const size_t m = static_cast<size_t>(module);
  LinearBackwardArgs args;
  args.x = x, args.weight = d.weights->layers[static_cast<size_t>(layer)].proj[m], args.d_out = d_out, args.d_x = d_x;
  args.d_weight = grads.proj[m], args.d_bias = grads.bias[m], args.store = store;
  linear_backward_cuda(args, *d.ctx);
}

}  // namespace

void gpu_layer_backward_full(const GpuDecoder& d, int64_t layer, const GpuPassInputs& in, const GpuLayerTensors& t,
                             const GpuBackwardScratch& s, const GpuLayerWeights& g) {
  const ModelConfig& c = *d.config;
  const GpuLayerWeights& w = d.weights->layers[static_cast<size_t>(layer)];
  CudaContext& ctx = *d.ctx;
  const float eps = static_cast<float>(c.rms_norm_eps);
  linear_backward(d, layer, LoraModule::Down, t.act, s.d_h, s.d_act, GradStore::Overwrite, g);
  swiglu_backward_cuda({t.gate, t.up, s.d_act, s.d_act, s.d_up}, ctx);
  linear_backward(d, layer, LoraModule::Gate, t.x_norm2, s.d_act, s.d_x2, GradStore::Overwrite, g);
  linear_backward(d, layer, LoraModule::Up, t.x_norm2, s.d_up, s.d_x2, GradStore::Accumulate, g);
  rms_norm_weight_backward_cuda({t.h_mid, s.d_x2, g.post_attention_norm, eps}, s.norm_ws, ctx);
  rms_norm_backward_cuda({t.h_mid, w.post_attention_norm, s.d_x2, s.d_h, eps, GradStore::Accumulate}, ctx);
  linear_backward(d, layer, LoraModule::O, t.attn, s.d_h, s.d_attn, GradStore::Overwrite, g);
  softmax_rope_backward(d, layer, in, t, s);
  if (c.qk_norm) {
    for (auto [raw, grad, weight, d_weight] : {std::tuple{t.q_raw, s.d_q, w.q_norm, g.q_norm},
                                               std::tuple{t.k_raw, s.d_k, w.k_norm, g.k_norm}}) {
      rms_norm_weight_backward_cuda({as_heads(raw, c.head_dim), as_heads(grad, c.head_dim), d_weight, eps}, s.norm_ws, ctx);
      rms_norm_backward_cuda({as_heads(raw, c.head_dim), weight, as_heads(grad, c.head_dim), as_heads(grad, c.head_dim),
                              eps, GradStore::Overwrite},
                             ctx);
    }
  }
  linear_backward(d, layer, LoraModule::Q, t.x_norm1, s.d_q, s.d_x1, GradStore::Overwrite, g);
  linear_backward(d, layer, LoraModule::K, t.x_norm1, s.d_k, s.d_x1, GradStore::Accumulate, g);
  linear_backward(d, layer, LoraModule::V, t.x_norm1, s.d_v, s.d_x1, GradStore::Accumulate, g);
  rms_norm_weight_backward_cuda({t.x, s.d_x1, g.input_norm, eps}, s.norm_ws, ctx);
  rms_norm_backward_cuda({t.x, w.input_norm, s.d_x1, s.d_h, eps, GradStore::Accumulate}, ctx);
}

}  // namespace kto
