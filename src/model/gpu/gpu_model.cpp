// GpuModel: planning the arenas, moving a packed batch to the device, and the passes (scores,
// training forward and backward, hidden states / logits, KV-cache decoding) over the layer
// program of gpu_forward.cpp / gpu_backward.cpp and the chunked log-prob head.
#include "model/gpu/gpu_model.h"

#include <algorithm>
#include <mutex>

#include "backend/cuda/ops_cuda.h"
#include "model/gpu/gpu_arena.h"
#include "model/gpu/gpu_program.h"
#include "model/gpu/gpu_weights.h"

namespace kto {
namespace {

// The chunked head's tensors for N scored rows.
struct HeadTensors {
  Tensor rows, labels;                 // [N] i32
  Tensor logp, mean_logit, entropy;    // [N] f32
  Tensor argmax;                       // [N] i32
  Tensor workspace;                    // u8
};

HeadTensors carve_head(GpuArena& a, const ModelConfig& c, int64_t n_rows, int64_t chunk) {
  HeadTensors h;
  h.rows = a.take(DType::I32, Shape{n_rows});
  h.labels = a.take(DType::I32, Shape{n_rows});
  h.logp = a.take(DType::F32, Shape{n_rows});
  h.mean_logit = a.take(DType::F32, Shape{n_rows});
  h.entropy = a.take(DType::F32, Shape{n_rows});
  h.argmax = a.take(DType::I32, Shape{n_rows});
  h.workspace = a.take(DType::U8, Shape{logprob_head_workspace_bytes_cuda(chunk, c.hidden_size, c.vocab_size)});
  return h;
}

// An inference pass: inputs, one set of layer tensors, the final hidden states and the head.
struct InferencePlan {
  GpuPassInputs in;
  GpuLayerTensors layer;
  GpuLayerScratch scratch;
  Tensor hidden;  // [T, D]
  HeadTensors head;
};

InferencePlan carve_inference(GpuArena& a, const ModelConfig& c, const GpuLora* lora, int64_t n_tokens,
                              int64_t n_seqs, int64_t n_rows, int64_t chunk) {
  InferencePlan p;
  p.in = gpu_carve_inputs(a, n_tokens, n_seqs);
  p.layer = gpu_carve_layer(a, c, lora, 0, n_tokens, GpuPassKind::Inference, false);
  p.scratch = gpu_carve_layer_scratch(a, c, lora, n_tokens);
  p.hidden = a.take(DType::BF16, Shape{n_tokens, c.hidden_size});
  p.head = carve_head(a, c, n_rows, chunk);
  return p;
}

// The activations a training forward keeps for its backward (the saved arena).
struct SavedPlan {
  Checkpointing checkpointing = Checkpointing::Off;
  GpuPassInputs in;
  std::vector<GpuLayerTensors> layers;  // [L]; layers[l].next == layers[l+1].x
  Tensor x_final, hidden;               // [T, D]
  Tensor rows, labels, logsumexp;       // [N] i32, i32, f32
};

// With checkpointing only each layer's input x is kept (the rest is recomputed in the backward).
SavedPlan carve_saved(GpuArena& a, const ModelConfig& c, const GpuLora* lora, int64_t n_tokens, int64_t n_seqs,
                      int64_t n_rows, bool with_masks, Checkpointing checkpointing) {
  SavedPlan p;
  p.checkpointing = checkpointing;
  p.in = gpu_carve_inputs(a, n_tokens, n_seqs);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    if (checkpointing == Checkpointing::On) {
      GpuLayerTensors only_x;
      only_x.x = a.take(DType::BF16, Shape{n_tokens, c.hidden_size});
      p.layers.push_back(only_x);
      continue;
    }
    p.layers.push_back(gpu_carve_layer(a, c, lora, l, n_tokens, GpuPassKind::Training, with_masks));
  }
  p.x_final = a.take(DType::BF16, Shape{n_tokens, c.hidden_size});
  p.hidden = a.take(DType::BF16, Shape{n_tokens, c.hidden_size});
  for (size_t l = 0; l < p.layers.size(); ++l) p.layers[l].next = l + 1 < p.layers.size() ? p.layers[l + 1].x : p.x_final;
  p.rows = a.take(DType::I32, Shape{n_rows});
  p.labels = a.take(DType::I32, Shape{n_rows});
  p.logsumexp = a.take(DType::F32, Shape{n_rows});
  return p;
}

// The training forward's and the backward's scratch (one arena; never live at the same time).
struct TrainScratchPlan {
  GpuLayerScratch layer;
  HeadTensors head;
  GpuLayerTensors work;  // checkpointing: the layer being computed (shared by all layers)
};

GpuLayerTensors carve_work(GpuArena& a, const ModelConfig& c, const GpuLora* lora, int64_t n_tokens, bool masks,
                           Checkpointing checkpointing) {
  if (checkpointing == Checkpointing::Off) return {};
  return gpu_carve_layer(a, c, lora, 0, n_tokens, GpuPassKind::Recompute, masks);
}

// The shared work tensors as layer `layer` of a checkpointed pass uses them: its ranks, its saved
// input, and `next` (the next layer's saved input in the forward; scratch in the recomputation).
GpuLayerTensors work_for(const GpuLayerTensors& work, const GpuLora* lora, int64_t layer, const Tensor& x,
                         const Tensor& next) {
  GpuLayerTensors t = gpu_layer_view(work, lora, layer);
  for (LoraModule m : kLoraModules) {
    Tensor& mask = t.mask[static_cast<size_t>(m)];
    if (!t.xa[static_cast<size_t>(m)].data) mask = Tensor{};
  }
  t.x = x, t.next = next;
  return t;
}
struct BackwardPlan {
  GpuBackwardScratch layer;
  GpuLayerScratch forward;  // checkpointing: the recomputed layer's scratch …
  GpuLayerTensors work;     // … its tensors …
  Tensor next;              // … and its output, [T, D] (not needed, not kept)
  Tensor d_hidden;  // [T, D] bf16
  Tensor d_out;     // [N] f32
  Tensor head_ws;   // u8
};

BackwardPlan carve_backward(GpuArena& a, const ModelConfig& c, const GpuLora* lora, int64_t n_tokens, int64_t n_rows,
                            int64_t chunk, bool masks = false, Checkpointing checkpointing = Checkpointing::Off) {
  BackwardPlan p;
  p.layer = gpu_carve_backward(a, c, lora, n_tokens);
  if (checkpointing == Checkpointing::On) {
    p.forward = gpu_carve_layer_scratch(a, c, lora, n_tokens);
    p.work = carve_work(a, c, lora, n_tokens, masks, checkpointing);
    p.next = a.take(DType::BF16, Shape{n_tokens, c.hidden_size});
  }
  p.d_hidden = a.take(DType::BF16, Shape{n_tokens, c.hidden_size});
  p.d_out = a.take(DType::F32, Shape{n_rows});
  p.head_ws = a.take(DType::U8, Shape{logprob_head_workspace_bytes_cuda(chunk, c.hidden_size, c.vocab_size)});
  return p;
}

Tensor rows_of(const Tensor& t, int64_t first, int64_t count) {
  const int64_t width = t.shape[1];
  return Tensor{static_cast<char*>(t.data) + first * width * static_cast<int64_t>(dtype_bits(t.dtype) / 8), t.dtype,
                Shape{count, width}, Device::Cuda};
}

std::vector<float> download_f32(CudaContext& ctx, const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  cuda_copy_to_host(ctx, out.data(), t);
  return out;
}

HostTensor bf16_to_host_f32(CudaContext& ctx, const Tensor& t) {
  std::vector<uint16_t> bits(static_cast<size_t>(t.numel()));
  cuda_copy_to_host(ctx, bits.data(), t);
  HostTensor out(DType::F32, t.shape);
  for (size_t i = 0; i < bits.size(); ++i) out.f32()[i] = bf16_to_f32(bits[i]);
  return out;
}

}  // namespace

