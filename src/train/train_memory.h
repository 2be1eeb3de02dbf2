// The memory plan of a `kto train` run (model/memory_plan.h) from its TrainConfig: the plan's
// inputs, the largest pass of the first epoch as the trainer reserves for it, the memory budget
// (max_memory, or the GPU's free memory), the `auto` batch size, and — when nothing fits — one
// message naming the settings that would fit, with the peak each would give. Everything here
// runs before any weight is read (config.json, tokenizer and dataset only).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "data/dataset.h"
#include "model/device.h"
#include "model/memory_plan.h"
#include "train/sft_data.h"
#include "train/train_config.h"

namespace kto {

// The largest pass of a batch size at a max_length: (batch_size, max_length) → extent.
using PassExtentFn = std::function<PassExtent(int64_t batch_size, int64_t max_length)>;

// How the base sits on the GPU: NF4 for load_in_4bit or a bitsandbytes 4-bit checkpoint (its
// config.json `quantization_config`), with double quantisation as either says; else bf16.
BaseWeights train_memory_base(const TrainConfig& config, const nlohmann::json& model_config_json);

// What a run's plan depends on besides the TrainConfig.
struct TrainMemorySetup {
  ModelConfig model;
  BaseWeights base = BaseWeights::Bf16;
  PassExtentFn extent;            // the largest training pass of a batch size and max_length
  PassExtent eval_pass{0, 0, {}}; // the largest evaluation pass (inference only); 0 tokens = none
  int64_t n_examples = 1;         // training examples: the largest batch `auto` tries
  std::optional<LoraPlan> lora;   // the adapter_name_or_path adapter's rank, targets, dropout
};
// The plan's inputs of `config` (or a variant of it) on base `base` for the pass `pass`.
MemoryPlanInputs train_memory_inputs(const TrainConfig& config, const TrainMemorySetup& setup, BaseWeights base,
                                     PassExtent pass);
// The LoRA settings of adapter_name_or_path's adapter_config.json (nullopt without one).
std::optional<LoraPlan> train_memory_adapter_lora(const TrainConfig& config);

// The largest pass of the first epoch's micro-batches of `batch_size`, main or KL sequences, as
// the packer would make them (tokens of a kind, scored rows = length − max(1, prompt)), and the
// prompts it keeps and the KL pass over them (PassExtent::kl_reuse), with the sequences cut by
// `rule` (the dataset's own truncation, or a smaller max_length to try). From lengths only:
// nothing is packed. Trainer::reserve_device_memory reserves what it returns.
PassExtent train_pass_extent(const KtoDataset& data, int64_t batch_size, KlSequences kl, const TruncationRule& rule);
// SFT: the first epoch's micro-batches (examples cut keep_start to `max_length`).
PassExtent train_pass_extent(const SftDataset& data, int64_t batch_size, int64_t max_length);
// The extent function of a dataset, and of no data (batch × max_length: the most a pass can hold).
PassExtentFn train_extent_fn(const KtoDataset& data, KlSequences kl);
PassExtentFn train_extent_fn(const SftDataset& data);
PassExtentFn train_extent_fn_upper_bound();

// What the predicted peak may take: max_memory less the CUDA context estimate, else (on a GPU)
// its free memory now less what cuBLAS and the kernels still add; else no limit.
struct MemoryBudget {
  int64_t bytes = 0;  // may be <= 0: max_memory below the context estimate fits nothing
  std::string what;   // "max_memory 24.00 GiB less ~512.0 MiB for the CUDA context"; "" = no limit
  bool limited() const { return !what.empty(); }
};
MemoryBudget train_memory_budget(const TrainConfig& config, const DeviceChoice& device);

// per_device_train_batch_size `auto` without a budget (on the CPU): this many sequences.
constexpr int64_t kAutoBatchWithoutBudget = 8;

struct MemoryResolution {
  int64_t batch_size = 0;   // what per_device_train_batch_size becomes
  PassExtent extent;        // the largest pass at that batch size
  MemoryPlanInputs inputs;  // what `plan` was made from
  MemoryPlan plan;
  MemoryBudget budget;      // what it was fitted in
  std::string note;         // the banner's line about `auto`'s choice ("" for a fixed batch)
  std::string advice;       // when it does not fit: train_memory_advice's message ("" when it fits)
};
// Resolves the batch size: a fixed one is checked against the budget; `auto` (batch size 0, or
// auto_find_batch_size up to the given size, as HF's halving search never goes above it) picks
// the largest that fits, between the objective's minimum and setup.n_examples. When nothing fits
// the plan is that of the batch size tried (auto: the smallest) and `advice` says what to change.
MemoryResolution train_memory_resolve(const TrainConfig& config, const TrainMemorySetup& setup, const MemoryBudget& budget);
// Throws Error(OutOfMemory) with memory.advice when the plan does not fit.
void train_memory_require_fit(const MemoryResolution& memory);

// "predicted peak … does not fit in …; change one of: gradient_checkpointing: true (→ 12.10 GiB),
// …": the single changes that fit (checkpointing, load_in_4bit, the largest batch size or
// max_length that fits), else the switches together with a batch / length, else that the model
// needs a larger GPU. `batch_size` is the size planned (`auto`: the smallest it tries).
enum class BatchSizeKind { Fixed, Auto };  // Auto: no smaller batch size to suggest
std::string train_memory_advice(const TrainConfig& config, const TrainMemorySetup& setup, const MemoryBudget& budget,
                                int64_t batch_size, BatchSizeKind kind);

// The plan as text lines (the dry run and `kto inspect --config`) and as JSON.
std::string train_memory_text(const MemoryPlanInputs& inputs, const MemoryPlan& plan, int64_t batch_size);
// train_memory_text of a resolution, then how it fits: `auto`'s choice or "fits in …".
std::string train_memory_text(const MemoryResolution& memory);
nlohmann::json train_memory_json(const MemoryPlan& plan, const PassExtent& extent, int64_t batch_size);

}  // namespace kto
