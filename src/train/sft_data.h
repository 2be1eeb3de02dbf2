// SFT examples as TRL 1.9's SFTTrainer prepares prompt-completion rows (sft_trainer.py
// `add_eos` + `tokenize_fn` + truncation): EOS text appended to the completion when missing,
// input_ids = tokenize(prompt + completion), completion mask = positions past len(tokenize(prompt)),
// truncated keep_start to max_length. Rows: {prompt, completion}, {instruction, response|output}
// or {text} (language modelling: every token after the first is scored). A micro-batch is
// per_device_train_batch_size examples packed end to end (DESIGN.md §3, no padding).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/packed_batch.h"

namespace kto {

class Tokenizer;

struct SftExample {
  std::vector<int32_t> ids;  // prompt + completion (+ EOS), truncated
  int32_t n_prompt = 0;      // leading positions not scored (>= 1 in packs: the first token never is)
  std::string where;         // "file:line" of the source row
};

struct SftOptions {
  int64_t max_length = 1024;  // keep_start truncation (TRL's SFTConfig default)
  uint64_t seed = 42;         // epoch shuffles and eval_split
  bool shuffle = true;        // false: the file's order every epoch (trl_compat)
};

// One packed micro-batch: the batch and, per sequence, the unscored prefix length.
struct SftMicroBatch {
  PackedBatch batch;
  std::vector<int32_t> n_prompt;  // [S], clamped to [1, len]
  int64_t n_completion = 0;       // scored tokens in the micro-batch (TRL's num_items_in_batch share)
};

class SftDataset {
 public:
  // `path`: a .jsonl / .json file or a folder of them. Errors name file:line and say what to fix.
  static SftDataset load(const std::string& path, const Tokenizer& tokenizer, const SftOptions& options);
  static SftDataset from_examples(std::vector<SftExample> examples, const SftOptions& options);

  int64_t size() const { return static_cast<int64_t>(examples_.size()); }
  std::span<const SftExample> examples() const { return examples_; }
  // The epoch's micro-batches of example indices (data/order.h; shuffled with seed and epoch).
  std::vector<std::vector<int64_t>> micro_batches(int64_t epoch, int64_t batch_size) const;
  SftMicroBatch pack(std::span<const int64_t> batch) const;
  int64_t completion_tokens(std::span<const int64_t> batch) const;

 private:
  std::vector<SftExample> examples_;
  SftOptions options_;
};

struct SftDatasets {
  SftDataset train;
  std::optional<SftDataset> eval;
};

// Train rows from `train_path`; eval rows from `eval_path`, else `eval_split` of the train rows.
SftDatasets load_sft_datasets(const std::string& train_path, const std::string& eval_path, double eval_split,
                              const Tokenizer& tokenizer, const SftOptions& options);

}  // namespace kto