struct GpuModel::Impl {
  std::mutex mutex;
  CudaContext ctx;
  CudaDeviceInfo info;
  ModelConfig config;
  GpuWeights weights;
  GpuLora lora;
  GpuWeights grads;         // full fine-tuning's fp32 gradients (allocated on first use)
  GpuArena scratch, saved;
  SavedPlan last;           // the last training forward's activations (in `saved`)
  uint64_t last_id = 0;     // its GpuTrainPass id
  int64_t head_chunk_rows = 256;

  explicit Impl(int device) : ctx(device), info(cuda_device_info(device)) {}

  GpuDecoder decoder(const LoraAdapter* adapter) {
    if (adapter) gpu_lora_sync(ctx, lora, *adapter);
    return {&ctx, &config, &weights, adapter ? &lora : nullptr};
  }

  void ensure(GpuArena& arena, const std::string& name, size_t bytes) {
    if (arena.counting() || arena.capacity() < bytes) arena.reserve(ctx, name, bytes);
    arena.reset();
  }
  // The last training forward's dropout (for the recomputation of checkpointed layers).
  double last_dropout = 0.0;
  uint64_t last_dropout_seed = 0;

  // The CPU reference's dropout masks of layer `layer` for this step, rounded to bf16, into t.mask.
  void upload_masks(const GpuLayerTensors& t, int64_t layer) {
    for (LoraModule mod : kLoraModules) {
      const Tensor& mask = t.mask[static_cast<size_t>(mod)];
      if (!mask.data) continue;
      const uint64_t seed = last_dropout_seed * 1000003u + static_cast<uint64_t>(layer) * 16u + static_cast<uint64_t>(mod);
      const HostTensor host = lora_dropout_mask(last_dropout, mask.shape[0], mask.shape[1], seed);
      std::vector<uint16_t> bits(static_cast<size_t>(host.numel()));
      for (size_t i = 0; i < bits.size(); ++i) bits[i] = f32_to_bf16(host.f32()[i]);
      cuda_copy_to_device(ctx, mask, bits.data());
    }
  }

