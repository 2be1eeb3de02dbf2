// Decoder forward over a packed batch; mirrors transformers' LlamaDecoderLayer.forward
// (residual + self_attn(input_layernorm(x)); residual + mlp(post_attention_layernorm(x))) with
// LlamaAttention / Qwen3Attention (q/k norm per head before RoPE) and LlamaMLP, in fp32, each
// projection optionally wrapped by PEFT lora.Linear. The training variant moves the
// intermediates it would drop anyway into LayerSaved instead (no extra compute).
#include "model/decoder_forward.h"

#include <cmath>
#include <cstring>

#include "backend/ops.h"

namespace kto {
namespace {

Tensor i32_view(const std::vector<int32_t>& values) {
  return Tensor{const_cast<int32_t*>(values.data()), DType::I32, Shape{static_cast<int64_t>(values.size())}};
}

// A view of rows [0, n_rows) of a [rows, width] f32 tensor.
Tensor leading_rows(const HostTensor& t, int64_t n_rows) {
  return Tensor{t.f32(), DType::F32, Shape{n_rows, t.shape()[1]}};
}

HostTensor copy_of(const HostTensor& t) {
  HostTensor out(t.dtype(), t.shape());
  std::memcpy(out.view().data, t.view().data, t.view().nbytes());
  return out;
}

HostTensor rms_norm(const HostTensor& x, const HostTensor& weight, double eps) {
  HostTensor out(DType::F32, x.shape());
  rms_norm_forward_cpu({x.view(), weight.view(), out.view(), static_cast<float>(eps)});
  return out;
}

// Qwen3: RMSNorm over each Dh-wide head of a [T, heads*Dh] tensor, in place.
void head_norm(HostTensor& x, const HostTensor& weight, int64_t head_dim, double eps) {
  Tensor heads{x.f32(), DType::F32, Shape{x.numel() / head_dim, head_dim}};
  rms_norm_forward_cpu({heads, weight.view(), heads, static_cast<float>(eps)});
}

struct LayerContext {
  const Decoder* decoder;
  int64_t layer;
  const PackedBatch* batch;
  KvCache* cache;      // nullptr for a packed forward
  LayerSaved* saved;   // non-null only in the training forward
  uint64_t dropout_seed;
};

static_assert(kProjectionCount == static_cast<size_t>(kLoraModuleCount), "LayerWeights::nf4 is indexed by LoraModule");

// y = x · Wᵀ (+ b) (+ the LoRA path of `module` when the adapter wraps it): [T, K] → [T, N].
// W is the dense weight, or the layer's NF4 form of it (dequantised tile by tile by the op).
// Dropout masks exist only in the training forward.
HostTensor project(const LayerContext& ctx, LoraModule module, const HostTensor& x, const HostTensor& weight,
                   const HostTensor& bias) {
  const int64_t n_tokens = x.shape()[0];
  const Nf4Tensor& nf4 = ctx.decoder->weights->layers[static_cast<size_t>(ctx.layer)].nf4[static_cast<size_t>(module)];
  const Nf4View nf4_view = nf4.empty() ? Nf4View{} : nf4.view();
  HostTensor out(DType::F32, Shape{n_tokens, nf4.empty() ? weight.shape()[0] : nf4.rows});
  const Tensor bias_view = bias.empty() ? Tensor{} : bias.view();
  const LoraAdapter* adapter = ctx.decoder->lora;
  const LoraWeights* lora = adapter ? adapter->find(ctx.layer, module) : nullptr;
  if (!lora && nf4.empty()) {
    linear_forward_cpu({x.view(), weight.view(), bias_view, out.view()});
    return out;
  }
  if (!lora) {
    lora_linear_forward_cpu({x.view(), Tensor{}, bias_view, Tensor{}, Tensor{}, Tensor{}, Tensor{}, out.view(), 1.0f,
                             nf4_view});
    return out;
  }
  LoraSaved local;
  LoraSaved& keep = ctx.saved ? ctx.saved->lora[static_cast<size_t>(module)] : local;
  keep.xa = HostTensor(DType::F32, Shape{n_tokens, lora->a.shape()[0]});
  const double p = adapter->config.dropout;
  if (ctx.saved && p > 0.0) {
    const uint64_t seed = ctx.dropout_seed * 1000003u + static_cast<uint64_t>(ctx.layer) * 16u +
                          static_cast<uint64_t>(module);
    keep.dropout_mask = lora_dropout_mask(p, n_tokens, x.shape()[1], seed);
  }
  lora_linear_forward_cpu({x.view(), weight.view(), bias_view, lora->a.view(), lora->b.view(),
                           keep.dropout_mask.empty() ? Tensor{} : keep.dropout_mask.view(), keep.xa.view(),
                           out.view(), adapter->scale(), nf4_view});
  return out;
}

// Appends this layer's new keys/values to the cache and returns views of all cached rows.
void append_to_cache(const LayerContext& ctx, const HostTensor& k, const HostTensor& v, Tensor& k_all, Tensor& v_all) {
  KvCache& cache = *ctx.cache;
  const size_t l = static_cast<size_t>(ctx.layer);
  const int64_t width = k.shape()[1], n_new = k.shape()[0], total = cache.n_tokens + n_new;
  KTO_ASSERT(total <= cache.capacity, "kv cache overflow");
  const size_t bytes = static_cast<size_t>(n_new * width) * sizeof(float);
  std::memcpy(cache.k[l].f32() + cache.n_tokens * width, k.f32(), bytes);
  std::memcpy(cache.v[l].f32() + cache.n_tokens * width, v.f32(), bytes);
  k_all = leading_rows(cache.k[l], total);
  v_all = leading_rows(cache.v[l], total);
}

// Self-attention of one layer on the normed input x [T, D]; returns o_proj's output [T, D].
HostTensor attention_block(const LayerContext& ctx, const LayerWeights& w, const HostTensor& x) {
  const ModelConfig& c = *ctx.decoder->config;
  HostTensor q = project(ctx, LoraModule::Q, x, w.q_proj, w.q_bias);  // [T, H*Dh]
  HostTensor k = project(ctx, LoraModule::K, x, w.k_proj, w.k_bias);  // [T, Hkv*Dh]
  HostTensor v = project(ctx, LoraModule::V, x, w.v_proj, w.v_bias);  // [T, Hkv*Dh]
  if (c.qk_norm) {
    if (ctx.saved) ctx.saved->q_raw = copy_of(q), ctx.saved->k_raw = copy_of(k);
    head_norm(q, w.q_norm, c.head_dim, c.rms_norm_eps);
    head_norm(k, w.k_norm, c.head_dim, c.rms_norm_eps);
  }
  const Tensor positions = i32_view(ctx.batch->positions);
  rope_forward_cpu({q.view(), positions, ctx.decoder->inv_freq, c.n_heads, c.head_dim});
  rope_forward_cpu({k.view(), positions, ctx.decoder->inv_freq, c.n_heads_kv, c.head_dim});

  Tensor k_all = k.view(), v_all = v.view();
  std::vector<int32_t> k_starts = ctx.batch->seq_starts;
  if (ctx.cache) {
    append_to_cache(ctx, k, v, k_all, v_all);
    k_starts = {0, static_cast<int32_t>(k_all.shape[0])};
  }
  HostTensor attn(DType::F32, q.shape());  // [T, H*Dh]
  const size_t l = static_cast<size_t>(ctx.layer);
  const int64_t window = l < c.layer_window.size() ? c.layer_window[l] : 0;
  attention_forward_cpu({q.view(), k_all, v_all, i32_view(ctx.batch->seq_starts), i32_view(k_starts), attn.view(),
                         c.n_heads, c.n_heads_kv, c.head_dim, window,
                         static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)))});
  HostTensor out = project(ctx, LoraModule::O, attn, w.o_proj, w.o_bias);
  if (ctx.saved) {
    ctx.saved->q = std::move(q), ctx.saved->k = std::move(k), ctx.saved->v = std::move(v);
    ctx.saved->attn = std::move(attn);
  }
  return out;
}

