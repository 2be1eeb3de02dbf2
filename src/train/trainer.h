// Trainer: the training loop (spec/kto.md §3–6, HF Trainer semantics for steps, gradient
// accumulation, clipping, schedules, logging and checkpoints) for two objectives:
//   kto — for each micro-batch of the accumulation: KL pass (policy, no grad) → reference passes
//         (LoRA off, or the reference cache) → policy forward with saved activations → KTO loss
//         → backward into the LoRA gradients (scaled by 1 / micro-batches in the step);
//   sft — TRL SFTTrainer: policy forward → completion-only NLL / completion tokens of the step
//         (train/sft_loss.h) → backward into the LoRA gradients or, with finetuning_type full,
//         into every weight of the model (updated in place);
// then global-norm clip → AdamW → LR schedule → log / evaluate / checkpoint.
// Resume continues bit-exactly: weights, AdamW moments, step, data position and every random
// draw (dropout masks derive from the seed and the step) are restored or re-derived.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "model/lora.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/adamw8bit.h"
#include "train/kto_loss.h"
#include "train/metrics.h"
#include "train/schedule.h"
#include "train/sft_data.h"
#include "train/train_config.h"
#include "train/train_state.h"

namespace kto {

// Wall time of each part of the KTO micro-steps so far, in seconds (a GPU pass ends with a copy
// of its results to the host, so a call's wall time is its device time). For benchmarks.
struct TrainerPhaseTimes {
  double kl = 0.0;              // policy on the KL sequences, no gradient
  double reference = 0.0;       // reference (LoRA off) on main and KL sequences
  double policy_forward = 0.0;  // policy on the main sequences, activations kept (includes the head)
  double backward = 0.0;        // head + decoder backward into the LoRA gradients
  double optimizer = 0.0;       // clipping + AdamW (per optimizer step)
  int64_t micro_steps = 0;
};

// What the trainer reports as it goes (the CLI draws its progress line from these).
struct TrainerEvents {
  std::function<void(const TrainerState&, const std::map<std::string, double>&)> on_log;
  std::function<void(const TrainerState&)> on_step;
  std::function<void(const std::string& path)> on_save;
};

class Trainer {
 public:
  // KTO of a LoRA adapter (config.objective kto).
  Trainer(const TrainConfig& config, const Model& model, const KtoDatasets& data, LoraAdapter adapter);
  // SFT of a LoRA adapter (objective sft, finetuning_type lora).
  Trainer(const TrainConfig& config, const Model& model, const SftDatasets& data, LoraAdapter adapter);
  // SFT of every weight of `model`, updated in place (objective sft, finetuning_type full).
  // Checkpoints and the final output are HF model directories (config.json, model.safetensors
  // and the tokenizer files copied from the model's directory).
  Trainer(const TrainConfig& config, Model& model, const SftDatasets& data);

  // Restores adapter, optimizer, schedule position and data position from a checkpoint dir.
  void resume(const std::string& checkpoint_dir);
  // Trains until total_steps() or a stop request; saves checkpoints every save_steps, at a stop
  // request and at the end, and writes the final adapter into output_dir.
  void train(const TrainerEvents& events = {});
  // Metrics of the policy on the eval dataset (eval_ prefix), no gradients.
  std::map<std::string, double> evaluate();

  // Asks train() to checkpoint and return after the current optimizer step (signal-safe).
  static void request_stop();

  const TrainerState& state() const { return state_; }
  const TrainerPhaseTimes& phase_times() const { return phase_times_; }
  const LoraAdapter& adapter() const { return adapter_; }  // empty with full fine-tuning
  bool full_finetuning() const { return full_model_ != nullptr; }
  int64_t n_trainable() const;
  int64_t total_steps() const { return total_steps_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  std::string save_checkpoint();  // checkpoint-<global_step>; returns its path

 private:
  struct StepResult {
    double loss = 0.0;
    double grad_norm = 0.0;
    int64_t tokens = 0;
  };
  void init_run(int64_t n_train_examples);  // step counts, schedule, optimizer moments
  void reserve_device_memory();  // on a GPU: plans memory for the longest micro-batch up front
  StepResult optimizer_step();
  double micro_step(std::span<const int64_t> batch, double grad_scale);
  // SFT: one micro-batch's loss (NLL sum / num_items_in_batch) and backward (trainer_sft.cpp).
  double sft_micro_step(std::span<const int64_t> batch, double num_items_in_batch);
  std::map<std::string, double> sft_evaluate();
  std::vector<std::vector<int64_t>> train_micro_batches(int64_t epoch) const;
  // The trained parameters and their gradients, in one fixed order (adapter or full weights).
  std::vector<NamedTensor> trainable_parameters() const;
  std::vector<NamedTensor> trainable_gradients() const;
  void zero_grad();
  void save_trainable(const std::string& dir) const;  // PEFT adapter, or an HF model directory
  void load_trainable(const std::string& dir);
  // The reference's log-probs of a batch (from ref_cache_ when all are there); `keep` as in
  // Model::sequence_scores (left empty when they came from the cache).
  std::vector<double> reference_logps(const PackedBatch& batch, std::span<const int32_t> n_prompt,
                                      const std::vector<std::pair<int64_t, int64_t>>& keys, PromptCache* keep = nullptr);
  // The same for sequences continuing the prompts `kept` holds (Model::sequence_scores_after).
  std::vector<double> reference_logps_after(const PromptCache& kept, const PackedBatch& batch,
                                            std::span<const int32_t> n_prompt,
                                            const std::vector<std::pair<int64_t, int64_t>>& keys);
  bool cached_reference(const std::vector<std::pair<int64_t, int64_t>>& keys, std::vector<double>& out) const;
  double clip_gradients();
  void log_step(const StepResult& step, const TrainerEvents& events);
  void write_final(const TrainerEvents& events);
  double epoch_progress() const;  // HF's fractional epoch: micro-batches consumed / per epoch
  TrainStateInfo state_info() const;

  TrainConfig config_;
  const Model& model_;
  const KtoDatasets* data_ = nullptr;     // objective kto
  const SftDatasets* sft_data_ = nullptr; // objective sft
  LoraAdapter adapter_;
  Model* full_model_ = nullptr;  // full fine-tuning: the model whose weights are trained
  Weights full_grads_;           // full fine-tuning: gradients, shaped as the weights
  KtoLossConfig loss_config_;
  AdamWConfig adamw_;
  Schedule schedule_;
  std::vector<HostTensor> exp_avg_, exp_avg_sq_;  // per adapter parameter, in parameters() order
  std::vector<AdamW8bitState> adam8_;             // optim adamw_8bit: the same, 8-bit (exp_avg_ empty)
  TrainerState state_;
  TrainerPhaseTimes phase_times_;
  MetricLog metrics_;
  std::vector<double> step_losses_;  // losses of the steps since the last log
  int64_t micro_batches_per_epoch_ = 0, steps_per_epoch_ = 0, total_steps_ = 0;
  // Reference log-probs by (prompt example, completion example); filled on first use, or for
  // the whole first epoch up front when precompute_ref_log_probs is set.
  std::map<std::pair<int64_t, int64_t>, double> ref_cache_;
  // The main sequences' prompts, kept by the reference's and the policy's main passes for their
  // KL passes (Model::sequence_scores_after).
  PromptCache ref_prompts_, policy_prompts_;
};

}  // namespace kto