  // The arenas' names in out-of-memory messages say what the memory is for.
  static std::string saved_name(int64_t n_tokens) { return str_cat("saved activations of a ", n_tokens, "-token training pass"); }
  static std::string scratch_name(int64_t n_tokens) { return str_cat("activation scratch of a ", n_tokens, "-token pass"); }

  void upload_inputs(const GpuPassInputs& in, const PackedBatch& batch, std::span<const int32_t> k_starts) {
    cuda_copy_to_device(ctx, in.tokens, batch.tokens.data());
    cuda_copy_to_device(ctx, in.positions, batch.positions.data());
    cuda_copy_to_device(ctx, in.q_starts, batch.seq_starts.data());
    cuda_copy_to_device(ctx, in.k_starts, k_starts.data());
  }

  void embed(const GpuPassInputs& in, const Tensor& out) {
    embedding_forward_cuda({in.tokens, weights.embed, out}, ctx);
  }

  // Inference forward of a packed batch into plan.hidden (keeping prompts' keys and values when
  // `keep` is set: keep_prompts' result).
  void run_inference(const InferencePlan& plan, const GpuDecoder& d, const DevicePromptCache* keep = nullptr) {
    embed(plan.in, plan.layer.x);
    for (int64_t l = 0; l < config.n_layers; ++l) {
      const GpuLayerTensors t = gpu_layer_view(plan.layer, d.lora, l);
      gpu_layer_forward(d, l, plan.in, t, plan.scratch, t.k, t.v);
      if (keep) keep_layer(*keep, l, t);
    }
    rms_norm_forward_cuda({plan.layer.x, weights.final_norm, plan.hidden, static_cast<float>(config.rms_norm_eps)}, ctx);
  }

  // Room for n_tokens kept prompt tokens in `cache` (reallocated only to grow): per layer keys and
  // values, and the rows of the keeping pass they come from.
  DevicePromptCache& prompt_room(PromptCache& cache, int64_t n_tokens) {
    if (!cache.device || cache.device->owner != this) {
      cache.device = std::make_shared<DevicePromptCache>();
      cache.device->owner = this;
    }
    DevicePromptCache& pc = *cache.device;
    if (pc.capacity >= n_tokens) return pc;
    const size_t rows_bytes = gpu_aligned(static_cast<size_t>(n_tokens) * static_cast<size_t>(config.kv_dim()) * 2);
    const size_t layers = static_cast<size_t>(config.n_layers);
    pc.buffer = DeviceBuffer();  // free the old one first
    pc.buffer = DeviceBuffer(ctx, str_cat("kept prompt keys and values of ", n_tokens, " tokens"),
                             2 * layers * rows_bytes + gpu_aligned(static_cast<size_t>(n_tokens) * 4));
    pc.k.clear(), pc.v.clear();
    for (size_t l = 0; l < 2 * layers; ++l) {
      (l < layers ? pc.k : pc.v).push_back(pc.buffer.view(DType::BF16, Shape{n_tokens, config.kv_dim()}, l * rows_bytes));
    }
    pc.capacity = n_tokens;
    return pc;
  }
  Tensor prompt_index(const DevicePromptCache& pc) const {
    const size_t offset = 2 * static_cast<size_t>(config.n_layers) *
                          gpu_aligned(static_cast<size_t>(pc.capacity) * static_cast<size_t>(config.kv_dim()) * 2);
    return pc.buffer.view(DType::I32, Shape{pc.starts.back()}, offset);
  }

  // Before a pass over `batch` that keeps its prompts (keep.prompts set by Model): where each
  // prompt goes and which rows of the pass it is.
  const DevicePromptCache* keep_prompts(PromptCache* keep, const PackedBatch& batch) {
    if (!keep) return nullptr;
    std::vector<int32_t> starts{0}, rows;
    for (size_t s = 0; s < keep->prompts.size(); ++s) {
      const int32_t n = static_cast<int32_t>(keep->prompts[s].size());
      starts.push_back(starts.back() + n);
      for (int32_t i = 0; i < n; ++i) rows.push_back(batch.seq_starts[s] + i);
    }
    DevicePromptCache& pc = prompt_room(*keep, starts.back());
    pc.starts = std::move(starts);
    if (!rows.empty()) cuda_copy_to_device(ctx, prompt_index(pc), rows.data());
    return &pc;
  }
  // After layer l's forward: its prompts' keys and values (t.k, t.v after RoPE) into the cache.
  void keep_layer(const DevicePromptCache& pc, int64_t l, const GpuLayerTensors& t) {
    const int64_t n = pc.starts.back();
    if (n == 0) return;
    const size_t li = static_cast<size_t>(l);
    gather_rows_cuda({t.k, Tensor{}, prompt_index(pc), rows_of(pc.k[li], 0, n)}, ctx);
    gather_rows_cuda({t.v, Tensor{}, prompt_index(pc), rows_of(pc.v[li], 0, n)}, ctx);
  }
};

