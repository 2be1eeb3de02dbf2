// The memory plan (memory_plan.h): the GPU model's allocations recomputed on the host, in the
// order and with the 256-byte rounding of the code that makes them. Every arena term mirrors a
// carve function of src/model/gpu/ (GpuArena::take rounds each tensor up to 256 bytes), and the
// backend's workspace-size queries live in .cu files, so they are repeated here with their
// source named. Dimension names as model/config.h: T tokens, N head rows, D, Q = H·Dh,
// KV = Hkv·Dh, F, V, R.
#include "model/memory_plan.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "model/lora.h"
#include "util/error.h"

namespace kto {

namespace {

constexpr int64_t kBf16 = 2, kF32 = 4, kI32 = 4;

// gpu_arena.h gpu_aligned (GpuArena::take, the weight and LoRA buffers) and backend/cuda
// cuda::align_bytes (workspace parts): 256-byte steps.
constexpr int64_t aligned(int64_t bytes) { return (bytes + 255) / 256 * 256; }

int64_t in_features(const ModelConfig& c, LoraModule m) {
  switch (m) {
    case LoraModule::O: return c.q_dim();
    case LoraModule::Down: return c.intermediate_size;
    default: return c.hidden_size;
  }
}
int64_t out_features(const ModelConfig& c, LoraModule m) {
  switch (m) {
    case LoraModule::Q: return c.q_dim();
    case LoraModule::K: case LoraModule::V: return c.kv_dim();
    case LoraModule::Gate: case LoraModule::Up: return c.intermediate_size;
    default: return c.hidden_size;
  }
}
bool has_bias(const ModelConfig& c, LoraModule m) {  // model/weights.cpp: which biases a config loads
  switch (m) {
    case LoraModule::Q: case LoraModule::K: case LoraModule::V: return c.qkv_bias;
    case LoraModule::O: return c.o_bias;
    default: return c.mlp_bias;
  }
}
// gpu_forward.cpp widest_input (and gpu_carve_backward's `widest`).
int64_t widest_input(const ModelConfig& c) { return std::max({c.hidden_size, c.q_dim(), c.intermediate_size}); }

// ---- backend workspace sizes (replicated: these live in .cu files the host build lacks) ----

// backend/cuda/lora_linear.cu lora_linear_workspace_bytes_cuda.
int64_t lora_linear_workspace(int64_t t, int64_t in, int64_t rank) { return aligned(t * in * kBf16) + aligned(t * rank * kBf16); }
// backend/cuda/attention_backward.cu attention_backward_workspace_bytes_cuda.
int64_t attention_backward_workspace(int64_t t, int64_t heads) { return 2 * aligned(t * heads * kF32); }
// backend/cuda/logprob_head.cu logprob_head_workspace_bytes_cuda.
int64_t logprob_head_workspace(int64_t chunk, int64_t d, int64_t v) {
  return aligned(chunk * d * kBf16) + aligned(chunk * v * kF32) + aligned(chunk * v * kBf16) + aligned(chunk * d * kF32);
}
// backend/cuda/rms_norm.cu rms_norm_weight_backward_workspace_bytes_cuda: the rows' inverse RMS
// and at most kMaxPartials (2^18) f32 partial sums.
int64_t rms_norm_weight_backward_workspace(int64_t rows) { return aligned(rows * kF32) + aligned((int64_t{1} << 18) * kF32); }

// ---- LoRA ranks as the GPU mirror holds them ----

using ModuleRanks = std::array<int64_t, kLoraModuleCount>;  // 0 = module not wrapped

struct LoraRanks {
  std::vector<ModuleRanks> layers;  // [L]
  ModuleRanks shared{};             // the widest rank of each module over all layers
  int64_t max_rank = 0;             // GpuLora::max_rank
};

LoraRanks lora_ranks(const ModelConfig& c, const LoraPlan& lora) {
  LoraRanks r;
  for (const auto& targeted : lora_resolve_targets(c, lora.target_modules)) {
    ModuleRanks ranks{};
    for (size_t m = 0; m < ranks.size(); ++m) {
      ranks[m] = targeted[m] ? lora.rank : 0;
      r.shared[m] = std::max(r.shared[m], ranks[m]);
      r.max_rank = std::max(r.max_rank, ranks[m]);
    }
    r.layers.push_back(ranks);
  }
  return r;
}

// ---- carving: model/gpu/ ----

enum class LayerKind { Inference, Training, Recompute };  // GpuPassKind (Decode is not planned)

// gpu_forward.cpp gpu_carve_inputs: tokens, positions [T] i32; q_starts, k_starts [S+1] i32.
int64_t inputs_bytes(int64_t t, int64_t s) { return 2 * aligned(t * kI32) + 2 * aligned((s + 1) * kI32); }

// gpu_forward.cpp gpu_carve_layer, tensor for tensor.
int64_t layer_bytes(const ModelConfig& c, const ModuleRanks& ranks, int64_t t, LayerKind kind, bool masks) {
  const bool training = kind != LayerKind::Inference;
  const int64_t d = aligned(t * c.hidden_size * kBf16), q = aligned(t * c.q_dim() * kBf16);
  const int64_t kv = aligned(t * c.kv_dim() * kBf16), f = aligned(t * c.intermediate_size * kBf16);
  int64_t bytes = 2 * d + q + 2 * kv;          // x, x_norm1, q, k, v
  if (training && c.qk_norm) bytes += q + kv;  // q_raw, k_raw
  bytes += q;                                  // attn
  if (training) bytes += d;                    // h_mid (inference: the residual buffer x)
  bytes += d + 2 * f;                          // x_norm2, gate, up
  if (training) bytes += f;                    // act (inference: written over gate)
  for (LoraModule m : kLoraModules) {
    const int64_t rank = ranks[static_cast<size_t>(m)];
    if (rank == 0) continue;
    bytes += aligned(t * rank * kBf16);                                // xa
    if (masks) bytes += aligned(t * in_features(c, m) * kBf16);        // dropout mask
  }
  return bytes;
}

// gpu_forward.cpp gpu_carve_layer_scratch: o, down [T, D] and the LoRA workspace.
ScratchUse layer_scratch(const ModelConfig& c, int64_t max_rank, int64_t t) {
  ScratchUse s;
  s.bytes = 2 * aligned(t * c.hidden_size * kBf16);
  if (max_rank > 0) s.lora_workspace = lora_linear_workspace(t, widest_input(c), max_rank);
  s.bytes += s.lora_workspace;
  return s;
}

// gpu_model.cpp carve_head: rows, labels, logp, mean_logit, entropy, argmax [N] and the chunk workspace.
ScratchUse head(const ModelConfig& c, int64_t n_rows, int64_t chunk) {
  ScratchUse s;
  s.head_chunk = logprob_head_workspace(chunk, c.hidden_size, c.vocab_size);
  s.bytes = 6 * aligned(n_rows * kF32) + s.head_chunk;
  return s;
}

// gpu_model.cpp carve_work: the checkpointed layer's tensors, shared by every layer.
int64_t work_bytes(const ModelConfig& c, const LoraRanks& r, int64_t t, bool masks, Checkpointing ckpt) {
  return ckpt == Checkpointing::On ? layer_bytes(c, r.shared, t, LayerKind::Recompute, masks) : 0;
}

ScratchUse operator+(ScratchUse a, const ScratchUse& b) {
  a.bytes += b.bytes, a.recompute += b.recompute, a.attention_workspace += b.attention_workspace;
  a.lora_workspace += b.lora_workspace, a.head_chunk += b.head_chunk;
  return a;
}

// gpu_model.cpp carve_inference with the adapter's mirror, for T tokens, S sequences, N rows
// (GpuModel::reserve: S = T).
ScratchUse inference_use(const ModelConfig& c, const LoraRanks& r, int64_t t, int64_t n_seqs, int64_t n_rows,
                         int64_t chunk) {
  ScratchUse s;
  s.bytes = inputs_bytes(t, n_seqs) + layer_bytes(c, r.shared, t, LayerKind::Inference, false);
  s = s + layer_scratch(c, r.max_rank, t);
  s.bytes += aligned(t * c.hidden_size * kBf16);  // hidden
  return s + head(c, n_rows, chunk);
}

// gpu_model.cpp GpuModel::scores_after's carve: an inference plan over the queries, then the
// assembled keys and values [keys, KV] bf16 and their source index [keys] i32.
ScratchUse kl_after_use(const ModelConfig& c, const LoraRanks& r, const KlReuseExtent& e, int64_t chunk) {
  ScratchUse s = inference_use(c, r, std::max<int64_t>(e.n_queries, 1), e.n_sequences, e.n_head_rows, chunk);
  s.bytes += 2 * aligned(e.n_keys * c.kv_dim() * kBf16) + aligned(e.n_keys * kI32);
  return s;
}

// gpu_model.cpp prompt_room: per layer the kept keys and the kept values [P, KV] bf16, then the
// rows of the keeping pass they come from [P] i32; one DeviceBuffer per cache.
int64_t prompt_cache_bytes(const ModelConfig& c, int64_t n_prompt_tokens) {
  const int64_t p = std::max<int64_t>(n_prompt_tokens, 1);
  return 2 * c.n_layers * aligned(p * c.kv_dim() * kBf16) + aligned(p * kI32);
}

// GpuModel::reserve's training-forward scratch: layer scratch, head, carve_work.
ScratchUse forward_use(const ModelConfig& c, const LoraRanks& r, const MemoryPlanInputs& in, bool masks) {
  ScratchUse s = layer_scratch(c, r.max_rank, in.pass.n_tokens) + head(c, in.pass.n_head_rows, in.head_chunk_rows);
  s.recompute = work_bytes(c, r, in.pass.n_tokens, masks, in.checkpointing);
  s.bytes += s.recompute;
  return s;
}

// gpu_backward.cpp gpu_carve_backward, then gpu_model.cpp carve_backward's additions.
ScratchUse backward_use(const ModelConfig& c, const LoraRanks& r, const MemoryPlanInputs& in, bool masks) {
  const int64_t t = in.pass.n_tokens, n = in.pass.n_head_rows;
  const int64_t d = aligned(t * c.hidden_size * kBf16), q = aligned(t * c.q_dim() * kBf16);
  const int64_t kv = aligned(t * c.kv_dim() * kBf16), f = aligned(t * c.intermediate_size * kBf16);
  ScratchUse s;
  s.bytes = 3 * d + 2 * q + 2 * kv + 2 * f;  // d_h, d_x1, d_x2, d_attn, d_q, d_k, d_v, d_act, d_up
  s.attention_workspace = attention_backward_workspace(t, c.n_heads);
  s.lora_workspace = lora_linear_workspace(t, widest_input(c), std::max<int64_t>(r.max_rank, 1)) +
                     rms_norm_weight_backward_workspace(t * std::max<int64_t>(c.n_heads, 1));  // norm_ws
  if (in.checkpointing == Checkpointing::On) {
    const ScratchUse forward = layer_scratch(c, r.max_rank, t);  // the recomputed layer's scratch …
    s.recompute = forward.bytes + work_bytes(c, r, t, masks, in.checkpointing) + d;  // … tensors, next
  }
  s.head_chunk = logprob_head_workspace(in.head_chunk_rows, c.hidden_size, c.vocab_size);
  s.bytes += s.attention_workspace + s.lora_workspace + s.recompute + d + aligned(n * kF32) + s.head_chunk;  // d_hidden, d_out
  return s;
}

// gpu_model.cpp carve_saved (GpuModel::reserve: S = T).
int64_t saved_bytes(const ModelConfig& c, const LoraRanks& r, const MemoryPlanInputs& in, bool masks) {
  const int64_t t = in.pass.n_tokens, d = aligned(t * c.hidden_size * kBf16);
  int64_t bytes = inputs_bytes(t, t);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    bytes += in.checkpointing == Checkpointing::On
                 ? d  // each layer's input x only
                 : layer_bytes(c, r.layers[static_cast<size_t>(l)], t, LayerKind::Training, masks);
  }
  return bytes + 2 * d + 3 * aligned(in.pass.n_head_rows * kF32);  // x_final, hidden; rows, labels, logsumexp
}

// One NF4 projection [rows, cols] as the weights buffer holds it (tensor/nf4.h Nf4View, each
// part 256-byte aligned): packed nibbles, absmax per 64-block (f32; u8 codes with double
// quantisation, plus nested_absmax per 256 blocks and the 256-entry nested code), the 16-value code.
int64_t nf4_projection_bytes(int64_t rows, int64_t cols, bool nested) {
  const int64_t numel = rows * cols, blocks = (numel + 63) / 64;
  int64_t bytes = aligned((numel + 1) / 2) + aligned(16 * kF32);
  if (!nested) return bytes + aligned(blocks * kF32);
  return bytes + aligned(blocks) + aligned((blocks + 255) / 256 * kF32) + aligned(256 * kF32);
}

}  // namespace

