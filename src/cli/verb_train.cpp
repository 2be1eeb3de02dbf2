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
#include "model/device.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/train_memory.h"
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

// The banner's memory line: the plan's peak on a GPU, and how `auto` chose the batch size.
void print_memory_line(const Model& model, const MemoryResolution& memory) {
  if (model.device().kind == DeviceKind::Cuda && memory.plan.peak() > 0) {
    std::fprintf(stderr, "  memory plan: predicted peak %s (largest pass %lld tokens) + ~%s CUDA context\n",
                 memory_bytes_text(memory.plan.peak()).c_str(), (long long)memory.extent.n_tokens,
                 memory_bytes_text(memory.plan.cuda_context).c_str());
  }
  if (!memory.note.empty()) std::fprintf(stderr, "  %s\n", memory.note.c_str());
}

void print_banner(const TrainConfig& c, const Model& model, const LoraAdapter& adapter, const KtoDatasets& data, const Trainer& t,
                  const MemoryResolution& memory) {
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
  print_memory_line(model, memory);
}

void print_dry_run(const TrainConfig& c, const KtoDatasets& data, const std::string& memory) {
  std::printf("resolved config:\n%s", train_config_dump(c).c_str());
  std::printf("\ntrain data (%s):\n%s\n", c.dataset_name.c_str(), dataset_stats_summary(data.train.stats()).c_str());
  if (data.eval) std::printf("eval data:\n%s\n", dataset_stats_summary(data.eval->stats()).c_str());
  std::printf("KL pairs: %s\n", c.loss_type == "kto" ? "each example's prompt with the previous example's completion inside its micro-batch"
                                                   : "none (apo_zero_unpaired has no KL term)");
  std::printf("\n%s", memory.c_str());
}

void print_sft_banner(const TrainConfig& c, const Model& model, const SftDatasets& data, const Trainer& t,
                      const MemoryResolution& memory) {
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
  print_memory_line(model, memory);
}

void print_sft_dry_run(const TrainConfig& c, const SftDatasets& data, const std::string& memory) {
  std::printf("resolved config:\n%s", train_config_dump(c).c_str());
  int64_t tokens = 0, scored = 0;
  for (const SftExample& e : data.train.examples()) tokens += static_cast<int64_t>(e.ids.size()), scored += static_cast<int64_t>(e.ids.size()) - std::max(e.n_prompt, 1);
  std::printf("\ntrain data (%s): %lld examples, %lld tokens, %lld scored (completion) tokens\n", c.dataset_name.c_str(),
              (long long)data.train.size(), (long long)tokens, (long long)scored);
  if (data.eval) std::printf("eval data: %lld examples\n", (long long)data.eval->size());
  std::printf("\n%s", memory.c_str());
}

void run_trainer(const TrainConfig& c, Trainer& trainer);

// load_in_4bit: the model is loaded with its projections quantised to NF4 one at a time as they
// are read (a "-bnb-4bit" checkpoint is NF4 already); the paged optimizers' note.
void apply_qlora_settings(const TrainConfig& c, Model& model) {
  if (c.load_in_4bit) {
    log_info("load_in_4bit: projections quantised to NF4 (bitsandbytes blocksize 64",
             c.bnb_4bit_use_double_quant ? ", double quantisation)" : ")");
  }
  if (c.optim.rfind("paged_", 0) == 0 && model.device().kind == DeviceKind::Cpu) {
    log_info("optim ", c.optim, ": paging optimizer states only matters on a GPU; on the CPU it is ",
             c.optim == "paged_adamw_8bit" ? "adamw_8bit" : "adamw_torch");
  }
}

// `auto` with resume_from_checkpoint: the checkpoint's batch size (its data position counts
// micro-batches of that size), whatever the memory now allows.
void take_resumed_batch_size(TrainConfig& c) {
  if ((c.per_device_train_batch_size != 0 && !c.auto_find_batch_size) || c.resume_from_checkpoint.empty() ||
      c.resume_from_checkpoint == "false") {
    return;
  }
  std::string from = c.resume_from_checkpoint;
  if (from == "true") from = checkpoint_latest(c.output_dir).value_or("");
  const std::string state = from.empty() ? "" : path_join(from, "trainer_state.json");
  if (state.empty() || !std::filesystem::exists(state)) return;  // resuming reports what is missing
  const int64_t batch = json_read_file(state).value("train_batch_size", int64_t{0});
  if (batch < 1) return;
  c.per_device_train_batch_size = batch, c.auto_find_batch_size = false;
  log_info("auto batch: per_device_train_batch_size ", batch, " as in ", from, " (a resumed run keeps its batch size)");
}

// What the plan must fit in: max_memory or the GPU's free memory, for GPU runs and dry runs (a
// plan for a GPU, made anywhere); nothing for a run on the CPU.
MemoryBudget memory_budget(const TrainConfig& c, const DeviceChoice& device, const TrainArgs& args) {
  if (args.dry_run || device.kind == DeviceKind::Cuda) return train_memory_budget(c, device);
  if (c.max_memory > 0) log_info("max_memory plans GPU memory; this run is on the CPU, so it is not checked");
  return {};
}

// Before any weight is read: the run's memory plan (LoRA / QLoRA) and the batch size `auto`
// picks (with the advice when nothing fits). Full fine-tuning is not planned.
MemoryResolution plan_memory(TrainConfig& c, const std::string& model_dir, const MemoryBudget& budget,
                             TrainMemorySetup setup) {
  if (c.finetuning_type == "full") {
    if (c.per_device_train_batch_size == 0) c.per_device_train_batch_size = kAutoBatchWithoutBudget;
    c.auto_find_batch_size = false;
    return {};
  }
  take_resumed_batch_size(c);
  setup.model = model_config_load(model_dir);
  setup.base = train_memory_base(c, json_read_file(path_join(model_dir, "config.json")));
  setup.lora = train_memory_adapter_lora(c);
  const MemoryResolution memory = train_memory_resolve(c, setup, budget);
  c.per_device_train_batch_size = memory.batch_size, c.auto_find_batch_size = false;
  return memory;
}

