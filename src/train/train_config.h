// TrainConfig: every `kto train` setting, named as TRL's KTOConfig / SFTConfig / HF
// TrainingArguments / PEFT LoraConfig name it (shared/spec/kto.md §7), read from YAML and
// `key=value` overrides. KTO keys are ignored by objective sft.
// Aliases from axolotl / LLaMA-Factory are accepted with a notice; unknown keys are errors that
// suggest the nearest known key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/nf4.h"

namespace kto {

struct TrainConfig {
  // model and data
  std::string model_name_or_path;
  std::string dataset_name;            // local .jsonl/.json file or folder, or a hub id
  std::string eval_dataset;            // optional file
  double eval_split = 0.0;             // fraction of the train rows held out when no eval_dataset
  std::string output_dir = "output";
  // what is trained, and how (LLaMA-Factory's names: `stage` is read as `objective`)
  std::string objective = "kto";        // kto | sft (TRL SFTTrainer: completion-only next-token loss)
  std::string finetuning_type = "lora"; // lora | full (every weight; objective sft only)
  // KTO (KTOConfig)
  std::string loss_type = "kto";       // kto | apo_zero_unpaired
  double beta = 0.1;
  double desirable_weight = 1.0;
  double undesirable_weight = 1.0;
  int64_t max_length = 1024;
  int64_t max_prompt_length = 0;       // 0 = unset (CUR rule); > 0 selects TRL's legacy rule
  std::string truncation_mode = "keep_end";
  bool precompute_ref_log_probs = false;
  bool disable_dropout = true;
  bool trl_compat = false;             // TRL's exact example order (no shuffle, unpair in blocks)
  // optimisation (TrainingArguments)
  double learning_rate = 1e-6;
  int64_t per_device_train_batch_size = 8;  // 0 = `auto`: the largest the memory plan fits (train_memory.h)
  bool auto_find_batch_size = false;         // HF's name: `auto`, searched up to per_device_train_batch_size
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;
  std::string lr_scheduler_type = "linear";
  double warmup_ratio = 0.0;
  double warmup_steps = 0.0;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  std::string optim = "adamw_torch";  // adamw_torch | adamw_8bit (bnb AdamW8bit) | paged_adamw_8bit | paged_adamw_32bit
  bool gradient_checkpointing = true;
  int64_t seed = 42;
  std::string device = "auto";         // auto | cpu | cuda | cuda:N (model/device.h)
  int64_t max_memory = 0;              // bytes of GPU memory the run may take ("24GiB", "80GB", …); 0 = unset
  // QLoRA: the base model's projections in NF4 (transformers BitsAndBytesConfig names)
  bool load_in_4bit = false;
  std::string bnb_4bit_quant_type = "nf4";       // nf4 only (fp4 is not supported)
  bool bnb_4bit_use_double_quant = false;        // quantise the absmax too (QLoRA's double quantisation)
  std::string bnb_4bit_compute_dtype = "float32"; // the GPU's matmul dtype; the CPU computes in float32
  // logging, saving, evaluation
  int64_t logging_steps = 10;
  int64_t save_steps = 500;
  int64_t save_total_limit = 0;        // 0 = keep all
  int64_t eval_steps = 0;              // 0 = no periodic evaluation
  std::string resume_from_checkpoint;  // "", "true" (latest in output_dir) or a path
  // LoRA (PEFT LoraConfig)
  int64_t lora_r = 16;
  double lora_alpha = 16.0;
  double lora_dropout = 0.0;
  std::vector<std::string> lora_target_modules = {"all-linear"};
  bool use_rslora = false;
  std::string adapter_name_or_path;    // start from this PEFT adapter instead of a fresh init
};

// Applies one `key: value` (YAML scalar or sequence text). `where` names the source for messages
// ("config.yaml:12", "--beta"). Unknown keys throw InvalidArgument suggesting the nearest key.
void train_config_set(TrainConfig& config, const std::string& key, const std::string& value, const std::string& where);
// Reads a YAML file (a mapping of keys) into `config`.
void train_config_load_yaml(TrainConfig& config, const std::string& path);
// Checks cross-key constraints (batch size 1 with kto, ranges); throws InvalidArgument. A batch
// size `auto` (0) passes; it must be resolved (train_memory_resolve) before a Trainer is made.
void train_config_validate(const TrainConfig& config);
// "24GiB", "24 GiB", "80GB", "512MiB", "1.5TiB" or a byte count → bytes (KiB/MiB/GiB/TiB powers of
// 1024, KB/MB/GB/TB of 1000, as accelerate's max_memory); InvalidArgument naming `where` otherwise.
int64_t train_config_parse_bytes(const std::string& text, const std::string& where);
// All canonical key names, in declaration order (for --help and suggestions).
std::vector<std::string> train_config_keys();
// Every setting as `key: value` YAML lines (the resolved config; readable by load_yaml).
std::string train_config_dump(const TrainConfig& config);
// The nearest known key by edit distance, or "" when nothing is close.
std::string train_config_suggest(const std::string& unknown);

// The optimizer `optim` names: adamw_torch (also adamw_torch_fused, paged_adamw_32bit) or the
// 8-bit bitsandbytes AdamW (adamw_8bit, adamw_bnb_8bit, paged_adamw_8bit). Paging (bnb's
// unified-memory states) only matters on a GPU; on the CPU the paged names are their plain twins.
enum class OptimKind : uint8_t { AdamW, AdamW8bit };
OptimKind train_config_optim(const TrainConfig& config);
// load_in_4bit's quantisation (blocksize 64, double quant per bnb_4bit_use_double_quant); the
// weight dtype recorded in the quant state is `weight_dtype` (the checkpoint's dtype).
Nf4QuantizeOptions train_config_nf4(const TrainConfig& config, const std::string& weight_dtype);

}  // namespace kto
