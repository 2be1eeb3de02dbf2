// `kto train CONFIG.yaml [--key value | key=value]... [--dry-run]`: KTO training of a LoRA
// adapter with TRL's config names, or SFT (objective: sft) of an adapter or of every weight
// (finetuning_type: full). Prints a banner, a progress line per log step, writes checkpoints,
// trainer_log.jsonl and the final PEFT adapter (or model directory) into output_dir.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli/app.h"
#include "data/dataset.h"
#include "data/stats.h"
#include "data/truncation.h"
#include "export/hub_ensure.h"
#include "formats/hf_cache.h"
#include "model/memory_plan.h"
#include "model/device.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/train_run.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct TrainArgs {
  std::string config_path;
  std::vector<std::string> overrides;  // "key=value" or "--key value" pairs, in order
  bool dry_run = false;
};

// Applies "key=value" and "--key value" overrides after the YAML file.
void apply_overrides(TrainConfig& config, const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a.rfind("--", 0) == 0) {
      a = a.substr(2);
      std::replace(a.begin(), a.end(), '-', '_');
      if (size_t eq = a.find('='); eq != std::string::npos) {
        train_config_set(config, a.substr(0, eq), a.substr(eq + 1), "--" + a.substr(0, eq));
      } else if (i + 1 < args.size()) {
        train_config_set(config, a, args[++i], "--" + a);
      } else {
        fail(ErrorKind::InvalidArgument, "--", a, " needs a value");
      }
    } else if (size_t eq = a.find('='); eq != std::string::npos) {
      train_config_set(config, a.substr(0, eq), a.substr(eq + 1), "command line");
    } else {
      fail(ErrorKind::InvalidArgument, "unexpected argument '", a, "'; settings are `key=value` or `--key value`");
    }
  }
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string duration_text(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  return s >= 3600 ? str_cat(s / 3600, "h", (s % 3600) / 60, "m") : s >= 60 ? str_cat(s / 60, "m", s % 60, "s") : str_cat(s, "s");
}

std::string device_text(const Model& model) {
  if (model.device().kind == DeviceKind::Cpu) return str_cat("CPU (fp32), ", std::thread::hardware_concurrency(), " threads");
  return model.device_description();
}

void print_banner(const TrainConfig& c, const Model& model, const LoraAdapter& adapter, const KtoDatasets& data, const Trainer& t) {
  const ModelConfig& mc = model.config();
  std::fprintf(stderr, "kto train · %s (%s, %lld layers, hidden %lld) on %s\n", model.dir().c_str(),
               mc.model_type.c_str(), (long long)mc.n_layers, (long long)mc.hidden_size, device_text(model).c_str());
  std::fprintf(stderr, "  trainable %lld / total %lld parameters (%.3f%%) · LoRA r=%lld alpha=%g%s\n", (long long)adapter.n_params(),
               (long long)mc.n_params(), 100.0 * static_cast<double>(adapter.n_params()) / static_cast<double>(mc.n_params()),
               (long long)c.lora_r, c.lora_alpha, c.use_rslora ? " (rsLoRA)" : "");
  std::fprintf(stderr, "  %s · beta %g · %lld examples (%lld desirable, %lld undesirable)%s\n", c.loss_type.c_str(), c.beta,
               (long long)data.train.size(), (long long)data.train.stats().n_desirable, (long long)data.train.stats().n_undesirable,
               data.eval ? str_cat(" · eval ", data.eval->size()).c_str() : "");
  std::fprintf(stderr, "  effective batch %lld = %lld micro × %lld accumulation × 1 process · %lld steps (%lld per epoch) · lr %g %s\n",
               (long long)(c.per_device_train_batch_size * c.gradient_accumulation_steps), (long long)c.per_device_train_batch_size,
               (long long)c.gradient_accumulation_steps, (long long)t.total_steps(), (long long)t.steps_per_epoch(), c.learning_rate,
               c.lr_scheduler_type.c_str());
}

void print_dry_run(const TrainConfig& c, const Model& model, const KtoDatasets& data) {
  std::printf("resolved config:\n%s", train_config_dump(c).c_str());
  std::printf("\ntrain data (%s):\n%s\n", c.dataset_name.c_str(), dataset_stats_summary(data.train.stats()).c_str());
  if (data.eval) std::printf("eval data:\n%s\n", dataset_stats_summary(data.eval->stats()).c_str());
  std::printf("KL pairs: %s\n", c.loss_type == "kto" ? "each example's prompt with the previous example's completion inside its micro-batch"
                                                   : "none (apo_zero_unpaired has no KL term)");
  TrainMemoryPlan plan = plan_training_memory(model.config(), {BaseWeights::Bf16, c.gradient_checkpointing ? Checkpointing::On : Checkpointing::Off,
                                                               c.lora_r, c.per_device_train_batch_size, c.max_length, 1024});
  std::printf("memory estimate for one GPU (bf16): %.2f GiB\n", static_cast<double>(plan.total()) / (1 << 30));
}

