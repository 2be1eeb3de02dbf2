// The KTO training loop; see trainer.h for the step's program. HF Trainer conventions mirrored:
// updates per epoch = ceil(micro-batches / accumulation), the last update of an epoch may have
// fewer micro-batches and divides by that count; clip_grad_norm_ with coefficient
// max_norm / (norm + 1e-6) capped at 1; logged learning_rate is the rate after scheduler.step().
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>

#include "train/checkpoint.h"
#include "train/train_memory.h"
#include "train/train_state.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {

namespace {
std::atomic<bool> g_stop_requested{false};

struct SplitBatch {
  PackedBatch batch;
  std::vector<int32_t> n_prompt;     // clamped to >= 1: the first token is never scored (TRL shifts)
  std::vector<std::pair<int64_t, int64_t>> keys;  // (prompt example, completion example)
  std::vector<uint8_t> desirable;
};

// The main (kind == Main) or KL sequences of a packed micro-batch as a model batch.
SplitBatch split(const PackedMicroBatch& pmb, SeqKind kind) {
  SplitBatch out;
  out.batch.seq_starts.push_back(0);
  const int64_t n_main = pmb.n_main;
  for (int64_t s = 0; s < pmb.n_sequences(); ++s) {
    const PackedSequence& seq = pmb.sequences[static_cast<size_t>(s)];
    if (seq.kind != kind) continue;
    std::span<const int32_t> tokens = pmb.sequence_tokens(s);
    out.batch.tokens.insert(out.batch.tokens.end(), tokens.begin(), tokens.end());
    for (size_t p = 0; p < tokens.size(); ++p) out.batch.positions.push_back(static_cast<int32_t>(p));
    out.batch.seq_starts.push_back(static_cast<int32_t>(out.batch.tokens.size()));
    out.n_prompt.push_back(std::max<int32_t>(1, std::min<int32_t>(seq.prompt_len, static_cast<int32_t>(tokens.size()))));
    out.desirable.push_back(seq.label ? 1 : 0);
    // KL sequence k borrows the completion of main sequence k-1 (the first: the last's).
    const int64_t k = kind == SeqKind::Kl ? s - n_main : s;
    const int64_t donor = kind == SeqKind::Kl ? (k + n_main - 1) % n_main : k;
    out.keys.emplace_back(seq.example, pmb.sequences[static_cast<size_t>(donor)].example);
  }
  return out;
}

double elapsed_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

void Trainer::request_stop() { g_stop_requested = true; }

double Trainer::epoch_progress() const {
  return static_cast<double>(state_.epoch) +
         static_cast<double>(state_.next_micro_batch) / static_cast<double>(micro_batches_per_epoch_);
}

TrainStateInfo Trainer::state_info() const {
  return {total_steps_, config_.logging_steps, config_.save_steps, config_.eval_steps, config_.per_device_train_batch_size,
          config_.num_train_epochs, epoch_progress()};
}

void Trainer::init_run(int64_t n_train_examples) {
  adamw_ = {config_.adam_beta1, config_.adam_beta2, config_.adam_epsilon, config_.weight_decay};
  micro_batches_per_epoch_ = (n_train_examples + config_.per_device_train_batch_size - 1) / config_.per_device_train_batch_size;
  steps_per_epoch_ = (micro_batches_per_epoch_ + config_.gradient_accumulation_steps - 1) / config_.gradient_accumulation_steps;
  total_steps_ = config_.max_steps > 0 ? config_.max_steps
                                       : static_cast<int64_t>(std::ceil(config_.num_train_epochs * static_cast<double>(steps_per_epoch_)));
  total_steps_ = std::max<int64_t>(total_steps_, 1);
  schedule_ = {schedule_type_from_name(config_.lr_scheduler_type), config_.learning_rate,
               warmup_steps_resolve(config_.warmup_steps, config_.warmup_ratio, total_steps_), total_steps_};
  const bool eight_bit = train_config_optim(config_) == OptimKind::AdamW8bit;
  for (const NamedTensor& p : trainable_parameters()) {
    if (eight_bit) {
      adam8_.push_back(adamw8bit_state_new(p.tensor.numel()));
      continue;
    }
    exp_avg_.emplace_back(DType::F32, p.tensor.shape);
    exp_avg_sq_.emplace_back(DType::F32, p.tensor.shape);
  }
}

Trainer::Trainer(const TrainConfig& config, const Model& model, const KtoDatasets& data, LoraAdapter adapter)
    : config_(config), model_(model), data_(&data), adapter_(std::move(adapter)) {
  loss_config_ = {config.loss_type == "kto" ? KtoLossType::Kto : KtoLossType::ApoZeroUnpaired, config.beta,
                  config.desirable_weight, config.undesirable_weight};
  init_run(data.train.size());
  reserve_device_memory();
  if (config.precompute_ref_log_probs) {
    // One ordered pass over the first epoch's micro-batches: main and KL reference log-probs.
    for (const auto& batch : data_->train.micro_batches(0, config.per_device_train_batch_size)) {
      PackedMicroBatch pmb = data_->train.pack(batch, loss_config_.type == KtoLossType::Kto ? KlSequences::Yes : KlSequences::No);
      for (SeqKind kind : {SeqKind::Main, SeqKind::Kl}) {
        SplitBatch part = split(pmb, kind);
        if (part.keys.empty()) continue;
        std::vector<double> logps = model_.sequence_scores(part.batch, part.n_prompt, nullptr).logps;
        for (size_t i = 0; i < logps.size(); ++i) ref_cache_.emplace(part.keys[i], logps[i]);
      }
    }
  }
}

void Trainer::reserve_device_memory() {
  if (model_.device().kind == DeviceKind::Cpu) return;
  // The first epoch's largest pass (main or KL sequences of one micro-batch); a later epoch's
  // shuffle may bring a larger one, which grows the plan once.
  // train_pass_extent finds it from the examples' lengths, as the memory plan does.
  const KlSequences kl = loss_config_.type == KtoLossType::Kto ? KlSequences::Yes : KlSequences::No;
  const PassExtent extent =
      train_pass_extent(data_->train, config_.per_device_train_batch_size, kl, data_->train.options().truncation);
  model_.reserve(extent.n_tokens, extent.n_head_rows, &adapter_,
                 config_.gradient_checkpointing ? Checkpointing::On : Checkpointing::Off);
  if (kl == KlSequences::Yes) {
    model_.reserve_prompts(ref_prompts_, extent.kl_reuse.n_prompt_tokens);
    if (adapter_.config.dropout == 0.0) model_.reserve_prompts(policy_prompts_, extent.kl_reuse.n_prompt_tokens);
  }
}

bool Trainer::cached_reference(const std::vector<std::pair<int64_t, int64_t>>& keys, std::vector<double>& out) const {
  out.resize(keys.size());
  if (ref_cache_.empty()) return false;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = ref_cache_.find(keys[i]);
    if (it == ref_cache_.end()) return false;
    out[i] = it->second;
  }
  return true;
}