// The dry run's memory section.
std::string memory_text(const TrainConfig& c, const MemoryResolution& memory) {
  if (c.finetuning_type == "full") return "memory plan: full fine-tuning is not planned (the plan covers LoRA / QLoRA)\n";
  return train_memory_text(memory);
}

Model load_model(const TrainConfig& c, const std::string& dir, const DeviceChoice& device) {
  WeightsLoadOptions load_options;
  load_options.load_in_4bit = c.load_in_4bit;
  load_options.nf4 = train_config_nf4(c, "");  // the dtype is each tensor's own
  Model model = Model::load(dir, device, load_options);
  apply_qlora_settings(c, model);
  return model;
}

void run_sft(TrainConfig& c, const TrainArgs& args, const std::string& dir, const Tokenizer& tokenizer,
             const DeviceChoice& device, const std::string& eval_path) {
  SftDatasets sft = load_sft_datasets(hf_resolve_dataset(c.dataset_name), eval_path, c.eval_split, tokenizer, train_sft_options(c));
  TrainMemorySetup setup;
  setup.extent = train_extent_fn(sft.train);
  if (sft.eval && c.eval_steps > 0) setup.eval_pass = train_pass_extent(*sft.eval, c.per_device_eval_batch_size, c.max_length);
  setup.n_examples = sft.train.size();
  const MemoryResolution memory = plan_memory(c, dir, memory_budget(c, device, args), std::move(setup));
  if (args.dry_run) print_sft_dry_run(c, sft, memory_text(c, memory));
  train_memory_require_fit(memory);
  if (args.dry_run) return;
  Model model = load_model(c, dir, device);
  std::unique_ptr<Trainer> trainer = c.finetuning_type == "full"
                                         ? std::make_unique<Trainer>(c, model, sft)
                                         : std::make_unique<Trainer>(c, model, sft, train_initial_adapter(c, model.config()));
  if (std::string from = train_resume_if_requested(*trainer, c); !from.empty()) {
    log_info("resuming from ", from, " at step ", trainer->state().global_step);
  }
  if (log_level() >= LogLevel::Info) print_sft_banner(c, model, sft, *trainer, memory);
  run_trainer(c, *trainer);
}

void run_train(const TrainArgs& args) {
  TrainConfig c;
  train_config_load_yaml(c, args.config_path);
  apply_overrides(c, args.overrides);
  train_config_validate(c);
  if (c.model_name_or_path.empty()) fail(ErrorKind::InvalidArgument, args.config_path, ": set model_name_or_path");
  if (c.dataset_name.empty()) fail(ErrorKind::InvalidArgument, args.config_path, ": set dataset_name (a .jsonl/.json file or folder)");

  // Hub ids not in the cache are pulled first (a dry run: config.json and the tokenizer only).
  hub_ensure_local(c.model_name_or_path, args.dry_run ? HubNeed::ModelConfig : HubNeed::Model);
  hub_ensure_local(c.adapter_name_or_path, HubNeed::Adapter);
  hub_ensure_local(c.dataset_name, HubNeed::Dataset);
  hub_ensure_local(c.eval_dataset, HubNeed::Dataset);
  const std::string dir = hf_resolve_model(c.model_name_or_path);
  const Tokenizer tokenizer = Tokenizer::load(dir);
  const DeviceChoice device = device_resolve(c.device);
  const std::string eval_path = c.eval_dataset.empty() ? "" : hf_resolve_dataset(c.eval_dataset);
  if (c.objective == "sft") return run_sft(c, args, dir, tokenizer, device, eval_path);
  KtoDatasets data = load_kto_datasets(hf_resolve_dataset(c.dataset_name), eval_path, c.eval_split, tokenizer, train_kto_data_options(c, dir));
  const KlSequences kl = c.loss_type == "kto" ? KlSequences::Yes : KlSequences::No;
  TrainMemorySetup setup;
  setup.extent = train_extent_fn(data.train, kl);
  if (data.eval && c.eval_steps > 0) {
    setup.eval_pass = train_pass_extent(*data.eval, c.per_device_eval_batch_size, kl, data.eval->options().truncation);
  }
  setup.n_examples = data.train.size();
  const MemoryResolution memory = plan_memory(c, dir, memory_budget(c, device, args), std::move(setup));
  if (args.dry_run) print_dry_run(c, data, memory_text(c, memory));
  train_memory_require_fit(memory);
  if (args.dry_run) return;

  Model model = load_model(c, dir, device);
  Trainer trainer(c, model, data, train_initial_adapter(c, model.config()));
  if (std::string from = train_resume_if_requested(trainer, c); !from.empty()) {
    log_info("resuming from ", from, " at step ", trainer.state().global_step);
  }
  if (log_level() >= LogLevel::Info) print_banner(c, model, trainer.adapter(), data, trainer, memory);
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
  cmd->add_flag("--dry-run", args->dry_run,
                "Read config, tokenizer and data (no weights), print the resolved config, data statistics and the GPU "
                "memory plan (with the batch size `auto` picks), then exit");
  cmd->allow_extras();
  cmd->footer("Any setting can follow the file: `beta=0.2` or `--learning-rate 1e-4` (TRL names).");
  cmd->callback([args, cmd] {
    args->overrides = cmd->remaining();
    run_train(*args);
  });
}

}  // namespace kto::cli