// gpu_weights.cpp pack_weights: embed, final_norm, head (unless tied), inv_freq, then per layer the
// two norms, q/k norms (Qwen3), and per projection its weight and optional bias.
int64_t memory_plan_weights_bytes(const ModelConfig& c, BaseWeights base) {
  const int64_t d = c.hidden_size, table = aligned(c.vocab_size * d * kBf16);
  int64_t bytes = table + aligned(d * kBf16) + (c.tie_word_embeddings ? 0 : table) + aligned(c.head_dim / 2 * kF32);
  int64_t layer = 2 * aligned(d * kBf16) + (c.qk_norm ? 2 * aligned(c.head_dim * kBf16) : 0);
  for (LoraModule m : kLoraModules) {
    const int64_t rows = out_features(c, m), cols = in_features(c, m);
    layer += base == BaseWeights::Bf16 ? aligned(rows * cols * kBf16)
                                       : nf4_projection_bytes(rows, cols, base == BaseWeights::Nf4DoubleQuant);
    if (has_bias(c, m)) layer += aligned(rows * kBf16);
  }
  return bytes + layer * c.n_layers + memory_plan_dequant_scratch_bytes(c, base);
}

int64_t memory_plan_dequant_scratch_bytes(const ModelConfig& c, BaseWeights base) {
  if (base == BaseWeights::Bf16) return 0;
  int64_t largest = 0;
  for (LoraModule m : kLoraModules) largest = std::max(largest, out_features(c, m) * in_features(c, m));
  return aligned(largest * kBf16);
}