std::vector<double> Trainer::reference_logps(const PackedBatch& batch, std::span<const int32_t> n_prompt,
                                             const std::vector<std::pair<int64_t, int64_t>>& keys, PromptCache* keep) {
  std::vector<double> out;
  if (cached_reference(keys, out)) {
    if (keep) *keep = PromptCache{};  // nothing kept: a KL pass after it computes whole sequences
    return out;
  }
  return model_.sequence_scores(batch, n_prompt, nullptr, keep).logps;  // LoRA off = the reference
}

std::vector<double> Trainer::reference_logps_after(const PromptCache& kept, const PackedBatch& batch,
                                                   std::span<const int32_t> n_prompt,
                                                   const std::vector<std::pair<int64_t, int64_t>>& keys) {
  std::vector<double> out;
  if (cached_reference(keys, out)) return out;
  return model_.sequence_scores_after(kept, batch, n_prompt, nullptr).logps;
}

double Trainer::micro_step(std::span<const int64_t> batch, double grad_scale) {
  const bool with_kl = loss_config_.type == KtoLossType::Kto;
  PackedMicroBatch pmb = data_->train.pack(batch, with_kl ? KlSequences::Yes : KlSequences::No);
  SplitBatch main = split(pmb, SeqKind::Main);

  double kl = 0.0;
  auto t = std::chrono::steady_clock::now();
  auto lap = [&t](double& into) {
    into += elapsed_since(t);
    t = std::chrono::steady_clock::now();
  };
  // KL sequence s is main sequence s's prompt with another completion: each model's main pass
  // keeps its prompts' keys and values and its KL pass computes only the completions (on a GPU;
  // the CPU computes them whole). The policy's prompts are kept only without LoRA dropout (its
  // training forward drops out; its KL pass, in inference mode, does not).
  const SplitBatch kl_part = with_kl ? split(pmb, SeqKind::Kl) : SplitBatch{};
  std::vector<double> ref = reference_logps(main.batch, main.n_prompt, main.keys, with_kl ? &ref_prompts_ : nullptr);
  std::vector<double> kl_ref;
  if (with_kl) kl_ref = reference_logps_after(ref_prompts_, kl_part.batch, kl_part.n_prompt, kl_part.keys);
  lap(phase_times_.reference);
  DecoderTrainOptions options{static_cast<uint64_t>(config_.seed) * 1000003ull + static_cast<uint64_t>(state_.global_step),
                              config_.gradient_checkpointing ? Checkpointing::On : Checkpointing::Off};
  const bool keep_policy = with_kl && adapter_.config.dropout == 0.0;
  TrainPass pass = model_.forward_train(main.batch, main.n_prompt, adapter_, options, keep_policy ? &policy_prompts_ : nullptr);
  lap(phase_times_.policy_forward);
  if (with_kl) {
    const std::vector<double> kl_policy =
        keep_policy ? model_.sequence_scores_after(policy_prompts_, kl_part.batch, kl_part.n_prompt, &adapter_).logps
                    : model_.sequence_scores(kl_part.batch, kl_part.n_prompt, &adapter_).logps;
    kl = kto_kl_clamp(kto_kl_mean(kl_policy, kl_ref));  // one rank: the cross-rank mean is itself
    lap(phase_times_.kl);
  }

  KtoLossResult loss = kto_loss(loss_config_, {pass.scores.logps, ref, main.desirable}, kl);
  std::vector<double> d_logps = loss.d_policy_logps;
  for (double& d : d_logps) d *= grad_scale;
  model_.backward_train(pass, d_logps, adapter_);
  lap(phase_times_.backward);
  phase_times_.micro_steps += 1;

  metrics_.add_kto(loss, kl, {pass.scores.mean_logit_sums, pass.scores.entropy_sums, pass.scores.n_tokens}, main.desirable);
  state_.num_tokens += main.batch.n_tokens();
  metrics_.set("num_tokens", static_cast<double>(state_.num_tokens));
  return loss.loss;
}