void print_sft_banner(const TrainConfig& c, const Model& model, const SftDatasets& data, const Trainer& t) {
  const ModelConfig& mc = model.config();
  std::fprintf(stderr, "kto train · sft · %s (%s, %lld layers, hidden %lld) on %s\n", model.dir().c_str(),
               mc.model_type.c_str(), (long long)mc.n_layers, (long long)mc.hidden_size, device_text(model).c_str());
  std::fprintf(stderr, "  trainable %lld / total %lld parameters (%s) · %lld examples%s\n", (long long)t.n_trainable(),
               (long long)mc.n_params(), t.full_finetuning() ? "full fine-tuning" : str_cat("LoRA r=", c.lora_r).c_str(),
               (long long)data.train.size(), data.eval ? str_cat(" · eval ", data.eval->size()).c_str() : "");
  std::fprintf(stderr, "  effective batch %lld = %lld micro × %lld accumulation · %lld steps (%lld per epoch) · lr %g %s\n",
               (long long)(c.per_device_train_batch_size * c.gradient_accumulation_steps), (long long)c.per_device_train_batch_size,
               (long long)c.gradient_accumulation_steps, (long long)t.total_steps(), (long long)t.steps_per_epoch(), c.learning_rate,
               c.lr_scheduler_type.c_str());
}

void print_sft_dry_run(const TrainConfig& c, const SftDatasets& data) {
  std::printf("resolved config:\n%s", train_config_dump(c).c_str());
  int64_t tokens = 0, scored = 0;
  for (const SftExample& e : data.train.examples()) tokens += static_cast<int64_t>(e.ids.size()), scored += static_cast<int64_t>(e.ids.size()) - std::max(e.n_prompt, 1);
  std::printf("\ntrain data (%s): %lld examples, %lld tokens, %lld scored (completion) tokens\n", c.dataset_name.c_str(),
              (long long)data.train.size(), (long long)tokens, (long long)scored);
  if (data.eval) std::printf("eval data: %lld examples\n", (long long)data.eval->size());
}

void run_trainer(const TrainConfig& c, Trainer& trainer);

// load_in_4bit: the base's projections to NF4 (a "-bnb-4bit" checkpoint is NF4 already), then
// the model goes back to its device with them; the paged optimizers' note.
void apply_qlora_settings(const TrainConfig& c, Model& model) {
  if (c.load_in_4bit && !weights_have_nf4(model.weights())) {
    weights_quantize_nf4(model.mutable_weights(), train_config_nf4(c, model.config().torch_dtype));
    model.to_device(model.device());
    log_info("load_in_4bit: projections quantised to NF4 (bitsandbytes blocksize 64",
             c.bnb_4bit_use_double_quant ? ", double quantisation)" : ")");
  }
  if (c.optim.rfind("paged_", 0) == 0 && model.device().kind == DeviceKind::Cpu) {
    log_info("optim ", c.optim, ": paging optimizer states only matters on a GPU; on the CPU it is ",
             c.optim == "paged_adamw_8bit" ? "adamw_8bit" : "adamw_torch");
  }
}

