// A decoder layer's forward on the GPU, op for op the CPU reference's (decoder_forward.cpp):
// input_layernorm → q/k/v (+LoRA) → q/k norm (Qwen3) → RoPE → varlen causal GQA attention →
// o_proj → residual → post_attention_layernorm → gate/up (+LoRA) → SwiGLU → down → residual.
#include <algorithm>
#include <cmath>

#include "backend/cuda/ops_cuda.h"
#include "model/gpu/gpu_program.h"

namespace kto {
namespace {

int64_t in_features(const ModelConfig& c, LoraModule m) {
  switch (m) {
    case LoraModule::O: return c.q_dim();
    case LoraModule::Down: return c.intermediate_size;
    default: return c.hidden_size;
  }
}

int64_t widest_input(const ModelConfig& c) { return std::max({c.hidden_size, c.q_dim(), c.intermediate_size}); }

// y = x · Wᵀ (+ b) (+ the module's LoRA path). x [T, in], y [T, out].
void project(const GpuDecoder& d, int64_t layer, LoraModule module, const Tensor& x, const Tensor& y,
             const GpuLayerTensors& t, const GpuLayerScratch& s) {
  const GpuLayerWeights& w = d.weights->layers[static_cast<size_t>(layer)];
  const size_t m = static_cast<size_t>(module);
  const GpuLoraModule* lora = d.lora ? d.lora->find(layer, module) : nullptr;
  const Tensor weight = gpu_projection(*d.ctx, *d.weights, layer, module);
  if (!lora) {
    linear_forward_cuda({x, weight, w.bias[m], y}, *d.ctx);
    return;
  }
  LoraLinearArgs args;
  args.x = x, args.weight = weight, args.bias = w.bias[m];
  args.lora_a = lora->a, args.lora_b = lora->b, args.dropout_mask = t.mask[m];
  args.xa = t.xa[m], args.out = y, args.scale = d.lora->scale;
  lora_linear_forward_cuda(args, s.lora_ws, *d.ctx);
}

// RMSNorm over each Dh-wide head of a [T, heads*Dh] tensor (Qwen3 q/k norm).
void head_norm(const GpuDecoder& d, const Tensor& x, const Tensor& out, const Tensor& weight) {
  const int64_t dh = d.config->head_dim;
  const Shape heads{x.numel() / dh, dh};
  rms_norm_forward_cuda({Tensor{x.data, x.dtype, heads, Device::Cuda}, weight, Tensor{out.data, out.dtype, heads, Device::Cuda},
                         static_cast<float>(d.config->rms_norm_eps)},
                        *d.ctx);
}

}  // namespace

GpuPassInputs gpu_carve_inputs(GpuArena& arena, int64_t n_tokens, int64_t n_sequences) {
  GpuPassInputs in;
  in.n_tokens = n_tokens;
  in.tokens = arena.take(DType::I32, Shape{n_tokens});
  in.positions = arena.take(DType::I32, Shape{n_tokens});
  in.q_starts = arena.take(DType::I32, Shape{n_sequences + 1});
  in.k_starts = arena.take(DType::I32, Shape{n_sequences + 1});
  return in;
}

GpuLayerTensors gpu_carve_layer(GpuArena& a, const ModelConfig& c, const GpuLora* lora, int64_t layer,
                                int64_t n_tokens, GpuPassKind kind, bool with_masks) {
  const int64_t t = n_tokens;
  const bool per_layer = kind == GpuPassKind::Training;  // this layer's own ranks
  const bool training = per_layer || kind == GpuPassKind::Recompute;
  GpuLayerTensors out;
  out.x = a.take(DType::BF16, Shape{t, c.hidden_size});
  out.x_norm1 = a.take(DType::BF16, Shape{t, c.hidden_size});
  out.q = a.take(DType::BF16, Shape{t, c.q_dim()});
  if (kind != GpuPassKind::Decode) {
    out.k = a.take(DType::BF16, Shape{t, c.kv_dim()});
    out.v = a.take(DType::BF16, Shape{t, c.kv_dim()});
  }
  out.q_raw = out.q, out.k_raw = out.k;
  if (training && c.qk_norm) {
    out.q_raw = a.take(DType::BF16, Shape{t, c.q_dim()});
    out.k_raw = a.take(DType::BF16, Shape{t, c.kv_dim()});
  }
  out.attn = a.take(DType::BF16, Shape{t, c.q_dim()});
  out.h_mid = training ? a.take(DType::BF16, Shape{t, c.hidden_size}) : out.x;
  out.x_norm2 = a.take(DType::BF16, Shape{t, c.hidden_size});
  out.gate = a.take(DType::BF16, Shape{t, c.intermediate_size});
  out.up = a.take(DType::BF16, Shape{t, c.intermediate_size});
  out.act = training ? a.take(DType::BF16, Shape{t, c.intermediate_size}) : out.gate;
  out.next = out.x;  // training: the caller points it at the next layer's x
  for (LoraModule m : kLoraModules) {
    // A training pass carves its layer's modules; a shared set the widest rank of any layer.
    int64_t rank = 0;
    for (int64_t l = per_layer ? layer : 0; lora && l < (per_layer ? layer + 1 : c.n_layers); ++l) {
      if (const GpuLoraModule* mod = lora->find(l, m)) rank = std::max(rank, mod->a.shape[0]);
    }
    if (rank == 0) continue;
    out.xa[static_cast<size_t>(m)] = a.take(DType::BF16, Shape{t, rank});
    if (with_masks) out.mask[static_cast<size_t>(m)] = a.take(DType::BF16, Shape{t, in_features(c, m)});
  }
  return out;
}

GpuLayerTensors gpu_layer_view(const GpuLayerTensors& shared, const GpuLora* lora, int64_t layer) {
  GpuLayerTensors t = shared;
  for (LoraModule m : kLoraModules) {
    Tensor& xa = t.xa[static_cast<size_t>(m)];
    const GpuLoraModule* mod = lora ? lora->find(layer, m) : nullptr;
    xa = mod ? Tensor{xa.data, DType::BF16, Shape{xa.shape[0], mod->a.shape[0]}, Device::Cuda} : Tensor{};
  }
  return t;
}

GpuLayerScratch gpu_carve_layer_scratch(GpuArena& a, const ModelConfig& c, const GpuLora* lora, int64_t n_tokens) {
  GpuLayerScratch s;
  s.o = a.take(DType::BF16, Shape{n_tokens, c.hidden_size});
  s.down = a.take(DType::BF16, Shape{n_tokens, c.hidden_size});
  if (lora && lora->max_rank > 0) {
    s.lora_ws = a.take(DType::U8, Shape{lora_linear_workspace_bytes_cuda(n_tokens, widest_input(c), lora->max_rank)});
  }
  return s;
}

void gpu_layer_forward(const GpuDecoder& d, int64_t layer, const GpuPassInputs& in, const GpuLayerTensors& t,
                       const GpuLayerScratch& s, const Tensor& k_all, const Tensor& v_all,
                       const GpuKeyAssembly* assemble) {
  const ModelConfig& c = *d.config;
  const GpuLayerWeights& w = d.weights->layers[static_cast<size_t>(layer)];
  CudaContext& ctx = *d.ctx;
  const float eps = static_cast<float>(c.rms_norm_eps);
  rms_norm_forward_cuda({t.x, w.input_norm, t.x_norm1, eps}, ctx);
  project(d, layer, LoraModule::Q, t.x_norm1, t.q_raw, t, s);
  project(d, layer, LoraModule::K, t.x_norm1, t.k_raw, t, s);
  project(d, layer, LoraModule::V, t.x_norm1, t.v, t, s);
  if (c.qk_norm) {
    head_norm(d, t.q_raw, t.q, w.q_norm);
    head_norm(d, t.k_raw, t.k, w.k_norm);
  }
  rope_forward_cuda({t.q, in.positions, d.weights->inv_freq, c.n_heads, c.head_dim}, ctx);
  rope_forward_cuda({t.k, in.positions, d.weights->inv_freq, c.n_heads_kv, c.head_dim}, ctx);
  if (assemble) {
    gather_rows_cuda({assemble->kept_k, t.k, assemble->index, k_all}, ctx);
    gather_rows_cuda({assemble->kept_v, t.v, assemble->index, v_all}, ctx);
  }
  const size_t l = static_cast<size_t>(layer);
  AttentionArgs attention;
  attention.q = t.q, attention.k = k_all, attention.v = v_all;
  attention.q_starts = in.q_starts, attention.k_starts = in.k_starts, attention.out = t.attn;
  attention.n_heads = c.n_heads, attention.n_heads_kv = c.n_heads_kv, attention.head_dim = c.head_dim;
  attention.window = l < c.layer_window.size() ? c.layer_window[l] : 0;
  attention.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  attention_forward_cuda(attention, ctx);
  project(d, layer, LoraModule::O, t.attn, s.o, t, s);
  add_forward_cuda({t.x, s.o, t.h_mid}, ctx);
  rms_norm_forward_cuda({t.h_mid, w.post_attention_norm, t.x_norm2, eps}, ctx);
  project(d, layer, LoraModule::Gate, t.x_norm2, t.gate, t, s);
  project(d, layer, LoraModule::Up, t.x_norm2, t.up, t, s);
  swiglu_forward_cuda({t.gate, t.up, t.act}, ctx);
  project(d, layer, LoraModule::Down, t.act, s.down, t, s);
  add_forward_cuda({t.h_mid, s.down, t.next}, ctx);
}

}  // namespace kto
