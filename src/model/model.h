// Model: a loaded decoder-only causal LM (config + f32 weights) and what the CLI, the trainer's
// reference pass and generation ask of it: logits, per-sequence completion log-probabilities
// through the chunked head, and KV-cache decoding. Mirrors transformers' *ForCausalLM.forward
// and generate's incremental decoding, plus the trainer's LoRA passes (forward with saved
// activations, backward to LoRA or full-parameter gradients; model_train.cpp). Thread-safety: const methods may
// run concurrently; a KvCache, a TrainPass and a LoraAdapter's gradients belong to one caller.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/decoder_forward.h"
#include "model/device.h"
#include "model/lora.h"
#include "model/packed_batch.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace kto {

class ModelAccelerator;   // model/accelerator.h
struct DevicePassState;   // an accelerator's handle on a training forward's kept activations
struct DevicePromptCache; // an accelerator's copy of kept prompts' keys and values

// Prompts kept by one pass for a later pass over sequences that begin with the same prompts
// (KTO's KL sequences: each main sequence's prompt with another example's completion). On an
// accelerator the later pass (Model::sequence_scores_after) attends to the kept keys and values
// and computes only the completions; on the CPU it computes the whole sequences. A pass that
// keeps prompts replaces what the cache held; a cache belongs to one caller.
struct PromptCache {
  std::vector<std::vector<int32_t>> prompts;  // each kept sequence's prompt tokens
  const LoraAdapter* adapter = nullptr;       // the weights the keys and values came from
  uint64_t adapter_version = 0;
  std::shared_ptr<DevicePromptCache> device;  // null on the CPU, or when nothing was kept there
};

// The head rows that score a batch's completions: token t of sequence s (t >= n_prompt[s]) is
// predicted from hidden row t - 1. InvalidArgument unless 1 <= n_prompt[s] <= len(s).
struct CompletionRows {
  std::vector<int32_t> rows;    // [N] hidden row (packed index of the token before)
  std::vector<int32_t> labels;  // [N] the token scored
  std::vector<int32_t> owner;   // [N] its sequence
};
CompletionRows completion_rows(const PackedBatch& batch, std::span<const int32_t> n_prompt);

// Per-sequence sums over completion positions, as TRL's KTO statistics are built from them:
// logps (Σ log p(token), a sum, not a mean), the vocabulary-mean logit ("logits/chosen" and
// "logits/rejected" are Σ mean_logit_sums / Σ n_tokens over rows of that label) and the
// predictive entropy of softmax(logits) ("entropy" = Σ entropy_sums / Σ n_tokens).
struct SequenceScores {
  std::vector<double> logps;            // [S]
  std::vector<double> mean_logit_sums;  // [S]
  std::vector<double> entropy_sums;     // [S]
  std::vector<int64_t> n_tokens;        // [S] completion tokens
  std::vector<int64_t> n_correct;       // [S] completion tokens that are the argmax of their
                                        //     logits (TRL SFT's mean_token_accuracy numerator)
};

// Sums per-row head outputs [N] into per-sequence scores, in row order and in double (shared by
// the CPU and accelerator paths so that both sum alike). Null arrays leave their sums at 0.
SequenceScores sequence_scores_from_rows(const CompletionRows& rows, int64_t n_seqs, const float* logp,
                                         const float* mean_logit, const float* entropy, const int32_t* argmax);

// A policy forward kept for its backward: the batch, the scores and what the backward reads.
struct TrainPass {
  PackedBatch batch;
  CompletionRows head_rows;
  SequenceScores scores;
  DecoderSaved saved;
  HostTensor logsumexp;  // [N] f32 per head row
  const LoraAdapter* adapter = nullptr;
  std::shared_ptr<DevicePassState> device;  // set when the forward ran on an accelerator
};

class Model {
 public:
  // A local HF model directory or a hub id in the HF cache (formats/hf_cache.h); reads
  // config.json and every safetensors tensor, then moves to `device`. Throws kto::Error
  // (NotFound, Format, Unsupported; Cuda / OutOfMemory from the GPU). With
  // options.load_in_4bit each projection is quantised to NF4 as it is read, so neither host nor
  // GPU ever holds the whole base in a wider dtype.
  static Model load(const std::string& name_or_path, DeviceChoice device = {}, const WeightsLoadOptions& options = {});
  // From parts already in memory (tests, merged weights).
  static Model from_parts(ModelConfig config, Weights weights, std::string dir = "");

  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  const std::string& dir() const { return dir_; }  // the resolved directory ("" when from parts)

  // Where the passes below run. On a GPU the weights live there as bf16 (DESIGN.md §4) and every
  // pass but full fine-tuning runs there; the host weights stay for saving and merging. A GPU
  // model serves one thread at a time (its calls are serialised).
  void to_device(DeviceChoice device);
  DeviceChoice device() const { return device_; }
  std::string device_description() const;  // "cpu (fp32)" or the GPU's line
  // Plans device memory for passes of up to n_tokens tokens and n_head_rows scored completion
  // tokens (with training activations for `adapter` when given, all kept or, with
  // checkpointing, each layer's input only); nothing on the CPU.
  void reserve(int64_t n_tokens, int64_t n_head_rows, const LoraAdapter* adapter,
               Checkpointing checkpointing = Checkpointing::Off) const;

