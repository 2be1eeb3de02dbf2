// KtoDataset: a KTO dataset read, normalised, tokenised and filtered as TRL v1.9's
// KTOTrainer._prepare_dataset does (rows → unpair → EOS + tokenise → drop prompts that fill
// max_length), held as Examples in TRL's order, with statistics, per-epoch micro-batches and
// packing. Immutable once built; const methods may run concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/rows.h"
#include "data/stats.h"
#include "data/truncation.h"
#include "tokenizer/chat_template/chat_template.h"

namespace kto {

class Tokenizer;

struct DataOptions {
  TruncationRule truncation;          // max_length, max_prompt_length, truncation_mode
  TrlCompat trl_compat = TrlCompat::No;
  uint64_t seed = 42;                 // epoch shuffles and eval_split
  double desirable_weight = 1.0;      // for the imbalance advice only
  double undesirable_weight = 1.0;
  // The model's chat template, for conversational rows (data/tokenize.h chat_template_find);
  // without one, a dataset with conversational rows is an InvalidArgument error.
  std::optional<ChatTemplate> chat_template;
};

enum class DatasetRole { Train, Eval };  // only Train gets the imbalance advice

class KtoDataset {
 public:
  // `path`: a .jsonl / .json file or a folder of them (rows.h dataset_files). Errors name the
  // dataset file and line; a dataset with no examples left is InvalidArgument.
  static KtoDataset load(const std::string& path, const Tokenizer& tokenizer, const DataOptions& options,
                         DatasetRole role = DatasetRole::Train);
  // From rows already read from `files` (SourceRef::file indexes `files`).
  static KtoDataset build(std::vector<std::string> files, std::vector<SourceRow> rows, const Tokenizer& tokenizer,
                          const DataOptions& options, DatasetRole role);

  std::span<const Example> examples() const { return examples_; }
  int64_t size() const { return static_cast<int64_t>(examples_.size()); }
  const DatasetStats& stats() const { return stats_; }
  const DataOptions& options() const { return options_; }
  std::string where(int64_t example) const;  // "file:line" of the example's source row

  // The epoch's micro-batches of `batch_size` example indices (order.h: sequential under
  // trl_compat, else shuffled with the seed and the epoch); the last may be shorter.
  std::vector<std::vector<int64_t>> micro_batches(int64_t epoch, int64_t batch_size) const;
  // Packs one micro-batch with KL sequences rotated inside it, truncated by options().truncation.
  PackedMicroBatch pack(std::span<const int64_t> batch, KlSequences kl) const;

 private:
  std::vector<std::string> files_;
  std::vector<Example> examples_;
  DatasetStats stats_;
  DataOptions options_;
};

struct KtoDatasets {
  KtoDataset train;
  std::optional<KtoDataset> eval;
};

// The train dataset, and an eval dataset from `eval_path` when given, else from holding out
// `eval_split` (0 = none) of the train file's rows, chosen with options.seed (order.h
// split_train_eval; a paired row stays whole on one side).
KtoDatasets load_kto_datasets(const std::string& train_path, const std::string& eval_path, double eval_split,
                              const Tokenizer& tokenizer, const DataOptions& options);

}  // namespace kto
