// KtoDataset construction in TRL v1.9's order (kto_trainer.py _prepare_dataset): unpair, add EOS
// and tokenise (data/tokenize.h; conversational rows through the chat template), drop rows whose prompt fills max_length, count, then warn about
// boundary mismatches once and about the desirable/undesirable balance (train split only).
#include "data/dataset.h"

#include <algorithm>
#include <exception>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/order.h"
#include "data/tokenize.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/log.h"

namespace kto {

namespace {

struct TokenizedSource {
  Example example;
  bool boundary_mismatch = false;
};

TokenizedRow tokenize_conversational(const SourceRow& row, const Tokenizer& tokenizer, const DataOptions& options,
                                     std::span<const std::string> files) {
  if (!options.chat_template) {
    fail(ErrorKind::InvalidArgument, source_where(row.source, files), ": conversational rows (message lists) are rendered "
         "with the model's chat template, and the model has none (no chat_template.jinja, no \"chat_template\" in "
         "tokenizer_config.json); add one to the model directory or convert the rows to string prompt/completion");
  }
  try {
    return tokenize_conversation(tokenizer, *options.chat_template, row.prompt_messages, row.completion_messages);
  } catch (const Error& e) {
    fail(e.kind(), source_where(row.source, files), ": applying the chat template: ", e.what());
  }
}

TokenizedSource tokenize_source(const SourceRow& row, const Tokenizer& tokenizer, const DataOptions& options,
                                std::span<const std::string> files) {
  TokenizedSource out;
  out.example.label = row.label;
  out.example.source = row.source;
  if (row.shape == RowShape::Tokens) {
    const int32_t vocab = tokenizer.vocab_size();
    for (const std::vector<int32_t>* ids : {&row.prompt_ids, &row.completion_ids}) {
      for (int32_t id : *ids) {
        if (id >= vocab) {
          fail(ErrorKind::Format, source_where(row.source, files), ": token id ", id,
               " is outside the tokenizer's vocabulary (", vocab, " ids); were these ids made with another tokenizer?");
        }
      }
    }
    out.example.prompt_ids = row.prompt_ids;
    out.example.completion_ids = row.completion_ids;
    return out;
  }
  KTO_ASSERT(row.shape == RowShape::Text, "paired rows must be unpaired before tokenisation");
  TokenizedRow ids = row.format == RowFormat::Conversational ? tokenize_conversational(row, tokenizer, options, files)
                                                            : tokenize_prompt_completion(tokenizer, row.prompt, row.completion);
  out.example.prompt_ids = std::move(ids.prompt_ids);
  out.example.completion_ids = std::move(ids.completion_ids);
  out.boundary_mismatch = ids.boundary_mismatch;
  return out;
}

// Tokenises rows on several threads (Tokenizer::encode is thread-safe); the first error in row
// order is rethrown.
std::vector<TokenizedSource> tokenize_all(std::span<const SourceRow> rows, const Tokenizer& tokenizer,
                                          const DataOptions& options, std::span<const std::string> files) {
  std::vector<TokenizedSource> out(rows.size());
  const size_t n_threads = std::clamp<size_t>(rows.size() / 512, 1, std::max(1u, std::thread::hardware_concurrency()));
  const size_t chunk = (rows.size() + n_threads - 1) / n_threads;
  std::vector<std::exception_ptr> errors(n_threads);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n_threads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (size_t i = t * chunk; i < std::min(rows.size(), (t + 1) * chunk); ++i) {
          out[i] = tokenize_source(rows[i], tokenizer, options, files);
        }
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  return out;
}

std::string describe_files(std::span<const std::string> files) {
  if (files.size() == 1) return files[0];
  return str_cat(files[0], " and ", files.size() - 1, " more files");
}

// Where the first mismatching row's prompt and prompt + completion part, as text.
std::string boundary_example(const SourceRow& row, const Tokenizer& tokenizer, const DataOptions& options) {
  std::string prompt = row.prompt, full = row.prompt + row.completion;
  if (row.format == RowFormat::Conversational) {
    Messages all = row.prompt_messages;
    for (const nlohmann::json& message : row.completion_messages) all.push_back(message);
    prompt = chat_template_apply(*options.chat_template, tokenizer, row.prompt_messages, AddGenerationPrompt::Yes);
    full = chat_template_apply(*options.chat_template, tokenizer, all, AddGenerationPrompt::No);
  }
  size_t k = 0;
  while (k < prompt.size() && k < full.size() && prompt[k] == full[k]) ++k;
  auto quote = [](const std::string& s) { return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); };
  const size_t from = k > 32 ? k - 32 : 0;
  if (k == prompt.size()) {
    return str_cat(" (prompt ends ", quote(prompt.substr(from)), ", completion starts ", quote(full.substr(k, 32)),
                   ": a token merges across the boundary)");
  }
  return str_cat(" (the prompt with the generation prompt renders ", quote(prompt.substr(from)), ", prompt + completion ",
                 quote(full.substr(from, k - from + 32)), ": the template's generation prompt is not the start of its "
                 "assistant turn)");
}

void warn_label_balance(const DatasetStats& stats) {
  if (stats.n_desirable == 0 || stats.n_undesirable == 0) {
    log_warn("the train dataset has only ", stats.n_desirable == 0 ? "undesirable" : "desirable",
             " examples (", stats.n_examples(), "); KTO trains on one label, but its KL reference point then comes "
             "from that label alone", stats.n_desirable == 0 ? "; keep the learning rate conservative" : "");
  }
  if (stats.imbalance) log_warn(stats.imbalance->message);
}

}  // namespace

