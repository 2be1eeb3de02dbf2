// A training run's memory plan, budget, `auto` batch and advice (train_memory.h).
#include "train/train_memory.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "formats/hf_cache.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {

namespace {

std::string gib(int64_t bytes) { return memory_bytes_text(bytes); }

// One sequence as Trainer split cuts it: its length and unscored prefix (at least 1).
struct Cut {
  int64_t length = 0, n_prompt = 0;
};
Cut cut_sequence(size_t prompt_len, size_t completion_len, const TruncationRule& rule) {
  const SequenceCut cut = truncate_sequence(static_cast<int64_t>(prompt_len), static_cast<int64_t>(completion_len), rule);
  return {cut.length(), std::max<int64_t>(1, std::min(cut.prompt_len, cut.length()))};
}

int64_t min_batch_size(const TrainConfig& c) { return c.objective == "kto" && c.loss_type == "kto" ? 2 : 1; }

}  // namespace

BaseWeights train_memory_base(const TrainConfig& c, const nlohmann::json& config_json) {
  const auto q = config_json.find("quantization_config");
  if (q != config_json.end() && q->is_object() && q->value("quant_method", "") == "bitsandbytes" &&
      (q->value("load_in_4bit", false) || q->value("_load_in_4bit", false))) {
    return q->value("bnb_4bit_use_double_quant", false) ? BaseWeights::Nf4DoubleQuant : BaseWeights::Nf4;
  }
  if (!c.load_in_4bit) return BaseWeights::Bf16;
  return c.bnb_4bit_use_double_quant ? BaseWeights::Nf4DoubleQuant : BaseWeights::Nf4;
}

MemoryPlanInputs train_memory_inputs(const TrainConfig& c, const TrainMemorySetup& setup, BaseWeights base,
                                     PassExtent pass) {
  MemoryPlanInputs in;
  in.pass = pass;
  in.eval_pass = setup.eval_pass;
  in.checkpointing = c.gradient_checkpointing ? Checkpointing::On : Checkpointing::Off;
  in.lora = setup.lora ? *setup.lora : LoraPlan{c.lora_r, c.lora_target_modules, c.lora_dropout};
  in.base = base;
  in.optimizer = train_config_optim(c) == OptimKind::AdamW8bit ? PlanOptimizer::AdamW8bit : PlanOptimizer::AdamW;
  in.optimizer_placement = OptimizerPlacement::Host;  // TODO(#7): Device once the LoRA optimizer runs on the GPU
  // Trainer::reserve_device_memory: KTO's KL passes reuse the reference's kept prompts, and the
  // policy's when it has no LoRA dropout.
  if (c.objective == "kto" && c.loss_type == "kto") in.n_prompt_caches = in.lora.dropout == 0.0 ? 2 : 1;
  return in;
}

std::optional<LoraPlan> train_memory_adapter_lora(const TrainConfig& c) {
  if (c.adapter_name_or_path.empty()) return std::nullopt;
  const nlohmann::json j = json_read_file(path_join(hf_resolve_model(c.adapter_name_or_path), "adapter_config.json"));
  LoraPlan lora{j.value("r", c.lora_r), {}, j.value("lora_dropout", 0.0)};
  const nlohmann::json targets = j.value("target_modules", nlohmann::json("all-linear"));
  if (targets.is_string()) lora.target_modules = {targets.get<std::string>()};
  else lora.target_modules = targets.get<std::vector<std::string>>();
  return lora;
}

