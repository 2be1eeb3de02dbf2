// SFT rows → tokenised, truncated examples (TRL 1.9 SFTTrainer._prepare_dataset for
// non-conversational prompt-completion and text rows) and packed micro-batches.
#include "train/sft_data.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "data/jsonl.h"
#include "data/order.h"
#include "data/rows.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/log.h"

namespace kto {
namespace {

std::string string_field(const DataRow& row, const char* key) {
  const nlohmann::json& v = row.value.at(key);
  if (!v.is_string()) fail(ErrorKind::Format, row.where(), ": `", key, "` must be a string");
  return v.get<std::string>();
}

struct SftText {
  std::string prompt, completion;
  bool has_prompt = true;  // false for {text} rows: everything is scored
};

// The row's prompt and completion text; nullopt for a row labelled undesirable (skipped).
std::optional<SftText> parse_row(const DataRow& row) {
  const nlohmann::json& v = row.value;
  if (v.contains("label") && v["label"].is_boolean() && !v["label"].get<bool>()) return std::nullopt;
  if (v.contains("messages") || (v.contains("prompt") && v["prompt"].is_array())) {
    fail(ErrorKind::Unsupported, row.where(), ": conversational rows are not supported for objective sft yet; "
         "use {\"prompt\", \"completion\"} strings");
  }
  if (v.contains("prompt") && v.contains("completion")) return SftText{string_field(row, "prompt"), string_field(row, "completion")};
  if (v.contains("instruction")) {
    const char* answer = v.contains("response") ? "response" : v.contains("output") ? "output" : nullptr;
    if (!answer) fail(ErrorKind::Format, row.where(), ": an `instruction` row needs a `response` (or `output`)");
    return SftText{string_field(row, "instruction"), string_field(row, answer)};
  }
  if (v.contains("text")) return SftText{"", string_field(row, "text"), false};
  fail(ErrorKind::Format, row.where(), ": an SFT row needs {\"prompt\", \"completion\"}, {\"instruction\", "
       "\"response\"} or {\"text\"}; this one has none of them");
}

// The first scored position: past the prompt, and never position 0 (nothing predicts it).
int32_t scored_from(const SftExample& e) {
  const int32_t len = static_cast<int32_t>(e.ids.size());
  return std::clamp<int32_t>(e.n_prompt, 1, std::max<int32_t>(len, 1));
}

struct Tokenized {
  SftExample example;
  bool mismatch = false;
};

Tokenized tokenize(const Tokenizer& tokenizer, const SftText& text, int64_t max_length) {
  std::string completion = text.completion;
  const std::string& eos = tokenizer.eos_token();
  if (!eos.empty() && !completion.ends_with(eos)) completion += eos;
  Tokenized out;
  std::vector<int32_t> prompt_ids = text.has_prompt ? tokenizer.encode(text.prompt, AddSpecial::Yes) : std::vector<int32_t>{};
  out.example.ids = tokenizer.encode(text.prompt + completion, AddSpecial::Yes);
  out.mismatch = prompt_ids.size() > out.example.ids.size() ||
                 !std::equal(prompt_ids.begin(), prompt_ids.end(), out.example.ids.begin());
  if (max_length > 0 && static_cast<int64_t>(out.example.ids.size()) > max_length) {
    out.example.ids.resize(static_cast<size_t>(max_length));
  }
  out.example.n_prompt = static_cast<int32_t>(std::min(prompt_ids.size(), out.example.ids.size()));
  return out;
}

std::vector<DataRow> read_rows(const std::string& path) {
  std::vector<DataRow> rows;
  for (const std::string& file : dataset_files(path)) {
    JsonRowReader reader(file);
    while (std::optional<DataRow> row = reader.next()) rows.push_back(std::move(*row));
  }
  if (rows.empty()) fail(ErrorKind::InvalidArgument, path, ": the dataset has no rows");
  return rows;
}

SftDataset build(std::span<const DataRow> rows, const Tokenizer& tokenizer, const SftOptions& options) {
  std::vector<SftExample> examples;
  int64_t mismatches = 0, skipped = 0;
  for (const DataRow& row : rows) {
    std::optional<SftText> text = parse_row(row);
    if (!text) {
      ++skipped;
      continue;
    }
    Tokenized t = tokenize(tokenizer, *text, options.max_length);
    if (t.example.ids.size() < 2) {  // nothing to predict
      ++skipped;
      continue;
    }
    t.example.where = row.where();
    mismatches += t.mismatch ? 1 : 0;
    examples.push_back(std::move(t.example));
  }
  if (skipped) log_info(skipped, " row(s) not used for SFT (labelled false, or shorter than two tokens)");
  if (mismatches) {
    log_warn(mismatches, " row(s): the prompt's tokens are not a prefix of prompt+completion's (a merge across the "
             "boundary); as TRL, the joint tokenisation is trained with the prompt's length as the mask");
  }
  if (examples.empty()) fail(ErrorKind::InvalidArgument, "the SFT dataset has no usable rows");
  SftDataset out = SftDataset::from_examples(std::move(examples), options);
  return out;
}

}  // namespace

SftDataset SftDataset::from_examples(std::vector<SftExample> examples, const SftOptions& options) {
  SftDataset d;
  d.examples_ = std::move(examples);
  d.options_ = options;
  return d;
}

SftDataset SftDataset::load(const std::string& path, const Tokenizer& tokenizer, const SftOptions& options) {
  const std::vector<DataRow> rows = read_rows(path);
  return build(rows, tokenizer, options);
}

std::vector<std::vector<int64_t>> SftDataset::micro_batches(int64_t epoch, int64_t batch_size) const {
  const TrlCompat order = options_.shuffle ? TrlCompat::No : TrlCompat::Yes;
  return split_micro_batches(epoch_order(size(), epoch, options_.seed, order), batch_size);
}

SftMicroBatch SftDataset::pack(std::span<const int64_t> batch) const {
  std::vector<std::vector<int32_t>> seqs;
  SftMicroBatch out;
  for (int64_t i : batch) {
    const SftExample& e = examples_[static_cast<size_t>(i)];
    seqs.push_back(e.ids);
    out.n_prompt.push_back(scored_from(e));
  }
  out.n_completion = completion_tokens(batch);
  out.batch = PackedBatch::from_sequences(seqs);
  return out;
}

int64_t SftDataset::completion_tokens(std::span<const int64_t> batch) const {
  int64_t n = 0;
  for (int64_t i : batch) {
    const SftExample& e = examples_[static_cast<size_t>(i)];
    n += static_cast<int64_t>(e.ids.size()) - scored_from(e);
  }
  return n;
}

SftDatasets load_sft_datasets(const std::string& train_path, const std::string& eval_path, double eval_split,
                              const Tokenizer& tokenizer, const SftOptions& options) {
  const std::vector<DataRow> rows = read_rows(train_path);
  if (!eval_path.empty()) {
    const std::vector<DataRow> eval_rows = read_rows(eval_path);
    return {build(rows, tokenizer, options), build(eval_rows, tokenizer, options)};
  }
  if (eval_split <= 0) return {build(rows, tokenizer, options), std::nullopt};
  const IndexSplit split = split_train_eval(static_cast<int64_t>(rows.size()), eval_split, options.seed);
  std::vector<DataRow> train_rows, eval_rows;
  for (int64_t i : split.train) train_rows.push_back(rows[static_cast<size_t>(i)]);
  for (int64_t i : split.eval) eval_rows.push_back(rows[static_cast<size_t>(i)]);
  return {build(train_rows, tokenizer, options), build(eval_rows, tokenizer, options)};
}

}  // namespace kto