double Trainer::clip_gradients() {
  // Per-tensor sums of squares in parallel, added in tensor order: the same norm for any
  // thread count (a model's hundreds of LoRA tensors keep every core busy).
  const std::vector<NamedTensor> gradients = trainable_gradients();
  const int64_t n = static_cast<int64_t>(gradients.size());
  std::vector<double> partial(gradients.size(), 0.0);
#pragma omp parallel for schedule(dynamic)
  for (int64_t t = 0; t < n; ++t) {
    const Tensor& g = gradients[static_cast<size_t>(t)].tensor;
    const float* d = g.f32();
    double sum = 0.0;
    for (int64_t i = 0; i < g.numel(); ++i) sum += static_cast<double>(d[i]) * d[i];
    partial[static_cast<size_t>(t)] = sum;
  }
  double sum_sq = 0.0;
  for (double p : partial) sum_sq += p;
  const double norm = std::sqrt(sum_sq);
  const double coef = config_.max_grad_norm / (norm + 1e-6);
  if (config_.max_grad_norm > 0 && coef < 1.0) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t t = 0; t < n; ++t) {
      const Tensor& g = gradients[static_cast<size_t>(t)].tensor;
      float* d = g.f32();
      for (int64_t i = 0; i < g.numel(); ++i) d[i] = static_cast<float>(d[i] * coef);
    }
  }
  return norm;
}

