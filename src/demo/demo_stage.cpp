// Demo training stages through the `kto train` building blocks (train/train_run.h).
#include "demo/demo_stage.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "formats/hf_cache.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/train_run.h"
#include "util/files.h"
#include "util/progress.h"

namespace kto {
namespace {

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// "loss 0.412  acc 0.83" (SFT) or "loss 0.412  margin 1.20" (KTO) from a log record.
std::string progress_text(const std::map<std::string, double>& record) {
  std::string out;
  if (auto it = record.find("loss"); it != record.end()) out += "loss " + fixed(it->second, 3);
  if (auto it = record.find("mean_token_accuracy"); it != record.end()) out += "  token acc " + fixed(it->second, 3);
  if (auto it = record.find("rewards/margins"); it != record.end()) out += "  margin " + fixed(it->second, 3);
  return out;
}

}  // namespace

StageOutcome demo_train_stage(const TrainConfig& c, const std::string& yaml_path) {
  const auto start = std::chrono::steady_clock::now();
  file_write_atomic(yaml_path, "# written by `kto demo`; rerun with: kto train " + yaml_path + "\n" + train_config_dump(c));
  train_config_validate(c);
  const std::string dir = hf_resolve_model(c.model_name_or_path);
  const Tokenizer tokenizer = Tokenizer::load(dir);
  Model model = Model::load(dir, device_resolve(c.device));
  std::optional<SftDatasets> sft;
  std::optional<KtoDatasets> kto;
  std::unique_ptr<Trainer> trainer;
  if (c.objective == "sft") {
    sft = load_sft_datasets(c.dataset_name, c.eval_dataset, c.eval_split, tokenizer, train_sft_options(c));
    trainer = c.finetuning_type == "full" ? std::make_unique<Trainer>(c, model, *sft)
                                          : std::make_unique<Trainer>(c, model, *sft, train_initial_adapter(c, model.config()));
  } else {
    kto = load_kto_datasets(c.dataset_name, c.eval_dataset, c.eval_split, tokenizer, train_kto_data_options(c, dir));
    trainer = std::make_unique<Trainer>(c, model, *kto, train_initial_adapter(c, model.config()));
  }
  StageOutcome out;
  if (kto && kto->eval) out.eval_before = trainer->evaluate();
  std::filesystem::create_directories(c.output_dir);
  file_write_atomic(c.output_dir + "/train_config.yaml", train_config_dump(c));
  TrainerLogFile log_file(c.output_dir);
  ProgressBar bar(c.objective == "sft" ? "SFT" : "KTO", trainer->total_steps());
  TrainerEvents events;
  events.on_log = [&](const TrainerState& s, const std::map<std::string, double>& record) {
    log_file.append(s.global_step, record);
    if (record.count("eval_loss")) out.eval_after = record;
    else out.last_log = record;
  };
  events.on_step = [&](const TrainerState& s) { bar.update(s.global_step, progress_text(out.last_log)); };
  trainer->train(events);
  bar.finish(progress_text(out.last_log));
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

void demo_write_summary(const DemoResult& r, const DemoOptions& options, const std::string& path) {
  auto measure = [](const DemoMeasure& m) {
    return nlohmann::json{{"sampled_accuracy", m.sampled_accuracy}, {"greedy_accuracy", m.greedy_accuracy},
                          {"mean_p_right_answer", m.mean_p_right}, {"reward_margin", m.reward_margin}};
  };
  nlohmann::json samples = nlohmann::json::array();
  for (const DemoSample& s : r.samples) {
    samples.push_back({{"question", s.prompt}, {"right", s.right}, {"before", s.before}, {"after", s.after}});
  }
  const nlohmann::json j = {
      {"seed", options.seed}, {"scale", options.scale == DemoScale::Quick ? "quick" : "full"},
      {"held_out_questions", r.n_eval_questions}, {"kto_examples", r.n_kto_examples}, {"kto_desirable", r.n_kto_desirable},
      {"before_kto", measure(r.before)}, {"after_kto", measure(r.after)}, {"samples", samples},
      {"seconds", {{"sft", r.sft_seconds}, {"sampling", r.sampling_seconds}, {"kto", r.kto_seconds}, {"total", r.total_seconds}}},
      {"model_dir", r.model_dir}, {"adapter_dir", r.adapter_dir}, {"kto_config", r.kto_config}, {"sft_config", r.sft_config}};
  file_write_atomic(path, j.dump(2) + "\n");
}

}  // namespace kto