GpuModel::GpuModel(const ModelConfig& config, const Weights& weights, const HostTensor& inv_freq, int device)
    : impl_(std::make_unique<Impl>(device)) {
  impl_->config = config;
  impl_->weights = gpu_weights_upload(impl_->ctx, config, weights, inv_freq);
}

GpuModel::~GpuModel() = default;

std::string GpuModel::describe() const {
  const CudaDeviceInfo& i = impl_->info;
  return str_cat("cuda:", i.index, " ", i.name, " (sm_", i.cc_major, i.cc_minor, ", ", i.total_bytes >> 20,
                 " MiB, driver CUDA ", cuda_version_string(i.driver_version), ", runtime ",
                 cuda_version_string(i.runtime_version), "; weights ", impl_->weights.buffer.bytes() >> 20,
                 " MiB bf16)");
}

std::unique_ptr<ModelAccelerator> accelerator_create_cuda(const ModelConfig& config, const Weights& weights,
                                                          const HostTensor& inv_freq, int device) {
  return std::make_unique<GpuModel>(config, weights, inv_freq, device);
}

void GpuModel::set_head_chunk_rows(int64_t rows) {
  std::lock_guard lock(impl_->mutex);
  impl_->head_chunk_rows = rows;
}

void GpuModel::reserve(int64_t n_tokens, int64_t n_head_rows, const LoraAdapter* adapter, Checkpointing checkpointing) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  const ModelConfig& c = m.config;
  const int64_t chunk = m.head_chunk_rows;
  const GpuLora* lora = adapter ? (gpu_lora_sync(m.ctx, m.lora, *adapter), &m.lora) : nullptr;
  const int64_t n_seqs = n_tokens;  // at most one sequence per token
  size_t scratch = gpu_arena_measure([&](GpuArena& a) { carve_inference(a, c, lora, n_tokens, n_seqs, n_head_rows, chunk); });
  if (adapter) {
    const bool masks = adapter->config.dropout > 0.0;
    scratch = std::max(scratch, gpu_arena_measure([&](GpuArena& a) {
                         gpu_carve_layer_scratch(a, c, lora, n_tokens), carve_head(a, c, n_head_rows, chunk);
                         carve_work(a, c, lora, n_tokens, masks, checkpointing);
                       }));
    scratch = std::max(scratch, gpu_arena_measure([&](GpuArena& a) {
                         carve_backward(a, c, lora, n_tokens, n_head_rows, chunk, masks, checkpointing);
                       }));
    m.ensure(m.saved, Impl::saved_name(n_tokens), gpu_arena_measure([&](GpuArena& a) {
               carve_saved(a, c, lora, n_tokens, n_seqs, n_head_rows, masks, checkpointing);
             }));
    m.last_id = 0;  // reallocating invalidated any kept forward
  }
  m.ensure(m.scratch, Impl::scratch_name(n_tokens), scratch);
}

namespace {

// The chunked head over `hidden` at `rows` (uploaded into rows_dev / labels_dev; the rows'
// log-sum-exp into lse when given) and the per-sequence sums (waits for the device).
SequenceScores head_scores(CudaContext& ctx, const GpuWeights& weights, const Tensor& hidden, const Tensor& rows_dev,
                           const Tensor& labels_dev, const Tensor& lse, const HeadTensors& h, const CompletionRows& rows,
                           int64_t n_seqs, int64_t chunk) {
  const int64_t n_rows = static_cast<int64_t>(rows.rows.size());
  if (n_rows == 0) return sequence_scores_from_rows(rows, n_seqs, nullptr, nullptr, nullptr, nullptr);
  cuda_copy_to_device(ctx, rows_dev, rows.rows.data());
  cuda_copy_to_device(ctx, labels_dev, rows.labels.data());
  logprob_head_forward_cuda({hidden, weights.head, rows_dev, labels_dev, h.logp, lse, h.workspace, chunk},
                            {h.mean_logit, h.entropy, h.argmax}, ctx);
  const std::vector<float> logp = download_f32(ctx, h.logp), mean = download_f32(ctx, h.mean_logit);
  const std::vector<float> entropy = download_f32(ctx, h.entropy);
  std::vector<int32_t> argmax(static_cast<size_t>(n_rows));
  cuda_copy_to_host(ctx, argmax.data(), h.argmax);
  return sequence_scores_from_rows(rows, n_seqs, logp.data(), mean.data(), entropy.data(), argmax.data());
}

SequenceScores score_plan(CudaContext& ctx, const GpuWeights& weights, const InferencePlan& plan,
                          const CompletionRows& rows, int64_t n_seqs, int64_t chunk) {
  return head_scores(ctx, weights, plan.hidden, plan.head.rows, plan.head.labels, Tensor{}, plan.head, rows, n_seqs, chunk);
}

}  // namespace

void GpuModel::reserve_prompts(PromptCache& cache, int64_t n_tokens) {
  std::lock_guard lock(impl_->mutex);
  impl_->prompt_room(cache, n_tokens);
}

