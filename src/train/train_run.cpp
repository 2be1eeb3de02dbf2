// Shared `kto train` run pieces (see train_run.h).
#include "train/train_run.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/tokenize.h"
#include "data/truncation.h"
#include "formats/hf_cache.h"
#include "train/checkpoint.h"
#include "util/error.h"

namespace kto {

DataOptions train_kto_data_options(const TrainConfig& c, const std::string& model_dir) {
  DataOptions options;
  options.truncation = {c.max_length, c.max_prompt_length, truncation_mode_parse(c.truncation_mode, "truncation_mode")};
  options.trl_compat = c.trl_compat ? TrlCompat::Yes : TrlCompat::No;
  options.seed = static_cast<uint64_t>(c.seed);
  options.desirable_weight = c.desirable_weight;
  options.undesirable_weight = c.undesirable_weight;
  options.chat_template = chat_template_find(model_dir);  // for conversational rows
  return options;
}

SftOptions train_sft_options(const TrainConfig& c) {
  SftOptions options;
  options.max_length = c.max_length;
  options.seed = static_cast<uint64_t>(c.seed);
  options.shuffle = !c.trl_compat;
  return options;
}

LoraAdapter train_initial_adapter(const TrainConfig& c, const ModelConfig& model) {
  if (!c.adapter_name_or_path.empty()) return lora_load_peft(hf_resolve_model(c.adapter_name_or_path), model);
  LoraConfig lora;
  lora.rank = c.lora_r;
  lora.alpha = c.lora_alpha;
  lora.dropout = c.lora_dropout;
  lora.use_rslora = c.use_rslora;
  lora.target_modules = c.lora_target_modules;
  lora.base_model_name_or_path = c.model_name_or_path;
  return lora_init(model, lora, static_cast<uint64_t>(c.seed));
}

std::string train_resume_if_requested(Trainer& trainer, const TrainConfig& c) {
  if (c.resume_from_checkpoint.empty() || c.resume_from_checkpoint == "false") return "";
  std::string from = c.resume_from_checkpoint;
  if (from == "true") {
    auto latest = checkpoint_latest(c.output_dir);
    if (!latest) fail(ErrorKind::NotFound, c.output_dir, ": no checkpoint-N directory to resume from");
    from = *latest;
  }
  trainer.resume(from);
  return from;
}

TrainerLogFile::TrainerLogFile(const std::string& output_dir) {
  std::filesystem::create_directories(output_dir);
  const std::string path = output_dir + "/trainer_log.jsonl";
  out_.open(path, std::ios::app);
  if (!out_) fail(ErrorKind::Io, path, ": cannot open for writing");
}

void TrainerLogFile::append(int64_t step, const std::map<std::string, double>& record) {
  nlohmann::json line(record);
  line["step"] = step;
  out_ << line.dump() << "\n" << std::flush;
}

}  // namespace kto