Trainer::StepResult Trainer::optimizer_step() {
  StepResult result;
  zero_grad();
  const int64_t first = state_.next_micro_batch;
  const int64_t n_micro = std::min(config_.gradient_accumulation_steps, micro_batches_per_epoch_ - first);
  const auto batches = train_micro_batches(state_.epoch);
  const int64_t tokens_before = state_.num_tokens;
  if (sft_data_) {
    // HF's num_items_in_batch: completion tokens over every micro-batch of the step.
    int64_t n_items = 0;
    for (int64_t m = 0; m < n_micro; ++m) n_items += sft_data_->train.completion_tokens(batches[static_cast<size_t>(first + m)]);
    for (int64_t m = 0; m < n_micro; ++m) {
      result.loss += sft_micro_step(batches[static_cast<size_t>(first + m)], static_cast<double>(std::max<int64_t>(n_items, 1)));
    }
  } else {
    for (int64_t m = 0; m < n_micro; ++m) {
      result.loss += micro_step(batches[static_cast<size_t>(first + m)], 1.0 / static_cast<double>(n_micro)) / static_cast<double>(n_micro);
    }
  }
  result.tokens = state_.num_tokens - tokens_before;
  const auto optimizer_start = std::chrono::steady_clock::now();
  result.grad_norm = clip_gradients();
  const double lr = schedule_.lr(state_.global_step);
  std::vector<NamedTensor> params = trainable_parameters(), grads = trainable_gradients();
  AdamWConfig no_decay = adamw_;
  no_decay.weight_decay = 0.0;
  // Element-wise per tensor: tensors update in parallel with the same results as in sequence.
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < params.size(); ++i) {
    auto span_of = [](const Tensor& t) { return std::span<float>(t.f32(), static_cast<size_t>(t.numel())); };
    // Full fine-tuning: as HF's get_decay_parameter_names, no decay on norm weights and biases (1-D).
    const AdamWConfig& rule = full_model_ && params[i].tensor.shape.rank == 1 ? no_decay : adamw_;
    if (!adam8_.empty()) {
      adamw8bit_step(rule, lr, state_.global_step + 1, span_of(params[i].tensor), span_of(grads[i].tensor), adam8_[i]);
      continue;
    }
    adamw_step(rule, lr, state_.global_step + 1, span_of(params[i].tensor), span_of(grads[i].tensor),
               {span_of(exp_avg_[i].view()), span_of(exp_avg_sq_[i].view())});
  }
  adapter_.touch();  // new weights: device mirrors re-upload
  if (full_model_) full_model_->weights_updated();
  phase_times_.optimizer += elapsed_since(optimizer_start);
  state_.global_step += 1;
  state_.next_micro_batch += n_micro;
  if (state_.next_micro_batch >= micro_batches_per_epoch_) {
    state_.epoch += 1;
    state_.next_micro_batch = 0;
  }
  return result;
}

void Trainer::log_step(const StepResult& step, const TrainerEvents& events) {
  step_losses_.push_back(step.loss);
  const bool last = state_.global_step >= total_steps_;
  if (config_.logging_steps <= 0 || (state_.global_step % config_.logging_steps != 0 && !last)) return;
  std::map<std::string, double> record = metrics_.take();
  double loss_sum = 0;
  for (double l : step_losses_) loss_sum += l;
  record["loss"] = loss_sum / static_cast<double>(step_losses_.size());
  step_losses_.clear();
  record["grad_norm"] = step.grad_norm;
  record["learning_rate"] = schedule_.lr(state_.global_step - 1);  // the rate this step used, as HF logs it
  record["epoch"] = epoch_progress();
  nlohmann::json entry(record);
  entry["step"] = state_.global_step;
  state_.log_history.push_back(entry);
  if (events.on_log) events.on_log(state_, record);
}