KtoDataset KtoDataset::load(const std::string& path, const Tokenizer& tokenizer, const DataOptions& options,
                            DatasetRole role) {
  std::vector<std::string> files = dataset_files(path);
  std::vector<SourceRow> rows = read_source_rows(files, options.trl_compat);
  return build(std::move(files), std::move(rows), tokenizer, options, role);
}

KtoDataset KtoDataset::build(std::vector<std::string> files, std::vector<SourceRow> rows, const Tokenizer& tokenizer,
                             const DataOptions& options, DatasetRole role) {
  options.truncation.validate();
  KtoDataset ds;
  ds.files_ = std::move(files);
  ds.options_ = options;
  DatasetStats& st = ds.stats_;
  st.rows_read = static_cast<int64_t>(rows.size());
  if (rows.empty()) fail(ErrorKind::InvalidArgument, describe_files(ds.files_), ": the dataset has no rows");

  const std::vector<SourceRow> unpaired = unpair_rows(std::move(rows));
  std::vector<TokenizedSource> tokenized = tokenize_all(unpaired, tokenizer, options, ds.files_);
  std::vector<int64_t> prompt_lens, completion_lens;
  const SourceRow* first_mismatch = nullptr;
  const Example* first_dropped = nullptr;
  for (size_t i = 0; i < tokenized.size(); ++i) {
    Example& e = tokenized[i].example;
    (e.label ? st.read_desirable : st.read_undesirable) += 1;
    if (tokenized[i].boundary_mismatch && st.boundary_mismatches++ == 0) first_mismatch = &unpaired[i];
    const auto n_prompt = static_cast<int64_t>(e.prompt_ids.size());
    const auto n_completion = static_cast<int64_t>(e.completion_ids.size());
    if (options.truncation.drops(n_prompt)) {
      if (st.dropped_long_prompt++ == 0) first_dropped = &e;
      continue;
    }
    if (truncate_sequence(n_prompt, n_completion, options.truncation).length() < n_prompt + n_completion) ++st.truncated;
    prompt_lens.push_back(n_prompt);
    completion_lens.push_back(n_completion);
    (e.label ? st.n_desirable : st.n_undesirable) += 1;
  }
  if (first_mismatch) {
    log_warn(st.boundary_mismatches, " of ", tokenized.size(), " rows in ", describe_files(ds.files_),
             ": the prompt's tokens are not a prefix of the tokens of prompt + completion, first at ",
             source_where(first_mismatch->source, ds.files_), boundary_example(*first_mismatch, tokenizer, options),
             "; as TRL does, these rows train on prompt tokens followed by the completion tokens that follow them");
  }
  if (first_dropped) {
    log_warn(st.dropped_long_prompt, " rows dropped from ", describe_files(ds.files_), ": the prompt alone has >= max_length (",
             options.truncation.max_length, ") tokens, first at ", source_where(first_dropped->source, ds.files_),
             " (", first_dropped->prompt_ids.size(), " tokens); raise max_length to keep them");
  }
  for (TokenizedSource& t : tokenized) {
    if (!options.truncation.drops(static_cast<int64_t>(t.example.prompt_ids.size()))) {
      ds.examples_.push_back(std::move(t.example));
    }
  }
  if (ds.examples_.empty()) {
    fail(ErrorKind::InvalidArgument, describe_files(ds.files_), ": no examples left after dropping ", st.dropped_long_prompt,
         " rows whose prompt fills max_length (", options.truncation.max_length, "); raise max_length");
  }
  st.prompt_tokens = LengthStats::of(prompt_lens);
  st.completion_tokens = LengthStats::of(completion_lens);
  if (role == DatasetRole::Train) {
    st.imbalance = weight_advice(st.n_desirable, st.n_examples(), options.desirable_weight, options.undesirable_weight);
    warn_label_balance(st);
  }
  return ds;
}

