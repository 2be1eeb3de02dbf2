// What a checkpoint holds besides the PEFT adapter, and the files it goes in:
//   trainer_state.json     HF Trainer's layout (global_step, epoch, log_history, …), for users
//                          and tools that read HF runs;
//   optimizer.safetensors  AdamW moments, "exp_avg.<PEFT name>" / "exp_avg_sq.<PEFT name>" (f32);
//   kto_state.json         the exact resume position: step, epoch, micro-batch, token count.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/lora.h"
#include "tensor/tensor.h"

namespace kto {

struct TrainerState {
  int64_t global_step = 0;       // optimizer steps done
  int64_t epoch = 0;             // epoch of the next micro-batch
  int64_t next_micro_batch = 0;  // its index inside that epoch's order
  int64_t num_tokens = 0;        // main-sequence tokens seen (TRL's num_tokens)
  double seconds = 0.0;          // training time so far, over all runs
  nlohmann::json log_history = nlohmann::json::array();
};

// Run-level numbers trainer_state.json repeats.
struct TrainStateInfo {
  int64_t max_steps = 0, logging_steps = 0, save_steps = 0, eval_steps = 0, train_batch_size = 0;
  double num_train_epochs = 0.0, epoch = 0.0;
};

void train_state_write_json(const std::string& dir, const TrainerState& state, const TrainStateInfo& info);
void train_state_save(const std::string& dir, const TrainerState& state, const LoraAdapter& adapter,
                      const std::vector<HostTensor>& exp_avg, const std::vector<HostTensor>& exp_avg_sq,
                      const TrainStateInfo& info);
// Restores state and the AdamW moments (shapes must match the adapter's parameters). Errors
// name the checkpoint file and what is wrong with it.
void train_state_load(const std::string& dir, TrainerState& state, const LoraAdapter& adapter,
                      std::vector<HostTensor>& exp_avg, std::vector<HostTensor>& exp_avg_sq);
// The same for any trained parameters (the moments are named "exp_avg.<name>"): an adapter's
// parameters(), or a model's Weights::parameters() under full fine-tuning.
void train_state_save(const std::string& dir, const TrainerState& state, const std::vector<NamedTensor>& params,
                      const std::vector<HostTensor>& exp_avg, const std::vector<HostTensor>& exp_avg_sq,
                      const TrainStateInfo& info);
void train_state_load(const std::string& dir, TrainerState& state, const std::vector<NamedTensor>& params,
                      std::vector<HostTensor>& exp_avg, std::vector<HostTensor>& exp_avg_sq);

}  // namespace kto