  // Rows of the chunked log-prob head computed at once (memory: rows × V floats).
  void set_head_chunk_rows(int64_t rows);

  // Final-normed hidden states [T, D] f32 of a packed batch.
  HostTensor forward_hidden(const PackedBatch& batch) const;
  // Logits [T, V] f32 for every token (meant for small inputs; training never calls this).
  HostTensor forward_logits(const PackedBatch& batch) const;
  // For each sequence s: Σ_{t = seq_starts[s]+n_prompt[s] .. seq_starts[s+1]-1}
  // log p(tokens[t] | tokens[<t] of s), from the chunked head at those positions only.
  // n_prompt[s] must be in [1, len(s)]; a sequence with n_prompt[s] == len(s) scores 0.
  std::vector<double> sequence_logprobs(const PackedBatch& batch, std::span<const int32_t> n_prompt) const;

  // Scores (log-probs and metric sums) of completions with an optional LoRA adapter applied
  // in inference mode (no dropout, no gradient); nullptr = the base model (KTO's reference).
  // With `keep`, the prompts' keys and values are kept for sequence_scores_after.
  SequenceScores sequence_scores(const PackedBatch& batch, std::span<const int32_t> n_prompt,
                                 const LoraAdapter* adapter, PromptCache* keep = nullptr) const;
  // sequence_scores for sequences whose prompts are the ones `kept` holds, in order (sequence s
  // continues kept prompt s), with the adapter they were kept with, unchanged since: on an
  // accelerator only each completion (and the prompt's last token, which predicts its first
  // token) is computed, attending to the kept keys and values. When the prompts or the adapter
  // differ it computes the whole sequences, as sequence_scores does.
  SequenceScores sequence_scores_after(const PromptCache& kept, const PackedBatch& batch,
                                       std::span<const int32_t> n_prompt, const LoraAdapter* adapter) const;
  // Plans an accelerator's room for `n_tokens` kept prompt tokens in `cache` (a no-op on the CPU).
  void reserve_prompts(PromptCache& cache, int64_t n_tokens) const;
  // The policy's training forward: scores with `adapter` in training mode (dropout when
  // lora_dropout > 0), keeping the activations backward_train needs. `adapter` must outlive the
  // pass and stay unchanged until backward_train.
  TrainPass forward_train(const PackedBatch& batch, std::span<const int32_t> n_prompt, const LoraAdapter& adapter,
                          const DecoderTrainOptions& options = {}, PromptCache* keep = nullptr) const;
  // Accumulates into adapter's d_a / d_b the gradient of Σ_s d_logps[s] · pass.scores.logps[s]
  // (d_logps = ∂loss/∂logp per sequence, e.g. KtoLossResult::d_policy_logps). `adapter` must
  // be the one given to forward_train.
  void backward_train(const TrainPass& pass, std::span<const double> d_logps, LoraAdapter& adapter) const;

  // Full fine-tuning: the training forward of the base model itself (no adapter), and its
  // backward accumulating into `grads` (weights_zeros_like(weights())) the gradient of
  // Σ_s d_logps[s] · pass.scores.logps[s] with respect to every weight: projections, biases,
  // norms, the embedding and the head (into grads.embed when the head is tied).
  TrainPass forward_train_full(const PackedBatch& batch, std::span<const int32_t> n_prompt) const;
  void backward_train_full(const TrainPass& pass, std::span<const double> d_logps, Weights& grads) const;
  // The weights full fine-tuning updates in place (no other pass may run meanwhile); call
  // weights_updated() after changing them (a GPU copy re-reads them).
  Weights& mutable_weights() { return weights_; }
  void weights_updated();

  // Incremental decoding of one sequence. decode appends new_tokens (≥ 1) to the cache and
  // returns the logits [V] f32 after the last of them. InvalidArgument when the cache is full.
  // With `adapter`, its LoRA path is added to every wrapped projection in inference mode (no
  // dropout, not merged); a cache must be filled with one adapter (or none) throughout.
  KvCache new_cache(int64_t max_tokens) const;
  HostTensor decode(KvCache& cache, std::span<const int32_t> new_tokens) const;
  HostTensor decode(KvCache& cache, std::span<const int32_t> new_tokens, const LoraAdapter* adapter) const;

 private:
  Model() = default;
  Decoder decoder() const { return {&config_, &weights_, inv_freq_.view()}; }
  Decoder decoder(const LoraAdapter* adapter) const { return {&config_, &weights_, inv_freq_.view(), adapter}; }
  // The chunked head over `rows` of hidden: fills scores (and logsumexp when non-null [N]).
  SequenceScores score_rows(const HostTensor& hidden, const CompletionRows& rows, int64_t n_seqs,
                            HostTensor* logsumexp) const;
  // The chunked head's backward for per-sequence d_logps: returns d_hidden [T, D]; accumulates
  // the head weight's gradient into d_head [V, D] when present.
  HostTensor head_backward(const TrainPass& pass, std::span<const double> d_logps, const Tensor& d_head) const;

  ModelConfig config_;
  Weights weights_;
  HostTensor inv_freq_;  // [Dh/2] f32
  std::string dir_;
  int64_t head_chunk_rows_ = 256;
  DeviceChoice device_;
  std::shared_ptr<ModelAccelerator> accel_;  // null on the CPU
};

}  // namespace kto