std::string KtoDataset::where(int64_t example) const {
  return source_where(examples_[static_cast<size_t>(example)].source, files_);
}

std::vector<std::vector<int64_t>> KtoDataset::micro_batches(int64_t epoch, int64_t batch_size) const {
  return split_micro_batches(epoch_order(size(), epoch, options_.seed, options_.trl_compat), batch_size);
}

PackedMicroBatch KtoDataset::pack(std::span<const int64_t> batch, KlSequences kl) const {
  return pack_micro_batch(examples_, batch, options_.truncation, kl);
}

KtoDatasets load_kto_datasets(const std::string& train_path, const std::string& eval_path, double eval_split,
                              const Tokenizer& tokenizer, const DataOptions& options) {
  if (!eval_path.empty() && eval_split > 0.0) {
    fail(ErrorKind::InvalidArgument, "set eval_dataset or eval_split, not both");
  }
  std::vector<std::string> files = dataset_files(train_path);
  std::vector<SourceRow> rows = read_source_rows(files, options.trl_compat);
  if (eval_split <= 0.0) {
    KtoDatasets out{KtoDataset::build(std::move(files), std::move(rows), tokenizer, options, DatasetRole::Train), {}};
    if (!eval_path.empty()) out.eval = KtoDataset::load(eval_path, tokenizer, options, DatasetRole::Eval);
    return out;
  }
  const IndexSplit split = split_train_eval(static_cast<int64_t>(rows.size()), eval_split, options.seed);
  auto pick = [&rows](const std::vector<int64_t>& indices) {
    std::vector<SourceRow> part;
    part.reserve(indices.size());
    for (int64_t i : indices) part.push_back(std::move(rows[static_cast<size_t>(i)]));
    return part;
  };
  std::vector<SourceRow> eval_rows = pick(split.eval);
  std::vector<SourceRow> train_rows = pick(split.train);
  KtoDatasets out{KtoDataset::build(files, std::move(train_rows), tokenizer, options, DatasetRole::Train), {}};
  out.eval = KtoDataset::build(std::move(files), std::move(eval_rows), tokenizer, options, DatasetRole::Eval);
  return out;
}

}  // namespace kto