// Trainer::reserve_device_memory: over micro_batches(0, batch_size), the max of each pass's
// tokens and rows (from 1 and 1), of the main sequences' prompt tokens (from 1: what it keeps
// with Model::reserve_prompts), and of the KL pass over kept prompts (GpuModel::scores_after).
PassExtent train_pass_extent(const KtoDataset& data, int64_t batch_size, KlSequences kl, const TruncationRule& rule) {
  const std::span<const Example> examples = data.examples();
  PassExtent out;
  for (const std::vector<int64_t>& batch : data.micro_batches(0, batch_size)) {
    PassExtent main{0, 0, {}}, kl_pass{0, 0, {}};
    int64_t prompt_tokens = 0;
    for (size_t k = 0; k < batch.size(); ++k) {
      const Example& e = examples[static_cast<size_t>(batch[k])];
      const Cut m = cut_sequence(e.prompt_ids.size(), e.completion_ids.size(), rule);
      main.n_tokens += m.length, main.n_head_rows += m.length - m.n_prompt, prompt_tokens += m.n_prompt;
      if (kl == KlSequences::No) continue;
      const Example& donor = examples[static_cast<size_t>(batch[(k + batch.size() - 1) % batch.size()])];  // pack_micro_batch
      const Cut s = cut_sequence(e.prompt_ids.size(), donor.completion_ids.size(), rule);
      kl_pass.n_tokens += s.length, kl_pass.n_head_rows += s.length - s.n_prompt;
      KlReuseExtent& r = kl_pass.kl_reuse;
      r.n_queries += s.length - s.n_prompt + 1, r.n_keys += s.length, r.n_sequences += 1, r.n_head_rows += s.length - s.n_prompt;
    }
    KlReuseExtent& o = out.kl_reuse;
    const KlReuseExtent& r = kl_pass.kl_reuse;
    out.n_tokens = std::max({out.n_tokens, main.n_tokens, kl_pass.n_tokens});
    out.n_head_rows = std::max({out.n_head_rows, main.n_head_rows, kl_pass.n_head_rows});
    o.n_prompt_tokens = std::max(o.n_prompt_tokens, prompt_tokens);
    o.n_queries = std::max(o.n_queries, r.n_queries), o.n_keys = std::max(o.n_keys, r.n_keys);
    o.n_sequences = std::max(o.n_sequences, r.n_sequences), o.n_head_rows = std::max(o.n_head_rows, r.n_head_rows);
  }
  return out;
}

PassExtent train_pass_extent(const SftDataset& data, int64_t batch_size, int64_t max_length) {
  const std::span<const SftExample> examples = data.examples();
  PassExtent out;
  for (const std::vector<int64_t>& batch : data.micro_batches(0, batch_size)) {
    PassExtent pass{0, 0, {}};
    for (int64_t i : batch) {
      const SftExample& e = examples[static_cast<size_t>(i)];
      const int64_t len = std::min<int64_t>(static_cast<int64_t>(e.ids.size()), max_length > 0 ? max_length : INT64_MAX);
      pass.n_tokens += len;
      pass.n_head_rows += len - std::clamp<int64_t>(e.n_prompt, 1, std::max<int64_t>(len, 1));  // sft_data.cpp scored_from
    }
    out.n_tokens = std::max(out.n_tokens, pass.n_tokens), out.n_head_rows = std::max(out.n_head_rows, pass.n_head_rows);
  }
  return out;
}

PassExtentFn train_extent_fn(const KtoDataset& data, KlSequences kl) {
  return [&data, kl](int64_t batch_size, int64_t max_length) {
    TruncationRule rule = data.options().truncation;
    rule.max_length = max_length;
    return train_pass_extent(data, batch_size, kl, rule);
  };
}

PassExtentFn train_extent_fn(const SftDataset& data) {
  return [&data](int64_t batch_size, int64_t max_length) { return train_pass_extent(data, batch_size, max_length); };
}

PassExtentFn train_extent_fn_upper_bound() { return memory_plan_batch_extent; }

MemoryBudget train_memory_budget(const TrainConfig& c, const DeviceChoice& device) {
  if (c.max_memory > 0) {
    return {c.max_memory - kCudaContextEstimateBytes,
            str_cat("max_memory ", gib(c.max_memory), " less ~", gib(kCudaContextEstimateBytes), " for the CUDA context")};
  }
  if (device.kind != DeviceKind::Cuda) return {};
  const int64_t free_bytes = device_free_bytes(device);
  return {free_bytes - kCudaLateOverheadBytes, str_cat("the ", gib(free_bytes), " free on ", device_name(device), " less ~",
                                                       gib(kCudaLateOverheadBytes), " for cuBLAS and kernels")};
}