void run_train(const TrainArgs& args) {
  TrainConfig c;
  train_config_load_yaml(c, args.config_path);
  apply_overrides(c, args.overrides);
  train_config_validate(c);
  if (c.model_name_or_path.empty()) fail(ErrorKind::InvalidArgument, args.config_path, ": set model_name_or_path");
  if (c.dataset_name.empty()) fail(ErrorKind::InvalidArgument, args.config_path, ": set dataset_name (a .jsonl/.json file or folder)");

  hub_ensure_local(c.model_name_or_path, HubNeed::Model);  // hub ids not in the cache are pulled first
  hub_ensure_local(c.adapter_name_or_path, HubNeed::Adapter);
  hub_ensure_local(c.dataset_name, HubNeed::Dataset);
  hub_ensure_local(c.eval_dataset, HubNeed::Dataset);
  const std::string dir = hf_resolve_model(c.model_name_or_path);
  Tokenizer tokenizer = Tokenizer::load(dir);
  Model model = Model::load(dir, device_resolve(c.device));
  apply_qlora_settings(c, model);
  const std::string eval_path = c.eval_dataset.empty() ? "" : hf_resolve_dataset(c.eval_dataset);
  if (c.objective == "sft") {
    SftDatasets sft = load_sft_datasets(hf_resolve_dataset(c.dataset_name), eval_path, c.eval_split, tokenizer, train_sft_options(c));
    if (args.dry_run) return print_sft_dry_run(c, sft);
    std::unique_ptr<Trainer> trainer = c.finetuning_type == "full"
                                           ? std::make_unique<Trainer>(c, model, sft)
                                           : std::make_unique<Trainer>(c, model, sft, train_initial_adapter(c, model.config()));
    if (std::string from = train_resume_if_requested(*trainer, c); !from.empty()) {
      log_info("resuming from ", from, " at step ", trainer->state().global_step);
    }
    if (log_level() >= LogLevel::Info) print_sft_banner(c, model, sft, *trainer);
    return run_trainer(c, *trainer);
  }
  KtoDatasets data = load_kto_datasets(hf_resolve_dataset(c.dataset_name), eval_path, c.eval_split, tokenizer, train_kto_data_options(c, dir));
  if (args.dry_run) return print_dry_run(c, model, data);

  Trainer trainer(c, model, data, train_initial_adapter(c, model.config()));
  if (std::string from = train_resume_if_requested(trainer, c); !from.empty()) {
    log_info("resuming from ", from, " at step ", trainer.state().global_step);
  }
  if (log_level() >= LogLevel::Info) print_banner(c, model, trainer.adapter(), data, trainer);
  run_trainer(c, trainer);
}

// Writes the resolved config and the log file, runs the trainer with a progress line per log
// record, checkpoints on SIGINT / SIGTERM.
void run_trainer(const TrainConfig& c, Trainer& trainer) {
  std::filesystem::create_directories(c.output_dir);
  file_write_atomic(c.output_dir + "/train_config.yaml", train_config_dump(c));
  TrainerLogFile log_file(c.output_dir);
  TrainerEvents events;
  events.on_log = [&](const TrainerState& s, const std::map<std::string, double>& record) {
    log_file.append(s.global_step, record);
    auto get = [&](const char* k) { auto it = record.find(k); return it == record.end() ? NAN : it->second; };
    const double per_step = s.global_step > 0 ? s.seconds / static_cast<double>(s.global_step) : 0.0;
    const double rate = s.seconds > 0 ? static_cast<double>(s.num_tokens) / s.seconds : 0.0;
    const bool eval = record.count("eval_loss") > 0;
    const double margins = get(eval ? "eval_rewards/margins" : "rewards/margins");
    if (c.objective == "sft") {
      return log_info(eval ? "eval " : "step ", s.global_step, "/", trainer.total_steps(), "  loss ",
                      fixed(get(eval ? "eval_loss" : "loss"), 4), "  token accuracy ",
                      fixed(get(eval ? "eval_mean_token_accuracy" : "mean_token_accuracy"), 4), "  ", static_cast<int64_t>(rate),
                      " tok/s  eta ", duration_text(per_step * static_cast<double>(trainer.total_steps() - s.global_step)));
    }
    log_info(eval ? "eval " : "step ", s.global_step, "/", trainer.total_steps(), "  loss ", fixed(get(eval ? "eval_loss" : "loss"), 4),
             "  margins ", std::isnan(margins) ? std::string("-") : fixed(margins, 4), "  kl ", fixed(get(eval ? "eval_kl" : "kl"), 4),
             "  ", static_cast<int64_t>(rate), " tok/s  eta ", duration_text(per_step * static_cast<double>(trainer.total_steps() - s.global_step)));
  };
  events.on_save = [](const std::string& path) { log_info("saved ", path); };
  std::signal(SIGINT, [](int) { Trainer::request_stop(); });
  std::signal(SIGTERM, [](int) { Trainer::request_stop(); });
  trainer.train(events);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (trainer.full_finetuning()) log_info("model written to ", c.output_dir, " (config.json, model.safetensors, tokenizer)");
  else log_info("adapter written to ", c.output_dir, " (adapter_config.json, adapter_model.safetensors)");
}
}  // namespace

void add_train_verb(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a LoRA adapter with KTO, or SFT (LoRA or full) with objective: sft");
  cmd->add_option("config", args->config_path, "YAML config file")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--dry-run", args->dry_run, "Print the resolved config, data statistics and memory estimate, then exit");
  cmd->allow_extras();
  cmd->footer("Any setting can follow the file: `beta=0.2` or `--learning-rate 1e-4` (TRL names).");
  cmd->callback([args, cmd] {
    args->overrides = cmd->remaining();
    run_train(*args);
  });
}

}  // namespace kto::cli