bool GpuModel::owns(const PromptCache& cache) const { return cache.device && cache.device->owner == impl_.get(); }

SequenceScores GpuModel::scores_after(const PromptCache& kept, const PackedBatch& batch,
                                      std::span<const int32_t> n_prompt, const CompletionRows& rows,
                                      const LoraAdapter* adapter) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  const ModelConfig& c = m.config;
  const GpuDecoder d = m.decoder(adapter);
  const DevicePromptCache& pc = *kept.device;
  // The queries: each sequence from its prompt's last token on; the keys: the whole sequence,
  // the prompt's rows from the cache and the rest from this pass.
  const int64_t n_seqs = batch.n_sequences();
  PackedBatch q;
  std::vector<int32_t> k_starts{0}, index;
  q.seq_starts.push_back(0);
  for (int64_t s = 0; s < n_seqs; ++s) {
    const size_t si = static_cast<size_t>(s);
    const int32_t begin = batch.seq_starts[si], len = static_cast<int32_t>(batch.seq_len(s)), np = n_prompt[si];
    const int32_t q_begin = q.seq_starts.back();
    q.tokens.insert(q.tokens.end(), batch.tokens.begin() + begin + np - 1, batch.tokens.begin() + begin + len);
    q.positions.insert(q.positions.end(), batch.positions.begin() + begin + np - 1, batch.positions.begin() + begin + len);
    q.seq_starts.push_back(static_cast<int32_t>(q.tokens.size()));
    k_starts.push_back(k_starts.back() + len);
    for (int32_t i = 0; i < np; ++i) index.push_back(pc.starts[si] + i);
    for (int32_t j = np; j < len; ++j) index.push_back(-1 - (q_begin + j - (np - 1)));
  }
  CompletionRows q_rows = rows;  // hidden row t - 1 of the whole batch → its row among the queries
  for (size_t r = 0; r < q_rows.rows.size(); ++r) {
    const size_t s = static_cast<size_t>(rows.owner[r]);
    q_rows.rows[r] = rows.rows[r] - (batch.seq_starts[s] + n_prompt[s] - 1) + q.seq_starts[s];
  }
  const int64_t n_q = q.n_tokens(), n_keys = k_starts.back(), n_rows = static_cast<int64_t>(rows.rows.size());
  struct AfterPlan {
    InferencePlan inference;
    Tensor k_all, v_all, index;
  };
  auto carve = [&](GpuArena& a) {
    AfterPlan p{carve_inference(a, c, d.lora, n_q, n_seqs, n_rows, m.head_chunk_rows), {}, {}, {}};
    p.k_all = a.take(DType::BF16, Shape{n_keys, c.kv_dim()});
    p.v_all = a.take(DType::BF16, Shape{n_keys, c.kv_dim()});
    p.index = a.take(DType::I32, Shape{n_keys});
    return p;
  };
  m.ensure(m.scratch, Impl::scratch_name(n_q), std::max(m.scratch.capacity(), gpu_arena_measure(carve)));
  const AfterPlan p = carve(m.scratch);
  const InferencePlan& plan = p.inference;
  m.upload_inputs(plan.in, q, k_starts);
  cuda_copy_to_device(m.ctx, p.index, index.data());
  m.embed(plan.in, plan.layer.x);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const GpuLayerTensors t = gpu_layer_view(plan.layer, d.lora, l);
    const GpuKeyAssembly assemble{pc.k[static_cast<size_t>(l)], pc.v[static_cast<size_t>(l)], p.index};
    gpu_layer_forward(d, l, plan.in, t, plan.scratch, p.k_all, p.v_all, &assemble);
  }
  rms_norm_forward_cuda({plan.layer.x, m.weights.final_norm, plan.hidden, static_cast<float>(c.rms_norm_eps)}, m.ctx);
  return score_plan(m.ctx, m.weights, plan, q_rows, n_seqs, m.head_chunk_rows);
}

SequenceScores GpuModel::scores(const PackedBatch& batch, const CompletionRows& rows, const LoraAdapter* adapter,
                                PromptCache* keep) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  const ModelConfig& c = m.config;
  const GpuDecoder d = m.decoder(adapter);
  const int64_t n_tokens = batch.n_tokens(), n_seqs = batch.n_sequences();
  const int64_t n_rows = static_cast<int64_t>(rows.rows.size());
  auto carve = [&](GpuArena& a) { return carve_inference(a, c, d.lora, n_tokens, n_seqs, n_rows, m.head_chunk_rows); };
  m.ensure(m.scratch, Impl::scratch_name(n_tokens), std::max(m.scratch.capacity(), gpu_arena_measure(carve)));
  const InferencePlan plan = carve(m.scratch);
  m.upload_inputs(plan.in, batch, batch.seq_starts);
  m.run_inference(plan, d, m.keep_prompts(keep, batch));
  return score_plan(m.ctx, m.weights, plan, rows, n_seqs, m.head_chunk_rows);
}

