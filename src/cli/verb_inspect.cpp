// `kto inspect`: what a model is (architecture, shapes, parameters and their dtypes, files) and
// what training it would take: the memory plan for LoRA / QLoRA at a few batch × length sizes
// (--model), or for one training config (--config), made from config.json alone, so that a model
// can be sized before its weights are downloaded.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "export/hub_ensure.h"
#include "formats/hf_cache.h"
#include "formats/safetensors.h"
#include "model/config.h"
#include "model/device.h"
#include "model/memory_plan.h"
#include "train/train_config.h"
#include "train/train_memory.h"
#include "util/error.h"
#include "util/files.h"

namespace kto::cli {

namespace {
struct InspectArgs {
  std::string model;
  std::string config;  // a training config: the plan of that run
  int64_t lora_rank = 16;
  bool json = false;
};

// `auto` batch without a dataset tries up to this many sequences of max_length tokens.
constexpr int64_t kAutoBatchUpperBound = 1024;

struct WeightSummary {
  int64_t n_tensors = 0, n_params = 0, bytes = 0;
  std::map<std::string, int64_t> params_by_dtype;
};

WeightSummary summarize_weights(const std::string& dir) {
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);
  WeightSummary s;
  for (const std::string& name : ckpt.names()) {
    const SafetensorsTensor& t = ckpt.get(name);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    ++s.n_tensors;
    s.n_params += n;
    s.bytes += static_cast<int64_t>(t.nbytes);
    s.params_by_dtype[t.dtype] += n;
  }
  return s;
}

std::string rope_text(const RopeConfig& r) {
  switch (r.type) {
    case RopeType::Default: return str_cat("default (theta ", r.theta, ")");
    case RopeType::Linear: return str_cat("linear (theta ", r.theta, ", factor ", r.factor, ")");
    case RopeType::Llama3: return str_cat("llama3 (theta ", r.theta, ", factor ", r.factor, ", original context ", r.original_max_position, ")");
  }
  return "?";
}

struct Scenario {
  const char* name;
  BaseWeights base;
  Checkpointing checkpointing;
};
constexpr Scenario kScenarios[] = {{"LoRA bf16", BaseWeights::Bf16, Checkpointing::Off},
                                   {"LoRA bf16+ckpt", BaseWeights::Bf16, Checkpointing::On},
                                   {"QLoRA nf4+ckpt", BaseWeights::Nf4, Checkpointing::On}};
constexpr std::pair<int64_t, int64_t> kSizes[] = {{1, 512}, {4, 1024}, {8, 1024}, {8, 2048}};

MemoryPlanInputs scenario_inputs(const Scenario& s, int64_t rank, int64_t batch, int64_t length) {
  MemoryPlanInputs in;
  in.pass = memory_plan_batch_extent(batch, length);
  in.base = s.base, in.checkpointing = s.checkpointing, in.lora.rank = rank;
  return in;
}

nlohmann::json memory_table(const ModelConfig& config, int64_t rank) {
  nlohmann::json rows = nlohmann::json::array();
  for (auto [batch, length] : kSizes) {
    for (const Scenario& s : kScenarios) {
      const MemoryPlanInputs in = scenario_inputs(s, rank, batch, length);
      nlohmann::json row = train_memory_json(memory_plan(config, in), in.pass, batch);
      row["seq_len"] = length, row["setup"] = s.name;
      rows.push_back(row);
    }
  }
  return rows;
}

void print_shape(const std::string& dir, const ModelConfig& c) {
  std::printf("model        %s\n", dir.c_str());
  std::printf("architecture %s (model_type %s)\n", c.architecture.c_str(), c.model_type.c_str());
  std::printf("shape        %lld layers, hidden %lld, ffn %lld, heads %lld (kv %lld), head dim %lld, vocab %lld\n",
              (long long)c.n_layers, (long long)c.hidden_size, (long long)c.intermediate_size, (long long)c.n_heads,
              (long long)c.n_heads_kv, (long long)c.head_dim, (long long)c.vocab_size);
  int64_t window = 0;
  for (int64_t lw : c.layer_window) window = std::max(window, lw);
  std::printf("attention    rope %s, context %lld, %s%s%s\n", rope_text(c.rope).c_str(), (long long)c.max_position_embeddings,
              window ? str_cat("sliding window ", window).c_str() : "full causal", c.qkv_bias ? ", qkv bias" : "",
              c.qk_norm ? ", q/k norm" : "");
  std::printf("embeddings   %s\n", c.tie_word_embeddings ? "tied (lm_head = embed_tokens)" : "separate lm_head");
}

void print_devices() {
  std::printf("\ndevices\n");
  const std::vector<std::string> gpus = device_gpu_lines();
  if (gpus.empty()) {
    std::printf("  cpu (fp32)%s\n", device_cuda_built() ? "; no CUDA GPU visible" : "; this build has no CUDA backend");
  }
  for (const std::string& line : gpus) std::printf("  %s\n", line.c_str());
}

void print_text(const std::string& dir, const ModelConfig& c, const WeightSummary& w, const InspectArgs& args) {
  print_shape(dir, c);
  std::printf("parameters   %lld in %lld tensors (%.1f MiB on disk):", (long long)w.n_params, (long long)w.n_tensors,
              static_cast<double>(w.bytes) / (1024.0 * 1024.0));
  for (const auto& [dtype, n] : w.params_by_dtype) std::printf(" %s %lld", dtype.c_str(), (long long)n);
  std::printf("\n\ntraining memory estimate per GPU (the memory plan's predicted peak; plus ~%s CUDA context):\n"
              "LoRA r=%lld on all 7 projections (%lld params), AdamW states on the host, sequences of `length`\n"
              "tokens filling every micro-batch; `kto inspect --config` plans one training config\n\n",
              memory_bytes_text(kCudaContextEstimateBytes).c_str(), (long long)args.lora_rank,
              (long long)lora_param_count(c, args.lora_rank));
  std::printf("  batch x length");
  for (const Scenario& s : kScenarios) std::printf("  %16s", s.name);
  std::printf("\n");
  for (auto [batch, length] : kSizes) {
    std::printf("  %5lld x %-6lld", (long long)batch, (long long)length);
    for (const Scenario& s : kScenarios) {
      std::printf("  %16s", memory_bytes_text(memory_plan(c, scenario_inputs(s, args.lora_rank, batch, length)).peak()).c_str());
    }
    std::printf("\n");
  }
  print_devices();
}

// --config: the plan of one training run, its batch size (`auto` picks the largest that fits in
// max_memory or the GPU's free memory), and what to change when it does not fit.
void run_inspect_config(const InspectArgs& args) {
  TrainConfig c;
  train_config_load_yaml(c, args.config);
  train_config_validate(c);
  const std::string model = args.model.empty() ? c.model_name_or_path : args.model;
  if (model.empty()) fail(ErrorKind::InvalidArgument, args.config, ": set model_name_or_path (or give --model)");
  hub_ensure_local(model, HubNeed::ModelConfig);  // config.json (and the tokenizer), never the weights
  hub_ensure_local(c.adapter_name_or_path, HubNeed::Adapter);
  const std::string dir = hf_resolve_model(model);
  TrainMemorySetup setup;
  setup.model = model_config_load(dir);
  setup.base = train_memory_base(c, json_read_file(path_join(dir, "config.json")));
  setup.extent = train_extent_fn_upper_bound();
  setup.n_examples = kAutoBatchUpperBound;
  setup.lora = train_memory_adapter_lora(c);
  const MemoryResolution memory = train_memory_resolve(c, setup, train_memory_budget(c, device_resolve(c.device)));
  if (args.json) {
    nlohmann::json out = {{"model", dir}, {"model_type", setup.model.model_type}, {"n_layers", setup.model.n_layers},
                          {"hidden_size", setup.model.hidden_size}, {"vocab_size", setup.model.vocab_size},
                          {"max_length", c.max_length}, {"memory_plan", train_memory_json(memory.plan, memory.extent, memory.batch_size)},
                          {"budget", memory.budget.bytes}, {"budget_source", memory.budget.what},
                          {"fits", memory.advice.empty()}, {"advice", memory.advice}, {"note", memory.note}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  print_shape(dir, setup.model);
  std::printf("\n%s(every sequence planned at max_length %lld: the most a micro-batch can hold; `kto train --dry-run` "
              "plans the dataset's real lengths)\n",
              train_memory_text(memory).c_str(), (long long)c.max_length);
  print_devices();
  train_memory_require_fit(memory);
}

void run_inspect(const InspectArgs& args) {
  if (!args.config.empty()) return run_inspect_config(args);
  if (args.model.empty()) fail(ErrorKind::InvalidArgument, "kto inspect: give --model M or --config CONFIG.yaml");
  hub_ensure_local(args.model, HubNeed::Model);  // a hub id not in the cache is pulled first
  const std::string dir = hf_resolve_model(args.model);
  const ModelConfig config = model_config_load(dir);
  const WeightSummary weights = summarize_weights(dir);
  if (!args.json) return print_text(dir, config, weights, args);
  nlohmann::json out = {{"model", dir},
                        {"architecture", config.architecture},
                        {"model_type", config.model_type},
                        {"n_layers", config.n_layers},
                        {"hidden_size", config.hidden_size},
                        {"intermediate_size", config.intermediate_size},
                        {"n_heads", config.n_heads},
                        {"n_heads_kv", config.n_heads_kv},
                        {"head_dim", config.head_dim},
                        {"vocab_size", config.vocab_size},
                        {"n_params", weights.n_params},
                        {"params_by_dtype", weights.params_by_dtype},
                        {"lora_rank", args.lora_rank},
                        {"lora_params", lora_param_count(config, args.lora_rank)},
                        {"training_memory", memory_table(config, args.lora_rank)},
                        {"cuda_built", device_cuda_built()},
                        {"gpus", device_gpu_lines()}};
  std::printf("%s\n", out.dump(2).c_str());
}
}  // namespace

void add_inspect_verb(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Describe a model and plan the GPU memory training it takes");
  cmd->add_option("-m,--model", args->model, "Model directory or hub id (HF cache)");
  cmd->add_option("-c,--config", args->config,
                  "A `kto train` config: plan that run from config.json alone (batch size, max_length, lora_r, "
                  "gradient_checkpointing, load_in_4bit, optim, max_memory, `auto` batch)")
      ->check(CLI::ExistingFile);
  cmd->add_option("-r,--lora-rank", args->lora_rank, "LoRA rank for the --model table")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", args->json, "Print JSON instead of text");
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace kto::cli