// down(silu(gate(x)) * up(x)) on the normed input x [T, D]; returns [T, D].
HostTensor mlp_block(const LayerContext& ctx, const LayerWeights& w, const HostTensor& x) {
  HostTensor gate = project(ctx, LoraModule::Gate, x, w.gate_proj, w.gate_bias);  // [T, F]
  HostTensor up = project(ctx, LoraModule::Up, x, w.up_proj, w.up_bias);          // [T, F]
  HostTensor act(DType::F32, gate.shape());                                       // [T, F]
  swiglu_forward_cpu({gate.view(), up.view(), act.view()});
  HostTensor out = project(ctx, LoraModule::Down, act, w.down_proj, w.down_bias);
  if (ctx.saved) ctx.saved->gate = std::move(gate), ctx.saved->up = std::move(up), ctx.saved->act = std::move(act);
  return out;
}

// The decoder program; `saved` (training) receives the backward's tensors, `cache` (decoding)
// the keys and values. Never both.
HostTensor run_decoder(const Decoder& decoder, const PackedBatch& batch, KvCache* cache, DecoderSaved* saved,
                       uint64_t dropout_seed) {
  const ModelConfig& c = *decoder.config;
  const Weights& weights = *decoder.weights;
  KTO_ASSERT(!cache || batch.n_sequences() == 1, "a kv cache serves exactly one sequence");
  KTO_ASSERT(!(cache && saved), "the training forward takes no kv cache");
  KTO_ASSERT(!decoder.lora || static_cast<int64_t>(decoder.lora->layers.size()) == c.n_layers,
             "LoRA adapter has ", decoder.lora ? decoder.lora->layers.size() : 0, " layers, model ", c.n_layers);
  if (saved) {
    saved->layers.clear();
    saved->layers.resize(static_cast<size_t>(c.n_layers));
  }
  HostTensor h(DType::F32, Shape{batch.n_tokens(), c.hidden_size});  // residual stream [T, D]
  embedding_forward_cpu({i32_view(batch.tokens), weights.embed.view(), h.view()});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = weights.layers[static_cast<size_t>(l)];
    LayerSaved* keep = saved ? &saved->layers[static_cast<size_t>(l)] : nullptr;
    const LayerContext ctx{&decoder, l, &batch, cache, keep, dropout_seed};
    if (keep) keep->x = copy_of(h);
    HostTensor x1 = rms_norm(h, w.input_norm, c.rms_norm_eps);
    HostTensor attn_out = attention_block(ctx, w, x1);
    add_forward_cpu({h.view(), attn_out.view(), h.view()});
    if (keep) keep->x_norm1 = std::move(x1), keep->h_mid = copy_of(h);
    HostTensor x2 = rms_norm(h, w.post_attention_norm, c.rms_norm_eps);
    HostTensor mlp_out = mlp_block(ctx, w, x2);
    add_forward_cpu({h.view(), mlp_out.view(), h.view()});
    if (keep) keep->x_norm2 = std::move(x2);
  }
  if (cache) cache->n_tokens += batch.n_tokens();
  HostTensor hidden = rms_norm(h, weights.final_norm, c.rms_norm_eps);
  if (saved) saved->x_final = std::move(h);
  return hidden;
}

}  // namespace

KvCache kv_cache_new(const ModelConfig& config, int64_t capacity) {
  KvCache cache;
  cache.capacity = capacity;
  for (int64_t l = 0; l < config.n_layers; ++l) {
    cache.k.emplace_back(DType::F32, Shape{capacity, config.kv_dim()});
    cache.v.emplace_back(DType::F32, Shape{capacity, config.kv_dim()});
  }
  return cache;
}

HostTensor decoder_forward(const Decoder& decoder, const PackedBatch& batch, KvCache* cache) {
  return run_decoder(decoder, batch, cache, nullptr, 0);
}

void decoder_forward_train(const Decoder& decoder, const PackedBatch& batch, const DecoderTrainOptions& options,
                           DecoderSaved& saved) {
  saved.hidden = run_decoder(decoder, batch, nullptr, &saved, options.dropout_seed);
}

}  // namespace kto
