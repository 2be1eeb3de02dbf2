// The pieces of one `kto train` run that the CLI verb and `kto demo` share, so that a config
// file the demo writes reproduces through `kto train` exactly what the demo trained: the data
// options a TrainConfig implies, the initial adapter, resuming, and the run's trainer_log.jsonl.
#pragma once

#include <fstream>
#include <map>
#include <string>

#include "data/dataset.h"
#include "model/lora.h"
#include "train/sft_data.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace kto {

// KTO data options (truncation, order, seed, weights, the model's chat template).
DataOptions train_kto_data_options(const TrainConfig& config, const std::string& model_dir);
// SFT data options (max_length keep_start, seed, order).
SftOptions train_sft_options(const TrainConfig& config);
// A fresh PEFT-initialised adapter from the lora_* keys, or adapter_name_or_path loaded.
LoraAdapter train_initial_adapter(const TrainConfig& config, const ModelConfig& model);
// Applies resume_from_checkpoint ("true" = the newest checkpoint in output_dir, or a path);
// returns the checkpoint resumed from, or "" when not resuming. NotFound when there is none.
std::string train_resume_if_requested(Trainer& trainer, const TrainConfig& config);

// output_dir/trainer_log.jsonl: one JSON object per log record ({metric: value, …, "step": N}),
// appended and flushed as training goes.
class TrainerLogFile {
 public:
  explicit TrainerLogFile(const std::string& output_dir);
  void append(int64_t step, const std::map<std::string, double>& record);

 private:
  std::ofstream out_;
};

}  // namespace kto
