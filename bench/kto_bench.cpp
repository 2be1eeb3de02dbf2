// kto_bench: our KTO training step on the shared/bench baseline's synthetic data, for one model
// shape, on one GPU (or the CPU, for trying it out). The model has random weights of the real
// shape (config.json values of the public checkpoints, as the baseline's MODEL_CONFIGS); the data
// are the token rows the baseline dumped (--dump-data), trained in the same order, batch 8, LoRA
// r=16 α=16 on all seven projections, AdamW lr 5e-7, clip 1.0, β 0.1. Prints one JSON line:
// real (non-padding, main-sequence) tokens/s as the baseline counts them, step times, peak device
// memory (DeviceBuffer bytes, as torch.cuda.max_memory_allocated counts PyTorch's), useful FLOPs
// per step, the bf16 matmul rate measured here, MFU and the per-phase breakdown.
// QLoRA (issue #7): --nf4 1 quantises the random base to NF4 as load_in_4bit does (blocksize 64,
// double quantisation), --optim adamw_8bit takes bitsandbytes' 8-bit AdamW, --batch sets the
// per-device batch (the KL completions rotate inside each batch as the baseline's).
//   kto_bench --shape llama3.2-1b --data rows.jsonl [--ckpt 0|1] [--warmup 6] [--steps 18] [--device cuda]
//             [--nf4 0|1] [--optim adamw_torch|adamw_8bit] [--batch 8]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/context.h"
#include "backend/cuda/ops_cuda.h"
#include "data/dataset.h"
#include "model/config.h"
#include "model/model.h"
#include "model/weights.h"
#include "tensor/nf4.h"
#include "tokenizer/tokenizer.h"
#include "train/train_memory.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/log.h"

namespace kto {
namespace {

using nlohmann::json;

// config.json of the public checkpoints (the baseline's MODEL_CONFIGS).
json shape_config(const std::string& shape) {
  if (shape == "qwen2.5-0.5b") {
    return json::parse(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
      "max_position_embeddings": 32768, "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
      "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
      "use_sliding_window": false, "tie_word_embeddings": true, "vocab_size": 151936, "bos_token_id": 151643,
      "eos_token_id": 151643})");
  }
  if (shape == "llama3.2-1b") {
    return json::parse(R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false, "head_dim": 64,
      "hidden_size": 2048, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
      "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
      "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
      "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "rope_theta": 500000.0,
      "tie_word_embeddings": true, "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128001})");
  }
  if (shape == "llama3.1-8b") {
    return json::parse(R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false, "hidden_size": 4096,
      "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
      "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
      "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "rope_theta": 500000.0,
      "tie_word_embeddings": false, "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128001})");
  }
  if (shape == "tiny") {  // for trying the bench on a CPU
    return json::parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
      "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": true, "vocab_size": 4096})");
  }
  fail(ErrorKind::InvalidArgument, "unknown shape '", shape, "': qwen2.5-0.5b, llama3.2-1b, llama3.1-8b or tiny");
}

// Uniform(±0.02·√3) (std 0.02, the models' initializer_range), filled in parallel.
HostTensor random_tensor(Shape shape, uint64_t seed) {
  HostTensor t(DType::F32, shape);
  float* p = t.f32();
  const int64_t n = t.numel(), chunk = int64_t{1} << 20;
#pragma omp parallel for schedule(static)
  for (int64_t begin = 0; begin < n; begin += chunk) {
    std::mt19937 rng(static_cast<uint32_t>(seed * 7919 + static_cast<uint64_t>(begin / chunk)));
    std::uniform_real_distribution<float> u(-0.0346f, 0.0346f);
    for (int64_t i = begin; i < std::min(n, begin + chunk); ++i) p[i] = u(rng);
  }
  return t;
}

HostTensor ones(int64_t n) {
  HostTensor t(DType::F32, Shape{n});
  std::fill(t.f32(), t.f32() + n, 1.0f);
  return t;
}