// gpu_weights.cpp allocate (the mirror) per wrapped module's A [R, in] and B [out, R]; the device
// optimizer's buffers per tensor as the gradients are laid out.
int64_t memory_plan_lora_bytes(const ModelConfig& c, const LoraPlan& lora, PlanOptimizer optimizer,
                               OptimizerPlacement placement) {
  auto tensor_bytes = [&](int64_t n) {
    int64_t bytes = aligned(n * kBf16) + aligned(n * kF32);  // bf16 working copy, f32 gradient
    if (placement == OptimizerPlacement::Host) return bytes;
    bytes += aligned(n * kF32);  // fp32 master weights
    if (optimizer == PlanOptimizer::AdamW || n < 4096) return bytes + 2 * aligned(n * kF32);  // exp_avg, exp_avg_sq
    return bytes + 2 * (aligned(n) + aligned((n + 255) / 256 * kF32));  // u8 codes + f32 absmax per 256-block, each moment
  };
  int64_t bytes = 0;
  for (const auto& targeted : lora_resolve_targets(c, lora.target_modules)) {
    for (LoraModule m : kLoraModules) {
      if (!targeted[static_cast<size_t>(m)]) continue;
      bytes += tensor_bytes(lora.rank * in_features(c, m)) + tensor_bytes(out_features(c, m) * lora.rank);
    }
  }
  return bytes;
}

