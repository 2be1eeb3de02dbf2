// What a Model dispatches to when it runs on an accelerator instead of the CPU reference: the
// same passes (model.h), over weights resident on the device. The CUDA implementation is
// model/gpu/ (built when the CUDA backend is); Model stays free of device code and of #ifs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "model/model.h"

namespace kto {

class ModelAccelerator {
 public:
  virtual ~ModelAccelerator() = default;

  // One line for banners and `kto inspect`: "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, …)".
  virtual std::string describe() const = 0;
  virtual void set_head_chunk_rows(int64_t rows) = 0;
  // Plans device memory for passes of up to n_tokens tokens and n_head_rows scored rows (with
  // training activations when `adapter` is given), so that a run allocates before its first step.
  virtual void reserve(int64_t n_tokens, int64_t n_head_rows, const LoraAdapter* adapter, Checkpointing checkpointing) = 0;

  virtual HostTensor hidden(const PackedBatch& batch) = 0;  // [T, D] f32
  virtual HostTensor logits(const PackedBatch& batch) = 0;  // [T, V] f32
  // `keep` (optional; its prompts, adapter and version already set by Model): the pass also
  // keeps the prompts' keys and values in keep->device.
  virtual SequenceScores scores(const PackedBatch& batch, const CompletionRows& rows, const LoraAdapter* adapter,
                                PromptCache* keep) = 0;
  // Scores of sequences continuing the prompts `kept` holds (Model has checked that they do and
  // that kept.device is this accelerator's), computing only their completions.
  virtual SequenceScores scores_after(const PromptCache& kept, const PackedBatch& batch,
                                      std::span<const int32_t> n_prompt, const CompletionRows& rows,
                                      const LoraAdapter* adapter) = 0;
  virtual void reserve_prompts(PromptCache& cache, int64_t n_tokens) = 0;
  // True when cache.device was made by this accelerator.
  virtual bool owns(const PromptCache& cache) const = 0;
  // Fills pass.scores, pass.logsumexp and pass.device (the kept activations stay on the device).
  virtual void forward_train(TrainPass& pass, const LoraAdapter& adapter, const DecoderTrainOptions& options,
                             PromptCache* keep) = 0;
  virtual void backward_train(const TrainPass& pass, std::span<const double> d_logps, LoraAdapter& adapter) = 0;
  // Full fine-tuning: the base model's training forward, its backward into every weight's
  // gradient (grads += …), and re-reading the weights after the optimizer changed them.
  virtual void forward_train_full(TrainPass& pass) = 0;
  virtual void backward_train_full(const TrainPass& pass, std::span<const double> d_logps, Weights& grads) = 0;
  virtual void weights_updated(const Weights& weights) = 0;

  // Sets cache.device for a cache of `capacity` tokens.
  virtual void new_cache(KvCache& cache, int64_t capacity) = 0;
  // Appends the batch (one sequence continuing the cache) and returns the last token's logits [V] f32.
  virtual HostTensor decode(KvCache& cache, const PackedBatch& batch, const LoraAdapter* adapter) = 0;
};

// The CUDA accelerator on GPU `device`: uploads the weights (bf16). Throws Error(Unsupported)
// when this build has no CUDA backend, and as CudaContext / DeviceBuffer do otherwise.
std::unique_ptr<ModelAccelerator> accelerator_create_cuda(const ModelConfig& config, const Weights& weights,
                                                          const HostTensor& inv_freq, int device);

}  // namespace kto