MemoryResolution train_memory_resolve(const TrainConfig& c, const TrainMemorySetup& setup, const MemoryBudget& budget) {
  const bool automatic = c.per_device_train_batch_size == 0 || c.auto_find_batch_size;
  MemoryResolution r;
  r.budget = budget;
  if (!automatic || !budget.limited()) {
    r.batch_size = c.per_device_train_batch_size > 0 ? c.per_device_train_batch_size : kAutoBatchWithoutBudget;
    r.extent = setup.extent(r.batch_size, c.max_length);
    r.inputs = train_memory_inputs(c, setup, setup.base, r.extent);
    r.plan = memory_plan(setup.model, r.inputs);
    if (automatic) {
      r.note = str_cat("auto batch: per_device_train_batch_size ", r.batch_size,
                       " (no GPU memory to fit it to; max_memory plans for a GPU)");
    }
    if (budget.limited() && r.plan.peak() > budget.bytes) {
      r.advice = train_memory_advice(c, setup, budget, r.batch_size, BatchSizeKind::Fixed);
    }
    return r;
  }
  const int64_t lo = min_batch_size(c);
  const int64_t hi = std::max(lo, c.per_device_train_batch_size > 0 ? c.per_device_train_batch_size : setup.n_examples);
  const BatchChoice choice =
      memory_plan_largest_batch(setup.model, train_memory_inputs(c, setup, setup.base, {}), budget.bytes, lo, hi,
                                [&](int64_t b) { return setup.extent(b, c.max_length); });
  r.batch_size = choice.batch_size > 0 ? choice.batch_size : lo, r.extent = choice.extent, r.plan = choice.plan;
  r.inputs = train_memory_inputs(c, setup, setup.base, r.extent);
  if (choice.batch_size == 0) {
    r.advice = train_memory_advice(c, setup, budget, lo, BatchSizeKind::Auto);
    return r;
  }
  const bool everything = r.batch_size == setup.n_examples && c.per_device_train_batch_size == 0;
  r.note = str_cat("auto batch: per_device_train_batch_size ", r.batch_size, ", the largest",
                   everything ? " there is (every example in one micro-batch)" : "", " whose predicted peak (",
                   gib(r.plan.peak()), ") fits in ", budget.what);
  return r;
}

void train_memory_require_fit(const MemoryResolution& memory) {
  if (!memory.advice.empty()) fail(ErrorKind::OutOfMemory, memory.advice);
}

namespace {

// The search behind train_memory_advice: peaks of variants of the config at a batch and length.
struct Advisor {
  const TrainConfig& c;
  const TrainMemorySetup& setup;
  int64_t limit = 0;
  int64_t batch_size = 0;