int64_t lora_param_count(const ModelConfig& c, int64_t rank) {
  int64_t per_layer = 0;
  for (LoraModule m : kLoraModules) per_layer += rank * (in_features(c, m) + out_features(c, m));
  return per_layer * c.n_layers;
}

// GpuModel::reserve with an adapter: the scratch arena as large as the largest of an inference
// pass, the training forward and the backward; the saved arena from carve_saved.
MemoryPlan memory_plan(const ModelConfig& c, const MemoryPlanInputs& in) {
  KTO_ASSERT(in.pass.n_tokens >= 1 && in.pass.n_head_rows >= 0 && in.head_chunk_rows >= 1, "memory_plan: bad pass");
  const LoraRanks ranks = lora_ranks(c, in.lora);
  const bool masks = in.lora.dropout > 0.0;
  MemoryPlan p;
  p.weights = memory_plan_weights_bytes(c, in.base);
  p.dequant_scratch = memory_plan_dequant_scratch_bytes(c, in.base);
  p.lora = memory_plan_lora_bytes(c, in.lora, in.optimizer, in.optimizer_placement);
  p.saved = saved_bytes(c, ranks, in, masks);
  const int64_t t = in.pass.n_tokens;
  p.inference = inference_use(c, ranks, t, t, in.pass.n_head_rows, in.head_chunk_rows);
  if (in.eval_pass.n_tokens > 0) {  // an evaluation pass larger than training's grows the arena to it
    const int64_t te = in.eval_pass.n_tokens;
    const ScratchUse eval = inference_use(c, ranks, te, te, in.eval_pass.n_head_rows, in.head_chunk_rows);
    if (eval.bytes > p.inference.bytes) p.inference = eval;
  }
  p.forward = forward_use(c, ranks, in, masks);
  p.backward = backward_use(c, ranks, in, masks);
  if (in.n_prompt_caches > 0) {
    p.kept_prompts = in.n_prompt_caches * prompt_cache_bytes(c, in.pass.kl_reuse.n_prompt_tokens);
    p.kl_after = kl_after_use(c, ranks, in.pass.kl_reuse, in.head_chunk_rows);
  }
  p.scratch = p.largest_scratch_use().bytes;
  p.cublas_workspace = kCublasWorkspaceBytes;
  p.cuda_context = kCudaContextEstimateBytes;
  return p;
}