Weights random_weights(const ModelConfig& c) {
  Weights w;
  uint64_t seed = 1;
  w.embed = random_tensor(Shape{c.vocab_size, c.hidden_size}, seed++);
  if (!c.tie_word_embeddings) w.lm_head = random_tensor(Shape{c.vocab_size, c.hidden_size}, seed++);
  w.final_norm = ones(c.hidden_size);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights lw;
    lw.input_norm = ones(c.hidden_size);
    lw.post_attention_norm = ones(c.hidden_size);
    lw.q_proj = random_tensor(Shape{c.q_dim(), c.hidden_size}, seed++);
    lw.k_proj = random_tensor(Shape{c.kv_dim(), c.hidden_size}, seed++);
    lw.v_proj = random_tensor(Shape{c.kv_dim(), c.hidden_size}, seed++);
    lw.o_proj = random_tensor(Shape{c.hidden_size, c.q_dim()}, seed++);
    if (c.qkv_bias) {
      lw.q_bias = HostTensor(DType::F32, Shape{c.q_dim()});
      lw.k_bias = HostTensor(DType::F32, Shape{c.kv_dim()});
      lw.v_bias = HostTensor(DType::F32, Shape{c.kv_dim()});
    }
    if (c.qk_norm) lw.q_norm = ones(c.head_dim), lw.k_norm = ones(c.head_dim);
    lw.gate_proj = random_tensor(Shape{c.intermediate_size, c.hidden_size}, seed++);
    lw.up_proj = random_tensor(Shape{c.intermediate_size, c.hidden_size}, seed++);
    lw.down_proj = random_tensor(Shape{c.hidden_size, c.intermediate_size}, seed++);
    w.layers.push_back(std::move(lw));
  }
  return w;
}

// A word-level-like BPE tokenizer over the baseline's vocabulary ("<pad>" 0, "</s>" 1, "t2" …):
// the rows are token ids already; the tokenizer only has to cover them.
std::string write_tokenizer(const std::string& dir, int64_t vocab) {
  json v = json::object();
  v["<pad>"] = 0, v["</s>"] = 1;
  for (int64_t i = 2; i < vocab; ++i) {
    std::string word(1, 't');  // (not "t" + …: GCC 12's -Wrestrict misfires on it)
    word += std::to_string(i);
    v[word] = i;
  }
  const json doc = {{"version", "1.0"}, {"added_tokens", json::array()}, {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", json::array()}}}};
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << doc.dump();
  std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": "</s>", "pad_token": "<pad>"})";
  return dir;
}

// FLOPs of the work one step needs: 2·N_matmul per token per forward and causal attention
// (q·kᵀ and p·v: 4·H·Dh per visible query-key pair per layer) — the policy's training forward
// and the reference's forward over the main sequences, the input-gradient backward of the
// policy's, and the KL sequences' forwards of policy and reference over
// what they must compute: each KL completion and its prompt's last token, attending to the whole
// sequence (the prompt's keys and values are the main pass's). N_matmul counts every projection
// and the head, as the baseline's count_params does.
struct SeqShape {
  int64_t prompt, length;
};
double step_flops(const ModelConfig& c, const std::vector<SeqShape>& main, const std::vector<SeqShape>& kl) {
  const double d = static_cast<double>(c.hidden_size), f = static_cast<double>(c.intermediate_size);
  const double per_layer = d * static_cast<double>(c.q_dim()) * 2 + d * static_cast<double>(c.kv_dim()) * 2 + 3 * d * f;
  const double n_matmul = per_layer * static_cast<double>(c.n_layers) + d * static_cast<double>(c.vocab_size);
  const double per_pair = 4.0 * static_cast<double>(c.q_dim()) * static_cast<double>(c.n_layers);
  // Visible (query, key) pairs of queries at positions [first, length): Σ (i + 1).
  auto pairs = [](int64_t first, int64_t length) {
    return static_cast<double>(length * (length + 1) - first * (first + 1)) / 2.0;
  };
  double main_mm = 0, main_attn = 0, kl_fwd = 0;
  for (const SeqShape& s : main) main_mm += 2 * n_matmul * static_cast<double>(s.length), main_attn += per_pair * pairs(0, s.length);
  for (const SeqShape& s : kl) {
    kl_fwd += 2 * n_matmul * static_cast<double>(s.length - s.prompt + 1) + per_pair * pairs(s.prompt - 1, s.length);
  }
  // Forwards of both models; the backward's input gradients cost one forward's matmuls (frozen
  // weights: dX only) and twice its attention.
  return 2 * (main_mm + main_attn) + 2 * kl_fwd + main_mm + 2 * main_attn;
}

// The bf16 matmul rate of this GPU through the same cuBLASLt path our projections take.
double measure_matmul_tflops(CudaContext& ctx) {
  const int64_t n = 8192;
  DeviceBuffer a(ctx, "bench A", n * n * 2), b(ctx, "bench B", n * n * 2), out(ctx, "bench C", n * n * 2);
  cuda_fill_zero(ctx, a.view(DType::U8, Shape{n * n * 2}));
  cuda_fill_zero(ctx, b.view(DType::U8, Shape{n * n * 2}));
  const LinearArgs args{a.view(DType::BF16, Shape{n, n}), b.view(DType::BF16, Shape{n, n}), Tensor{},
                        out.view(DType::BF16, Shape{n, n})};
  for (int i = 0; i < 3; ++i) linear_forward_cuda(args, ctx);
  ctx.synchronize("matmul warmup");
  const int reps = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) linear_forward_cuda(args, ctx);
  ctx.synchronize("matmul");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * static_cast<double>(n * n * n) * reps / s / 1e12;
}

struct Args {
  std::string shape, data, device = "cuda", out, optim = "adamw_torch";
  int64_t warmup = 6, steps = 18, batch = 8;
  bool checkpointing = false, nf4 = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(ErrorKind::InvalidArgument, k, " needs a value");
      return argv[++i];
    };
    if (k == "--shape") a.shape = value();
    else if (k == "--data") a.data = value();
    else if (k == "--device") a.device = value();
    else if (k == "--warmup") a.warmup = std::stoll(value());
    else if (k == "--steps") a.steps = std::stoll(value());
    else if (k == "--out") a.out = value();
    else if (k == "--ckpt") a.checkpointing = value() != "0";
    else if (k == "--nf4") a.nf4 = value() != "0";
    else if (k == "--optim") a.optim = value();
    else if (k == "--batch") a.batch = std::stoll(value());
    else fail(ErrorKind::InvalidArgument, "unknown argument ", k);
  }
  if (a.shape.empty() || a.data.empty()) fail(ErrorKind::InvalidArgument, "usage: kto_bench --shape S --data ROWS.jsonl");
  return a;
}