HostTensor GpuModel::hidden(const PackedBatch& batch) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  const GpuDecoder d = m.decoder(nullptr);
  auto carve = [&](GpuArena& a) {
    return carve_inference(a, m.config, nullptr, batch.n_tokens(), batch.n_sequences(), 0, 1);
  };
  m.ensure(m.scratch, Impl::scratch_name(batch.n_tokens()), std::max(m.scratch.capacity(), gpu_arena_measure(carve)));
  const InferencePlan plan = carve(m.scratch);
  m.upload_inputs(plan.in, batch, batch.seq_starts);
  m.run_inference(plan, d);
  return bf16_to_host_f32(m.ctx, plan.hidden);
}

HostTensor GpuModel::logits(const PackedBatch& batch) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  const GpuDecoder d = m.decoder(nullptr);
  const int64_t n_tokens = batch.n_tokens();
  auto carve = [&](GpuArena& a) {
    InferencePlan plan = carve_inference(a, m.config, nullptr, n_tokens, batch.n_sequences(), 0, 1);
    return std::pair{plan, a.take(DType::F32, Shape{n_tokens, m.config.vocab_size})};
  };
  m.ensure(m.scratch, Impl::scratch_name(n_tokens), std::max(m.scratch.capacity(), gpu_arena_measure(carve)));
  const auto [plan, logits] = carve(m.scratch);
  m.upload_inputs(plan.in, batch, batch.seq_starts);
  m.run_inference(plan, d);
  linear_forward_cuda({plan.hidden, m.weights.head, Tensor{}, logits}, m.ctx);
  HostTensor out(DType::F32, logits.shape);
  cuda_copy_to_host(m.ctx, out.f32(), logits);
  return out;
}

void GpuModel::forward_train(TrainPass& pass, const LoraAdapter& adapter, const DecoderTrainOptions& options,
                             PromptCache* keep) {
  std::lock_guard lock(impl_->mutex);
  train_forward(pass, &adapter, options, keep);
}

void GpuModel::forward_train_full(TrainPass& pass) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->weights.dequant.data) {
    fail(ErrorKind::InvalidArgument, "full fine-tuning of a 4-bit (NF4) base: its weights are frozen; train a LoRA "
         "adapter on it (finetuning_type: lora) or load a bf16/fp16 checkpoint");
  }
  train_forward(pass, nullptr, {}, nullptr);
}

void GpuModel::train_forward(TrainPass& pass, const LoraAdapter* adapter, const DecoderTrainOptions& options,
                             PromptCache* keep) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const PackedBatch& batch = pass.batch;
  const GpuDecoder d = m.decoder(adapter);
  const int64_t n_tokens = batch.n_tokens(), n_seqs = batch.n_sequences();
  const int64_t n_rows = static_cast<int64_t>(pass.head_rows.rows.size()), chunk = m.head_chunk_rows;
  const bool masks = adapter && adapter->config.dropout > 0.0;
  const Checkpointing ckpt = options.checkpointing;
  auto carve_saved_plan = [&](GpuArena& a) { return carve_saved(a, c, d.lora, n_tokens, n_seqs, n_rows, masks, ckpt); };
  auto carve_scratch = [&](GpuArena& a) {
    TrainScratchPlan plan{gpu_carve_layer_scratch(a, c, d.lora, n_tokens), carve_head(a, c, n_rows, chunk), {}};
    plan.work = carve_work(a, c, d.lora, n_tokens, masks, ckpt);
    return plan;
  };
  const size_t backward_bytes =
      gpu_arena_measure([&](GpuArena& a) { carve_backward(a, c, d.lora, n_tokens, n_rows, chunk, masks, ckpt); });
  m.ensure(m.saved, Impl::saved_name(n_tokens), std::max(m.saved.capacity(), gpu_arena_measure(carve_saved_plan)));
  m.ensure(m.scratch, Impl::scratch_name(n_tokens),
           std::max({m.scratch.capacity(), gpu_arena_measure(carve_scratch), backward_bytes}));
  m.last = carve_saved_plan(m.saved);
  const TrainScratchPlan scratch = carve_scratch(m.scratch);
  const SavedPlan& s = m.last;
  m.last_dropout = masks ? adapter->config.dropout : 0.0;
  m.last_dropout_seed = options.dropout_seed;
  m.upload_inputs(s.in, batch, batch.seq_starts);
  const DevicePromptCache* kept = m.keep_prompts(keep, batch);
  m.embed(s.in, s.layers[0].x);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const GpuLayerTensors& saved = s.layers[static_cast<size_t>(l)];
    const GpuLayerTensors t = ckpt == Checkpointing::On ? work_for(scratch.work, d.lora, l, saved.x, saved.next) : saved;
    if (masks) m.upload_masks(t, l);
    gpu_layer_forward(d, l, s.in, t, scratch.layer, t.k, t.v);
    if (kept) m.keep_layer(*kept, l, t);
  }
  rms_norm_forward_cuda({s.x_final, m.weights.final_norm, s.hidden, static_cast<float>(c.rms_norm_eps)}, m.ctx);
  pass.logsumexp = HostTensor(DType::F32, Shape{n_rows});
  pass.scores = head_scores(m.ctx, m.weights, s.hidden, s.rows, s.labels, s.logsumexp, scratch.head, pass.head_rows,
                            n_seqs, chunk);
  if (n_rows > 0) cuda_copy_to_host(m.ctx, pass.logsumexp.f32(), s.logsumexp);
  pass.device = std::make_shared<DevicePassState>(DevicePassState{++m.last_id});
  m.ctx.synchronize("training forward");
}

