// `kto score`: for each dataset row with a prompt and a completion, the summed log-probability
// of the completion tokens given the prompt (the quantity KTO is built on), as JSONL. Rows are
// tokenised exactly as TRL's KTOTrainer does (data/tokenize.h; conversational rows, data/
// conversation.h, through the model's chat template) and packed into batches.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "data/conversation.h"
#include "data/jsonl.h"
#include "data/tokenize.h"
#include "export/hub_ensure.h"
#include "formats/hf_cache.h"
#include "model/device.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct ScoreArgs {
  std::string device = "auto";
  std::string model, data, output, adapter;
  int64_t batch_tokens = 4096;
};

struct PendingRow {
  int64_t line;
  TokenizedRow ids;
};

void flush(const Model& model, const LoraAdapter* adapter, std::vector<PendingRow>& rows, std::FILE* out) {
  if (rows.empty()) return;
  std::vector<std::vector<int32_t>> sequences;
  std::vector<int32_t> n_prompt;
  for (const PendingRow& r : rows) {
    std::vector<int32_t> seq = r.ids.prompt_ids;
    seq.insert(seq.end(), r.ids.completion_ids.begin(), r.ids.completion_ids.end());
    sequences.push_back(std::move(seq));
    n_prompt.push_back(static_cast<int32_t>(r.ids.prompt_ids.size()));
  }
  std::vector<double> logps = model.sequence_scores(PackedBatch::from_sequences(sequences), n_prompt, adapter).logps;
  for (size_t i = 0; i < rows.size(); ++i) {
    nlohmann::json line = {{"line", rows[i].line},
                           {"logp", logps[i]},
                           {"prompt_tokens", rows[i].ids.prompt_ids.size()},
                           {"completion_tokens", rows[i].ids.completion_ids.size()}};
    std::fprintf(out, "%s\n", line.dump().c_str());
  }
  rows.clear();
}

// The row's ids as TRL's KTOTrainer makes them; nullopt for rows without a prompt and a completion.
std::optional<TokenizedRow> tokenize_row(const DataRow& row, const Tokenizer& tokenizer,
                                         const std::optional<ChatTemplate>& chat_template, const std::string& model_dir) {
  if (std::optional<PromptCompletionMessages> conv = conversation_prompt_completion(row)) {
    if (!chat_template) {
      fail(ErrorKind::InvalidArgument, row.where(), ": conversational rows are rendered with the model's chat template, and ",
           model_dir, " has none (no chat_template.jinja, no \"chat_template\" in tokenizer_config.json)");
    }
    try {
      return tokenize_conversation(tokenizer, *chat_template, conv->prompt, conv->completion);
    } catch (const Error& e) {
      fail(e.kind(), row.where(), ": applying the chat template: ", e.what());
    }
  }
  const auto& v = row.value;
  if (!v.contains("prompt") || !v.contains("completion")) return std::nullopt;
  if (!v["prompt"].is_string() || !v["completion"].is_string()) {
    fail(ErrorKind::Format, row.where(), ": `prompt` and `completion` must both be strings or both be lists of "
         "{role, content} messages");
  }
  return tokenize_prompt_completion(tokenizer, v["prompt"].get<std::string>(), v["completion"].get<std::string>());
}

void run_score(const ScoreArgs& args) {
  hub_ensure_local(args.model, HubNeed::Model);  // hub ids not in the cache are pulled first
  hub_ensure_local(args.adapter, HubNeed::Adapter);
  const std::string dir = hf_resolve_model(args.model);
  Tokenizer tokenizer = Tokenizer::load(dir);
  Model model = Model::load(dir, device_resolve(args.device));
  const std::optional<ChatTemplate> chat_template = chat_template_find(dir);
  std::optional<LoraAdapter> adapter;
  if (!args.adapter.empty()) adapter = lora_load_peft(hf_resolve_model(args.adapter), model.config());
  const LoraAdapter* lora = adapter ? &*adapter : nullptr;
  std::FILE* out = stdout;
  if (!args.output.empty() && !(out = std::fopen(args.output.c_str(), "w"))) {
    fail(ErrorKind::Io, args.output, ": cannot open for writing");
  }

  JsonRowReader reader(args.data);
  std::vector<PendingRow> pending;
  int64_t pending_tokens = 0, scored = 0, skipped = 0, mismatched = 0;
  while (std::optional<DataRow> row = reader.next()) {
    std::optional<TokenizedRow> ids = tokenize_row(*row, tokenizer, chat_template, dir);
    if (!ids) {
      ++skipped;
      continue;
    }
    PendingRow p{row->line, std::move(*ids)};
    mismatched += p.ids.boundary_mismatch ? 1 : 0;
    const int64_t n = static_cast<int64_t>(p.ids.prompt_ids.size() + p.ids.completion_ids.size());
    if (pending_tokens + n > args.batch_tokens) {
      flush(model, lora, pending, out);
      pending_tokens = 0;
    }
    pending.push_back(std::move(p));
    pending_tokens += n;
    ++scored;
  }
  flush(model, lora, pending, out);
  if (out != stdout) std::fclose(out);
  log_info("scored ", scored, " rows", skipped ? str_cat("; skipped ", skipped, " rows without prompt and completion (or messages)") : "");
  if (mismatched) {
    log_warn(mismatched, " rows: tokenize(prompt + completion) does not start with tokenize(prompt); "
             "scored as prompt ids + the joint ids past the prompt, as TRL does");
  }
}
}  // namespace

void add_score_verb(CLI::App& app) {
  auto args = std::make_shared<ScoreArgs>();
  auto* cmd = app.add_subcommand("score", "Summed log-prob of each row's completion given its prompt (JSONL out)");
  cmd->add_option("-m,--model", args->model, "Model directory or hub id (HF cache)")->required();
  cmd->add_option("-d,--data", args->data,
                  "Rows with `prompt` and `completion` (strings, or message lists rendered with the model's chat "
                  "template), or `messages` / `conversations` (JSONL or JSON array)")->required();
  cmd->add_option("-a,--adapter", args->adapter, "Apply this PEFT LoRA adapter (directory or hub id) without merging");
  cmd->add_option("--device", args->device, "auto (the GPU when present), cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("-o,--output", args->output, "Write the JSONL here instead of stdout");
  cmd->add_option("--batch-tokens", args->batch_tokens, "Tokens packed into one forward pass")->check(CLI::PositiveNumber);
  cmd->callback([args] { run_score(*args); });
}

}  // namespace kto::cli