int run(const Args& a) {
  log_set_level(LogLevel::Warn);
  const json config_json = shape_config(a.shape);
  const ModelConfig config = model_config_from_json(config_json, a.shape);
  const DeviceChoice device = device_resolve(a.device);
  const int64_t batch = a.batch;
  json result = {{"engine", "kto.cpp"}, {"model", a.shape}, {"device", device_name(device)}, {"batch", batch},
                 {"nf4", a.nf4}, {"optim", a.optim}};
  double matmul_tflops = 0.0;
  if (device.kind == DeviceKind::Cuda) {
    CudaContext probe(device.index);
    matmul_tflops = measure_matmul_tflops(probe);
    result["gpu"] = probe.device_name();
  }
  auto t0 = std::chrono::steady_clock::now();
  Model model = Model::from_parts(config, random_weights(config));
  if (a.nf4) {
    Nf4QuantizeOptions nf4;
    nf4.double_quant = true;
    nf4.dtype = DType::BF16;  // the checkpoints' torch_dtype
    weights_quantize_nf4(model.mutable_weights(), nf4);
  }
  cuda_memory_reset_peak();
  model.to_device(device);
  result["model_build_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const std::string dir = write_tokenizer(std::filesystem::temp_directory_path() / ("kto-bench-" + a.shape), config.vocab_size);
  const Tokenizer tokenizer = Tokenizer::load(dir);
  DataOptions options;
  options.truncation.max_length = 4096;  // the rows are at most 1024 tokens: nothing is cut
  options.trl_compat = TrlCompat::Yes;
  const KtoDatasets data = load_kto_datasets(a.data, "", 0.0, tokenizer, options);

  TrainConfig c;
  c.output_dir = dir + "/run";
  c.per_device_train_batch_size = batch;
  c.optim = a.optim;
  c.load_in_4bit = a.nf4;
  c.learning_rate = 5e-7;
  c.lr_scheduler_type = "constant";
  c.beta = 0.1;
  c.max_grad_norm = 1.0;
  c.max_steps = a.warmup + a.steps;
  c.logging_steps = 1;
  c.save_steps = 0;
  c.trl_compat = true;
  c.gradient_checkpointing = a.checkpointing;
  c.lora_r = 16, c.lora_alpha = 16, c.lora_dropout = 0.0;
  LoraConfig lora;
  lora.rank = 16, lora.alpha = 16;
  Trainer trainer(c, model, data, lora_init(config, lora, 42));
  // The memory plan's predicted peak, made from the config and the data alone (issue #7).
  TrainMemorySetup setup;
  setup.model = config;
  const PassExtent extent = train_pass_extent(data.train, batch, KlSequences::Yes, data.train.options().truncation);
  const MemoryPlan plan = memory_plan(
      config, train_memory_inputs(c, setup, a.nf4 ? BaseWeights::Nf4DoubleQuant : BaseWeights::Bf16, extent));
  result["predicted_peak_GiB"] = static_cast<double>(plan.peak()) / (1 << 30);

  // Step boundaries and each step's main / KL sequence lengths (batch s = rows 8s .. 8s+7, KL
  // completions rotated by one inside the batch, as the baseline's batch_token_stats).
  std::vector<double> step_end;
  TrainerPhaseTimes at_warmup;
  TrainerEvents events;
  auto last = std::chrono::steady_clock::now();
  std::vector<double> step_s;
  events.on_step = [&](const TrainerState& s) {
    const auto now = std::chrono::steady_clock::now();
    step_s.push_back(std::chrono::duration<double>(now - last).count());
    last = now;
    if (s.global_step == a.warmup) at_warmup = trainer.phase_times();
  };
  trainer.train(events);
  const TrainerPhaseTimes all = trainer.phase_times();

  double real = 0, seconds = 0, flops = 0;
  std::vector<double> per_step;
  for (int64_t step = a.warmup; step < a.warmup + a.steps; ++step) {
    std::vector<SeqShape> main_seqs, kl_seqs;
    std::vector<int64_t> p, comp;
    for (int64_t i = step * batch; i < step * batch + batch; ++i) {
      const Example& e = data.train.examples()[static_cast<size_t>(i)];
      p.push_back(static_cast<int64_t>(e.prompt_ids.size())), comp.push_back(static_cast<int64_t>(e.completion_ids.size()));
    }
    const size_t b = static_cast<size_t>(batch);
    for (size_t i = 0; i < b; ++i) {
      main_seqs.push_back({p[i], p[i] + comp[i]});
      kl_seqs.push_back({p[i], p[i] + comp[(i + b - 1) % b]});
      real += static_cast<double>(p[i] + comp[i]);
    }
    seconds += step_s[static_cast<size_t>(step)];
    per_step.push_back(step_s[static_cast<size_t>(step)]);
    flops += step_flops(config, main_seqs, kl_seqs);
  }
  std::sort(per_step.begin(), per_step.end());
  const double n_steps = static_cast<double>(a.steps);
  result["real_tok_per_s"] = real / seconds;
  result["s_per_step_median"] = per_step[per_step.size() / 2];
  result["s_per_step_mean"] = seconds / n_steps;
  result["useful_TFLOP_per_step"] = flops / n_steps / 1e12;
  result["achieved_TFLOPs"] = flops / seconds / 1e12;
  result["matmul_TFLOPs"] = matmul_tflops;
  result["mfu"] = matmul_tflops > 0 ? flops / seconds / 1e12 / matmul_tflops : 0.0;
  result["peak_GiB"] = static_cast<double>(cuda_memory_stats().peak) / (1 << 30);
  result["gradient_checkpointing"] = a.checkpointing;
  result["ckpt"] = a.checkpointing;
  const double micro = static_cast<double>(all.micro_steps - at_warmup.micro_steps);
  result["phases_s_per_step"] = {{"policy_kl_fwd", (all.kl - at_warmup.kl) / micro},
                                 {"reference_fwd", (all.reference - at_warmup.reference) / micro},
                                 {"policy_fwd_with_head", (all.policy_forward - at_warmup.policy_forward) / micro},
                                 {"backward_with_head", (all.backward - at_warmup.backward) / micro},
                                 {"optimizer", (all.optimizer - at_warmup.optimizer) / n_steps}};
  result["loss_last"] = trainer.state().log_history.back().value("loss", NAN);
  const std::string line = result.dump();
  std::printf("%s\n", line.c_str());
  if (!a.out.empty()) std::ofstream(a.out, std::ios::app) << line << "\n";
  return 0;
}

}  // namespace
}  // namespace kto

int main(int argc, char** argv) {
  try {
    return kto::run(kto::parse(argc, argv));
  } catch (const kto::Error& e) {
    std::fprintf(stderr, "kto_bench: %s\n", e.what());
    return 1;
  }
}