void GpuModel::backward_train(const TrainPass& pass, std::span<const double> d_logps, LoraAdapter& adapter) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  if (!pass.device || pass.device->id != m.last_id || m.last_id == 0) {
    fail(ErrorKind::InvalidArgument, "backward_train: this pass's GPU activations are gone (another training "
                                     "forward ran after it); run backward_train right after its forward_train");
  }
  if (adapter.version != 0 && adapter.version != m.lora.version) {
    fail(ErrorKind::InvalidArgument, "backward_train: the adapter changed since its forward_train");
  }
  const ModelConfig& c = m.config;
  const GpuDecoder d{&m.ctx, &c, &m.weights, &m.lora};
  const SavedPlan& s = m.last;
  const int64_t n_tokens = pass.batch.n_tokens(), chunk = m.head_chunk_rows;
  const int64_t n_rows = static_cast<int64_t>(pass.head_rows.rows.size());
  m.scratch.reset();
  const bool masks = m.last_dropout > 0.0;
  const BackwardPlan b = carve_backward(m.scratch, c, &m.lora, n_tokens, n_rows, chunk, masks, s.checkpointing);
  gpu_lora_zero_grads(m.ctx, m.lora);
  cuda_fill_zero(m.ctx, b.d_hidden);
  if (n_rows > 0) {
    std::vector<float> d_out(static_cast<size_t>(n_rows));
    for (size_t i = 0; i < d_out.size(); ++i) {
      d_out[i] = static_cast<float>(d_logps[static_cast<size_t>(pass.head_rows.owner[i])]);
    }
    cuda_copy_to_device(m.ctx, b.d_out, d_out.data());
    LogprobHeadBackwardArgs head;
    head.hidden = s.hidden, head.weight = m.weights.head, head.rows = s.rows, head.labels = s.labels;
    head.logsumexp = s.logsumexp, head.d_out = b.d_out, head.d_hidden = b.d_hidden, head.workspace = b.head_ws;
    head.chunk_rows = chunk;
    logprob_head_backward_cuda(head, m.ctx);
  }
  rms_norm_backward_cuda({s.x_final, m.weights.final_norm, b.d_hidden, b.layer.d_h,
                          static_cast<float>(c.rms_norm_eps), GradStore::Overwrite},
                         m.ctx);
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    const GpuLayerTensors& saved = s.layers[static_cast<size_t>(l)];
    if (s.checkpointing == Checkpointing::Off) {
      gpu_layer_backward(d, l, s.in, saved, b.layer);
      continue;
    }
    const GpuLayerTensors t = work_for(b.work, d.lora, l, saved.x, b.next);  // recompute the layer
    if (masks) m.upload_masks(t, l);
    gpu_layer_forward(d, l, s.in, t, b.forward, t.k, t.v);
    gpu_layer_backward(d, l, s.in, t, b.layer);
  }
  gpu_lora_add_grads(m.ctx, m.lora, adapter);
}

void GpuModel::backward_train_full(const TrainPass& pass, std::span<const double> d_logps, Weights& grads) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  if (!pass.device || pass.device->id != m.last_id || m.last_id == 0) {
    fail(ErrorKind::InvalidArgument, "backward_train_full: this pass's GPU activations are gone (another training "
                                     "forward ran after it); run the backward right after its forward");
  }
  const ModelConfig& c = m.config;
  const GpuDecoder d{&m.ctx, &c, &m.weights, nullptr};
  const SavedPlan& s = m.last;
  const int64_t n_tokens = pass.batch.n_tokens(), chunk = m.head_chunk_rows;
  const int64_t n_rows = static_cast<int64_t>(pass.head_rows.rows.size());
  if (!m.grads.buffer.data()) m.grads = gpu_grads_allocate(m.ctx, c, grads);
  gpu_grads_zero(m.ctx, m.grads);
  m.scratch.reset();
  const BackwardPlan b = carve_backward(m.scratch, c, nullptr, n_tokens, n_rows, chunk);
  cuda_fill_zero(m.ctx, b.d_hidden);
  if (n_rows > 0) {
    std::vector<float> d_out(static_cast<size_t>(n_rows));
    for (size_t i = 0; i < d_out.size(); ++i) d_out[i] = static_cast<float>(d_logps[static_cast<size_t>(pass.head_rows.owner[i])]);
    cuda_copy_to_device(m.ctx, b.d_out, d_out.data());
    LogprobHeadBackwardArgs head;
    head.hidden = s.hidden, head.weight = m.weights.head, head.rows = s.rows, head.labels = s.labels;
    head.logsumexp = s.logsumexp, head.d_out = b.d_out, head.d_hidden = b.d_hidden, head.workspace = b.head_ws;
    head.chunk_rows = chunk, head.d_weight = m.grads.head;
    logprob_head_backward_cuda(head, m.ctx);
  }
  const float eps = static_cast<float>(c.rms_norm_eps);
  rms_norm_weight_backward_cuda({s.x_final, b.d_hidden, m.grads.final_norm, eps}, b.layer.norm_ws, m.ctx);
  rms_norm_backward_cuda({s.x_final, m.weights.final_norm, b.d_hidden, b.layer.d_h, eps, GradStore::Overwrite}, m.ctx);
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    const size_t li = static_cast<size_t>(l);
    gpu_layer_backward_full(d, l, s.in, s.layers[li], b.layer, m.grads.layers[li]);
  }
  embedding_backward_cuda({s.in.tokens, b.layer.d_h, m.grads.embed}, m.ctx);
  gpu_grads_add_to_host(m.ctx, m.grads, grads);
}

