// The Trainer's SFT objective and what differs between LoRA and full fine-tuning: which
// parameters an optimizer step updates and how they are saved. SFT mirrors transformers'
// Trainer.training_step for TRL 1.9's SFTTrainer: loss = Σ completion NLL / num_items_in_batch
// (the step's completion tokens), metrics mean_token_accuracy and entropy per micro-batch,
// num_tokens counting every token of the packed sequences (SFTTrainer's position_ids count).
#include <filesystem>

#include "model/decoder_forward.h"
#include "train/sft_loss.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {

Trainer::Trainer(const TrainConfig& config, const Model& model, const SftDatasets& data, LoraAdapter adapter)
    : config_(config), model_(model), sft_data_(&data), adapter_(std::move(adapter)) {
  init_run(data.train.size());
}

Trainer::Trainer(const TrainConfig& config, Model& model, const SftDatasets& data)
    : config_(config), model_(model), sft_data_(&data), full_model_(&model),
      full_grads_(weights_zeros_like(model.weights())) {
  init_run(data.train.size());
}

std::vector<std::vector<int64_t>> Trainer::train_micro_batches(int64_t epoch) const {
  return sft_data_ ? sft_data_->train.micro_batches(epoch, config_.per_device_train_batch_size)
                   : data_->train.micro_batches(epoch, config_.per_device_train_batch_size);
}

double Trainer::sft_micro_step(std::span<const int64_t> batch, double num_items_in_batch) {
  const SftMicroBatch mb = sft_data_->train.pack(batch);
  DecoderTrainOptions options{static_cast<uint64_t>(config_.seed) * 1000003ull + static_cast<uint64_t>(state_.global_step),
                              config_.gradient_checkpointing ? Checkpointing::On : Checkpointing::Off};
  TrainPass pass = full_model_ ? model_.forward_train_full(mb.batch, mb.n_prompt)
                               : model_.forward_train(mb.batch, mb.n_prompt, adapter_, options);
  const SftLossResult loss = sft_loss(pass.scores.logps, num_items_in_batch);
  if (full_model_) model_.backward_train_full(pass, loss.d_policy_logps, full_grads_);
  else model_.backward_train(pass, loss.d_policy_logps, adapter_);
  int64_t n_correct = 0;
  double entropy_sum = 0.0;
  for (size_t s = 0; s < pass.scores.n_correct.size(); ++s) {
    n_correct += pass.scores.n_correct[s];
    entropy_sum += pass.scores.entropy_sums[s];
  }
  metrics_.add_sft(mb.n_completion, n_correct, entropy_sum);
  state_.num_tokens += mb.batch.n_tokens();
  metrics_.set("num_tokens", static_cast<double>(state_.num_tokens));
  return loss.loss;
}

// HF evaluation_loop: each eval batch's loss is its own token mean (num_items_in_batch of that
// batch); eval_loss is their mean weighted by the batch's examples.
std::map<std::string, double> Trainer::sft_evaluate() {
  if (!sft_data_->eval) return {};
  MetricLog eval_metrics;
  double loss_sum = 0.0;
  int64_t n_examples = 0;
  for (const auto& batch : sft_data_->eval->micro_batches(0, config_.per_device_eval_batch_size)) {
    const SftMicroBatch mb = sft_data_->eval->pack(batch);
    const SequenceScores scores = model_.sequence_scores(mb.batch, mb.n_prompt, full_model_ ? nullptr : &adapter_);
    int64_t n_correct = 0;
    double entropy_sum = 0.0;
    for (size_t s = 0; s < scores.n_correct.size(); ++s) n_correct += scores.n_correct[s], entropy_sum += scores.entropy_sums[s];
    eval_metrics.add_sft(mb.n_completion, n_correct, entropy_sum);
    if (mb.n_completion > 0) {
      loss_sum += sft_loss(scores.logps, static_cast<double>(mb.n_completion)).loss * static_cast<double>(batch.size());
      n_examples += static_cast<int64_t>(batch.size());
    }
  }
  std::map<std::string, double> out = eval_metrics.take("eval_");
  if (n_examples) out["eval_loss"] = loss_sum / static_cast<double>(n_examples);
  return out;
}

std::vector<NamedTensor> Trainer::trainable_parameters() const {
  return full_model_ ? full_model_->weights().parameters() : adapter_.parameters();
}

std::vector<NamedTensor> Trainer::trainable_gradients() const {
  return full_model_ ? full_grads_.parameters() : adapter_.gradients();
}

int64_t Trainer::n_trainable() const {
  int64_t n = 0;
  for (const NamedTensor& p : trainable_parameters()) n += p.tensor.numel();
  return n;
}

void Trainer::zero_grad() {
  if (!full_model_) return adapter_.zero_grad();
  for (const NamedTensor& g : full_grads_.parameters()) std::fill_n(g.tensor.f32(), g.tensor.numel(), 0.0f);
}

// Full fine-tuning writes an HF model directory: the weights, the original config.json (or
// one written from the config for models kto made) and the tokenizer / generation files of
// the model's directory, so the result loads with `kto` and with transformers alike.
void Trainer::save_trainable(const std::string& dir) const {
  if (!full_model_) return lora_save_peft(adapter_, dir);
  std::filesystem::create_directories(dir);
  weights_save_safetensors(full_model_->weights(), path_join(dir, "model.safetensors"));
  const std::string source = full_model_->dir();
  const std::string config_path = path_join(source, "config.json");
  if (!source.empty() && file_exists(config_path)) file_write_atomic(path_join(dir, "config.json"), file_read_text(config_path));
  else file_write_atomic(path_join(dir, "config.json"), model_config_to_json(full_model_->config()).dump(2) + "\n");
  for (const char* name : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "chat_template.jinja"}) {
    const std::string from = path_join(source, name);
    if (!source.empty() && file_exists(from)) file_write_atomic(path_join(dir, name), file_read_text(from));
  }
}

void Trainer::load_trainable(const std::string& dir) {
  if (!full_model_) {
    adapter_ = lora_load_peft(dir, model_.config());
    return;
  }
  Model saved = Model::load(dir);
  const std::vector<NamedTensor> from = saved.weights().parameters(), to = full_model_->weights().parameters();
  if (from.size() != to.size()) fail(ErrorKind::Format, dir, ": the checkpoint's weights do not match the model");
  for (size_t i = 0; i < to.size(); ++i) {
    if (from[i].name != to[i].name || !(from[i].tensor.shape == to[i].tensor.shape)) {
      fail(ErrorKind::Format, dir, ": tensor ", from[i].name, " does not match the model's ", to[i].name);
    }
    std::copy_n(from[i].tensor.f32(), from[i].tensor.numel(), to[i].tensor.f32());
  }
  full_model_->weights_updated();
}

}  // namespace kto