const ScratchUse& MemoryPlan::largest_scratch_use() const {
  const ScratchUse* largest = &backward;
  for (const ScratchUse* u : {&forward, &inference, &kl_after}) {
    if (u->bytes > largest->bytes) largest = u;
  }
  return *largest;
}

const char* MemoryPlan::largest_scratch_use_name() const {
  const ScratchUse& u = largest_scratch_use();
  if (&u == &kl_after) return "KL pass over kept prompts";
  return &u == &backward ? "backward" : &u == &forward ? "training forward" : "inference";
}

// With no data every prompt may take all but one token, and a KL pass's queries all its tokens.
PassExtent memory_plan_batch_extent(int64_t batch_size, int64_t seq_len) {
  const int64_t tokens = batch_size * seq_len, rows = batch_size * std::max<int64_t>(seq_len - 1, 1);
  return {tokens, rows, {rows, tokens, tokens, batch_size, rows}};
}

BatchChoice memory_plan_largest_batch(const ModelConfig& c, MemoryPlanInputs inputs, int64_t budget, int64_t min_batch,
                                      int64_t max_batch, const std::function<PassExtent(int64_t)>& extent) {
  auto plan_for = [&](int64_t batch) {
    BatchChoice choice{batch, extent(batch), {}};
    inputs.pass = choice.extent;
    choice.plan = memory_plan(c, inputs);
    return choice;
  };
  BatchChoice best = plan_for(min_batch);
  if (best.plan.peak() > budget) return {0, best.extent, best.plan};
  int64_t lo = min_batch, hi = std::max(min_batch, max_batch);  // lo fits; find the largest that does
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    BatchChoice tried = plan_for(mid);
    if (tried.plan.peak() <= budget) lo = mid, best = std::move(tried);
    else hi = mid - 1;
  }
  return best;
}

std::string memory_bytes_text(int64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1 << 30));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1 << 20));
  return buf;
}

}  // namespace kto