void GpuModel::weights_updated(const Weights& weights) {
  std::lock_guard lock(impl_->mutex);
  gpu_weights_refresh(impl_->ctx, impl_->weights, weights);
}

void GpuModel::new_cache(KvCache& kv, int64_t capacity) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  const ModelConfig& c = m.config;
  auto cache = std::make_shared<DeviceKvCache>();
  const size_t per = static_cast<size_t>(capacity * c.kv_dim()) * 2;
  const size_t aligned = (per + 255) / 256 * 256;
  cache->buffer = DeviceBuffer(m.ctx, "KV cache", aligned * 2 * static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    cache->k.push_back(cache->buffer.view(DType::BF16, Shape{capacity, c.kv_dim()}, aligned * static_cast<size_t>(2 * l)));
    cache->v.push_back(cache->buffer.view(DType::BF16, Shape{capacity, c.kv_dim()}, aligned * static_cast<size_t>(2 * l + 1)));
  }
  kv.device = std::move(cache);
}

HostTensor GpuModel::decode(KvCache& kv, const PackedBatch& batch, const LoraAdapter* adapter) {
  Impl& m = *impl_;
  KTO_ASSERT(kv.device, "decode: the cache was not made by this GPU model");
  DeviceKvCache& cache = *kv.device;
  const int64_t n_cached = kv.n_tokens;
  std::lock_guard lock(m.mutex);
  const ModelConfig& c = m.config;
  const GpuDecoder d = m.decoder(adapter);
  const int64_t n_new = batch.n_tokens(), total = n_cached + n_new;
  struct DecodePlan {
    GpuPassInputs in;
    GpuLayerTensors layer;
    GpuLayerScratch scratch;
    Tensor hidden, logits;  // [T, D] bf16, [1, V] f32
  };
  auto carve = [&](GpuArena& a) {
    DecodePlan p;
    p.in = gpu_carve_inputs(a, n_new, 1);
    p.layer = gpu_carve_layer(a, c, d.lora, 0, n_new, GpuPassKind::Decode, false);
    p.scratch = gpu_carve_layer_scratch(a, c, d.lora, n_new);
    p.hidden = a.take(DType::BF16, Shape{n_new, c.hidden_size});
    p.logits = a.take(DType::F32, Shape{1, c.vocab_size});
    return p;
  };
  m.ensure(m.scratch, Impl::scratch_name(n_new), std::max(m.scratch.capacity(), gpu_arena_measure(carve)));
  const DecodePlan p = carve(m.scratch);
  const std::vector<int32_t> k_starts{0, static_cast<int32_t>(total)};
  m.upload_inputs(p.in, batch, k_starts);
  m.embed(p.in, p.layer.x);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    GpuLayerTensors t = gpu_layer_view(p.layer, d.lora, l);
    const size_t li = static_cast<size_t>(l);
    t.k = t.k_raw = rows_of(cache.k[li], n_cached, n_new);
    t.v = rows_of(cache.v[li], n_cached, n_new);
    gpu_layer_forward(d, l, p.in, t, p.scratch, rows_of(cache.k[li], 0, total), rows_of(cache.v[li], 0, total));
  }
  const Tensor last = rows_of(p.layer.x, n_new - 1, 1);
  const Tensor last_hidden = rows_of(p.hidden, 0, 1);
  rms_norm_forward_cuda({last, m.weights.final_norm, last_hidden, static_cast<float>(c.rms_norm_eps)}, m.ctx);
  linear_forward_cuda({last_hidden, m.weights.head, Tensor{}, p.logits}, m.ctx);
  HostTensor out(DType::F32, Shape{c.vocab_size});
  cuda_copy_to_host(m.ctx, out.f32(), p.logits);
  return out;
}

}  // namespace kto