std::map<std::string, double> Trainer::evaluate() {
  if (sft_data_) return sft_evaluate();
  if (!data_->eval) return {};
  MetricLog eval_metrics;
  const bool with_kl = loss_config_.type == KtoLossType::Kto;
  double loss_sum = 0;
  int64_t n = 0;
  for (const auto& batch : data_->eval->micro_batches(0, config_.per_device_eval_batch_size)) {
    PackedMicroBatch pmb = data_->eval->pack(batch, with_kl ? KlSequences::Yes : KlSequences::No);
    SplitBatch main = split(pmb, SeqKind::Main);
    double kl = 0.0;
    if (with_kl) {
      SplitBatch kl_part = split(pmb, SeqKind::Kl);
      kl = kto_kl_clamp(kto_kl_mean(model_.sequence_scores(kl_part.batch, kl_part.n_prompt, &adapter_).logps,
                                    model_.sequence_scores(kl_part.batch, kl_part.n_prompt, nullptr).logps));
    }
    SequenceScores policy = model_.sequence_scores(main.batch, main.n_prompt, &adapter_);
    std::vector<double> ref = model_.sequence_scores(main.batch, main.n_prompt, nullptr).logps;
    KtoLossResult loss = kto_loss(loss_config_, {policy.logps, ref, main.desirable}, kl);
    eval_metrics.add_kto(loss, kl, {policy.mean_logit_sums, policy.entropy_sums, policy.n_tokens}, main.desirable);
    loss_sum += loss.loss;
    ++n;
  }
  std::map<std::string, double> out = eval_metrics.take("eval_");
  if (n) out["eval_loss"] = loss_sum / static_cast<double>(n);
  return out;
}

std::string Trainer::save_checkpoint() {
  std::string path = checkpoint_write(config_.output_dir, state_.global_step, [&](const std::string& dir) {
    save_trainable(dir);
    if (adam8_.empty()) {
      train_state_save(dir, state_, trainable_parameters(), exp_avg_, exp_avg_sq_, state_info());
    } else {  // the position files, then the 8-bit states as optimizer.safetensors
      train_state_save(dir, state_, std::vector<NamedTensor>{}, {}, {}, state_info());
      adamw8bit_save(path_join(dir, "optimizer.safetensors"), trainable_parameters(), adam8_);
    }
  });
  checkpoint_rotate(config_.output_dir, config_.save_total_limit);
  return path;
}

void Trainer::resume(const std::string& checkpoint_dir) {
  load_trainable(checkpoint_dir);
  if (adam8_.empty()) {
    train_state_load(checkpoint_dir, state_, trainable_parameters(), exp_avg_, exp_avg_sq_);
  } else {
    std::vector<HostTensor> none;
    train_state_load(checkpoint_dir, state_, std::vector<NamedTensor>{}, none, none);
    adamw8bit_load(path_join(checkpoint_dir, "optimizer.safetensors"), trainable_parameters(), adam8_);
  }
  adapter_.touch();
  if (state_.global_step >= total_steps_) {
    log_warn(checkpoint_dir, " is at step ", state_.global_step, " of ", total_steps_, "; nothing left to train");
  }
}

void Trainer::write_final(const TrainerEvents& events) {
  save_trainable(config_.output_dir);
  train_state_write_json(config_.output_dir, state_, state_info());
  (void)events;
}

void Trainer::train(const TrainerEvents& events) {
  g_stop_requested = false;
  while (state_.global_step < total_steps_) {
    const auto start = std::chrono::steady_clock::now();
    StepResult step = optimizer_step();
    state_.seconds += elapsed_since(start);
    log_step(step, events);
    if (events.on_step) events.on_step(state_);
    const bool last = state_.global_step >= total_steps_;
    const bool has_eval = sft_data_ ? sft_data_->eval.has_value() : data_->eval.has_value();
    if (config_.eval_steps > 0 && has_eval && (state_.global_step % config_.eval_steps == 0 || last)) {
      std::map<std::string, double> eval = evaluate();
      nlohmann::json entry(eval);
      entry["step"] = state_.global_step;
      entry["epoch"] = epoch_progress();
      state_.log_history.push_back(entry);
      if (events.on_log) events.on_log(state_, eval);
    }
    const bool stop = g_stop_requested.load();
    if ((config_.save_steps > 0 && state_.global_step % config_.save_steps == 0) || last || stop) {
      std::string path = save_checkpoint();
      if (events.on_save) events.on_save(path);
    }
    if (stop) {
      log_info("stopped at step ", state_.global_step, "; resume with resume_from_checkpoint: true");
      return;
    }
  }
  write_final(events);
}

}  // namespace kto
