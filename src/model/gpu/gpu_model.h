// GpuModel: a Model's weights resident on one CUDA GPU (bf16) and the passes Model dispatches to
// it when it runs there (model.h): completion scores, the LoRA training forward and backward,
// hidden states / logits, and KV-cache decoding. Numerics as DESIGN.md §4: bf16 weights and
// activations, fp32 accumulation, softmax, norm statistics and log-probs; per-sequence sums in
// double on the host, in the CPU reference's order.
// Memory is planned: every pass carves its tensors from arenas sized by the carving code itself
// (gpu_arena.h); they grow only when a pass brings more tokens than any before (reserve() plans
// for the longest batch up front, so a training run allocates before its first step, never in it).
// Thread-safety: calls are serialised by an internal mutex (one stream per device).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/cuda/context.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/accelerator.h"
#include "model/model.h"
#include "model/packed_batch.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace kto {

// A KV cache on the GPU (KvCache::device): bf16 keys and values per layer, [capacity, Hkv*Dh].
struct DeviceKvCache {
  DeviceBuffer buffer;
  std::vector<Tensor> k, v;  // [L]
};

// Kept prompts' keys and values (PromptCache::device): per layer [capacity, Hkv*Dh] bf16 after
// RoPE, prompt s in rows [starts[s], starts[s+1]).
struct DevicePromptCache {
  const void* owner = nullptr;  // the GpuModel that made it
  DeviceBuffer buffer;
  int64_t capacity = 0;         // tokens
  std::vector<Tensor> k, v;     // [L]
  std::vector<int32_t> starts;  // [S+1] of the last pass that kept prompts
};

// Ties a TrainPass (TrainPass::device) to the GPU forward whose kept activations its backward reads.
struct DevicePassState {
  uint64_t id = 0;
};

class GpuModel final : public ModelAccelerator {
 public:
  // Uploads the weights to GPU `device`. Throws Error(Cuda / Unsupported / OutOfMemory) as
  // CudaContext and DeviceBuffer do.
  GpuModel(const ModelConfig& config, const Weights& weights, const HostTensor& inv_freq, int device);
  ~GpuModel() override;
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  std::string describe() const override;
  void set_head_chunk_rows(int64_t rows) override;
  void reserve(int64_t n_tokens, int64_t n_head_rows, const LoraAdapter* adapter, Checkpointing checkpointing) override;
  HostTensor hidden(const PackedBatch& batch) override;
  HostTensor logits(const PackedBatch& batch) override;
  SequenceScores scores(const PackedBatch& batch, const CompletionRows& rows, const LoraAdapter* adapter,
                        PromptCache* keep) override;
  SequenceScores scores_after(const PromptCache& kept, const PackedBatch& batch, std::span<const int32_t> n_prompt,
                              const CompletionRows& rows, const LoraAdapter* adapter) override;
  void reserve_prompts(PromptCache& cache, int64_t n_tokens) override;
  bool owns(const PromptCache& cache) const override;
  void forward_train(TrainPass& pass, const LoraAdapter& adapter, const DecoderTrainOptions& options,
                     PromptCache* keep) override;
  void backward_train(const TrainPass& pass, std::span<const double> d_logps, LoraAdapter& adapter) override;
  void forward_train_full(TrainPass& pass) override;
  void backward_train_full(const TrainPass& pass, std::span<const double> d_logps, Weights& grads) override;
  void weights_updated(const Weights& weights) override;
  void new_cache(KvCache& cache, int64_t capacity) override;
  HostTensor decode(KvCache& cache, const PackedBatch& batch, const LoraAdapter* adapter) override;

 private:
  // The training forward (LoRA when `adapter`, else the base model for full fine-tuning); the
  // caller holds the mutex.
  void train_forward(TrainPass& pass, const LoraAdapter* adapter, const DecoderTrainOptions& options,
                     PromptCache* keep);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kto