  int64_t peak(const TrainConfig& v, BaseWeights b, int64_t batch, int64_t length) const {
    return memory_plan(setup.model, train_memory_inputs(v, setup, b, setup.extent(batch, length))).peak();
  }
  // The largest value in [lo, hi] for which fits(value) holds, or 0 when lo does not fit.
  template <typename Fits>
  static int64_t largest(int64_t lo, int64_t hi, Fits fits) {
    if (lo > hi || !fits(lo)) return 0;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo + 1) / 2;
      if (fits(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  // A smaller batch size, then a smaller max_length, that fit with the settings `v` / `b`.
  void shrink(const TrainConfig& v, BaseWeights b, BatchSizeKind kind, const std::string& prefix,
              std::vector<std::string>& out) const {
    const int64_t batch = kind == BatchSizeKind::Auto ? 0 : largest(min_batch_size(c), batch_size - 1, [&](int64_t n) {
      return peak(v, b, n, c.max_length) <= limit;
    });
    if (batch > 0) {
      const int64_t effective = batch_size * c.gradient_accumulation_steps;
      out.push_back(str_cat(prefix, "per_device_train_batch_size: ", batch, " (→ ", gib(peak(v, b, batch, c.max_length)),
                            "; gradient_accumulation_steps: ", (effective + batch - 1) / batch,
                            " keeps the effective batch near ", effective, ")"));
    }
    const int64_t length = largest(std::max<int64_t>(2, c.max_prompt_length + 1), c.max_length - 1, [&](int64_t n) {
      return peak(v, b, batch_size, n) <= limit;
    });
    if (length > 0) out.push_back(str_cat(prefix, "max_length: ", length, " (→ ", gib(peak(v, b, batch_size, length)), ")"));
  }
};

std::string joined(const std::vector<std::string>& list) {
  std::string s;
  for (const std::string& x : list) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::string train_memory_advice(const TrainConfig& c, const TrainMemorySetup& setup, const MemoryBudget& budget,
                                int64_t batch_size, BatchSizeKind kind) {
  const Advisor a{c, setup, budget.bytes, batch_size};
  const BaseWeights base = setup.base;
  const std::string what =
      str_cat("predicted peak ", gib(a.peak(c, base, batch_size, c.max_length)), " at per_device_train_batch_size ",
              batch_size, kind == BatchSizeKind::Auto ? " (the smallest `auto` tries)" : "", " and max_length ", c.max_length,
              " (largest pass ", setup.extent(batch_size, c.max_length).n_tokens, " tokens) does not fit in ", budget.what,
              " = ", gib(budget.bytes));
  const BaseWeights nf4 = c.bnb_4bit_use_double_quant ? BaseWeights::Nf4DoubleQuant : BaseWeights::Nf4;
  TrainConfig ckpt = c;
  ckpt.gradient_checkpointing = true;
  std::vector<std::string> single;
  if (const int64_t p = a.peak(ckpt, base, batch_size, c.max_length); !c.gradient_checkpointing && p <= a.limit) {
    single.push_back(str_cat("gradient_checkpointing: true (→ ", gib(p), ")"));
  }
  if (const int64_t p = a.peak(c, nf4, batch_size, c.max_length); base == BaseWeights::Bf16 && p <= a.limit) {
    single.push_back(str_cat("load_in_4bit: true (→ ", gib(p), ")"));
  }
  a.shrink(c, base, kind, "", single);
  if (!single.empty()) return str_cat(what, "; change one of: ", joined(single));
  // Nothing alone: every switch that lowers memory together, then with a smaller batch or length.
  const BaseWeights all_base = base == BaseWeights::Bf16 ? nf4 : base;
  std::string switches = c.gradient_checkpointing ? "" : "gradient_checkpointing: true";
  if (base == BaseWeights::Bf16) switches += std::string(switches.empty() ? "" : " and ") + "load_in_4bit: true";
  if (const int64_t p = a.peak(ckpt, all_base, batch_size, c.max_length); !switches.empty() && p <= a.limit) {
    return str_cat(what, "; set ", switches, " (→ ", gib(p), ")");
  }
  std::vector<std::string> combined;
  a.shrink(ckpt, all_base, kind, switches.empty() ? "" : switches + " with ", combined);
  if (!combined.empty()) return str_cat(what, "; change one of: ", joined(combined));
  const int64_t shortest = std::max<int64_t>(2, c.max_prompt_length + 1);
  const MemoryPlan least =
      memory_plan(setup.model, train_memory_inputs(ckpt, setup, all_base, setup.extent(min_batch_size(c), shortest)));
  return str_cat(what, "; even ", min_batch_size(c), " sequence(s) of ", shortest, " tokens per micro-batch",
                 switches.empty() ? "" : " with " + switches, " need ", gib(least.peak()), " (the weights alone ",
                 gib(least.weights), "): use a GPU with more memory");
}

std::string train_memory_text(const MemoryPlanInputs& in, const MemoryPlan& p, int64_t batch_size) {
  const char* base = in.base == BaseWeights::Bf16 ? "bf16" : in.base == BaseWeights::Nf4 ? "NF4" : "NF4 (double quant)";
  const bool ckpt = in.checkpointing == Checkpointing::On;
  auto line = [](const char* name, int64_t bytes, const std::string& what) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "  %-23s %10s%s%s\n", name, memory_bytes_text(bytes).c_str(), what.empty() ? "" : "  ",
                  what.c_str());
    return std::string(buf);
  };
  std::string out = str_cat("memory plan for one GPU: ", base, " base, LoRA r=", in.lora.rank,
                            in.lora.dropout > 0 ? " with dropout" : "", ", gradient checkpointing ", ckpt ? "on" : "off",
                            ", per_device_train_batch_size ", batch_size, ", largest pass ", in.pass.n_tokens, " tokens (",
                            in.pass.n_head_rows, " scored)\n");
  out += line("weights", p.weights, p.dequant_scratch ? str_cat("NF4 projections, norms, embedding and head bf16, ",
                                                                memory_bytes_text(p.dequant_scratch), " dequantisation scratch")
                                                      : "bf16, one buffer");
  out += line("LoRA + optimizer", p.lora, in.optimizer_placement == OptimizerPlacement::Host
                                              ? "bf16 A/B, f32 gradients (master weights and moments on the host)"
                                              : "bf16 A/B, f32 gradients, master weights and moments");
  out += line("saved activations", p.saved, ckpt ? "each layer's input (the rest is recomputed in the backward)"
                                                 : "every tensor each layer's backward reads");
  if (p.kept_prompts) {
    out += line("kept prompts", p.kept_prompts, str_cat("main passes' prompt keys and values for the KL passes (",
                                                        in.n_prompt_caches == 2 ? "reference and policy" : "reference", ")"));
  }
  const ScratchUse& u = p.largest_scratch_use();
  out += line("scratch arena", p.scratch, str_cat("its largest use, the ", p.largest_scratch_use_name(), " (inference ",
                                                  memory_bytes_text(p.inference.bytes), ", forward ",
                                                  memory_bytes_text(p.forward.bytes), ", backward ",
                                                  memory_bytes_text(p.backward.bytes),
                                                  p.kept_prompts ? str_cat(", KL over kept prompts ",
                                                                           memory_bytes_text(p.kl_after.bytes))
                                                                 : std::string(),
                                                  "), holds:"));
  out += line("  layer tensors", u.layer_tensors(), "one layer's activations or gradients, the pass's inputs");
  if (u.recompute) out += line("  recompute workspace", u.recompute, "the checkpointed layer, recomputed");
  if (u.attention_workspace) out += line("  attention workspace", u.attention_workspace, "softmax statistics per head");
  out += line("  LoRA workspace", u.lora_workspace, "dropped-out inputs and [T, r] gradients");
  out += line("  head chunk", u.head_chunk, str_cat(in.head_chunk_rows, " rows of logits at once, never [T, vocab]"));
  out += line("cuBLAS workspace", p.cublas_workspace, "");
  out += line("predicted peak", p.peak(), "what kto allocates on the device (DeviceBuffer bytes)");
  out += line("CUDA context", p.cuda_context, "driver memory estimate, outside the peak");
  return out;
}

std::string train_memory_text(const MemoryResolution& m) {
  std::string out = train_memory_text(m.inputs, m.plan, m.batch_size);
  if (!m.note.empty()) return out + m.note + "\n";
  if (m.budget.limited() && m.advice.empty()) out += str_cat("fits in ", m.budget.what, " = ", gib(m.budget.bytes), "\n");
  return out;
}

nlohmann::json train_memory_json(const MemoryPlan& p, const PassExtent& extent, int64_t batch_size) {
  const ScratchUse& u = p.largest_scratch_use();
  return {{"per_device_train_batch_size", batch_size},
          {"pass_tokens", extent.n_tokens},
          {"pass_scored_tokens", extent.n_head_rows},
          {"weights", p.weights},
          {"dequant_scratch", p.dequant_scratch},
          {"lora_and_optimizer", p.lora},
          {"saved_activations", p.saved},
          {"kept_prompts", p.kept_prompts},
          {"scratch_arena", p.scratch},
          {"scratch_use", p.largest_scratch_use_name()},
          {"scratch_inference", p.inference.bytes},
          {"scratch_forward", p.forward.bytes},
          {"scratch_backward", p.backward.bytes},
          {"scratch_kl_after_kept_prompts", p.kl_after.bytes},
          {"recompute_workspace", u.recompute},
          {"attention_workspace", u.attention_workspace},
          {"lora_workspace", u.lora_workspace},
          {"head_chunk", u.head_chunk},
          {"cublas_workspace", p.cublas_workspace},
          {"predicted_peak", p.peak()},
          {"cuda_context_estimate", p.cuda_context}};
}

}  // namespace kto
