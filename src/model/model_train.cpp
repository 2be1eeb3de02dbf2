// The trainer's passes over a Model with a LoRA adapter: completion scores with the metric sums
// TRL's KTOTrainer logs (spec/kto.md §4, §6), the policy forward that keeps activations, and
// its backward through the chunked head (recomputed per chunk, never [T, V]) and the decoder.
// Mirrors what PEFT + transformers autograd give for Σ_s c_s · logp_s (tools/reference/
// make_lora_grads.py; full fine-tuning: make_sft_grads.py).
#include <algorithm>
#include <vector>

#include "backend/ops.h"
#include "model/accelerator.h"
#include "model/decoder_backward.h"
#include "model/model.h"

namespace kto {
namespace {

Tensor index_view(const std::vector<int32_t>& v) {
  return Tensor{const_cast<int32_t*>(v.data()), DType::I32, Shape{static_cast<int64_t>(v.size())}};
}

}  // namespace

SequenceScores sequence_scores_from_rows(const CompletionRows& rows, int64_t n_seqs, const float* logp,
                                         const float* mean_logit, const float* entropy, const int32_t* argmax) {
  SequenceScores scores;
  const size_t s_count = static_cast<size_t>(n_seqs);
  scores.logps.assign(s_count, 0.0), scores.mean_logit_sums.assign(s_count, 0.0);
  scores.entropy_sums.assign(s_count, 0.0), scores.n_tokens.assign(s_count, 0), scores.n_correct.assign(s_count, 0);
  for (size_t i = 0; i < rows.rows.size(); ++i) {
    const size_t s = static_cast<size_t>(rows.owner[i]);
    if (logp) scores.logps[s] += logp[i];
    if (mean_logit) scores.mean_logit_sums[s] += mean_logit[i];
    if (entropy) scores.entropy_sums[s] += entropy[i];
    scores.n_tokens[s] += 1;
    if (argmax) scores.n_correct[s] += argmax[i] == rows.labels[i] ? 1 : 0;
  }
  return scores;
}

SequenceScores Model::score_rows(const HostTensor& hidden, const CompletionRows& rows, int64_t n_seqs,
                                 HostTensor* logsumexp) const {
  const int64_t n = static_cast<int64_t>(rows.rows.size());
  if (logsumexp) *logsumexp = HostTensor(DType::F32, Shape{n});
  if (n == 0) return sequence_scores_from_rows(rows, n_seqs, nullptr, nullptr, nullptr, nullptr);
  HostTensor out(DType::F32, Shape{n}), mean_logit(DType::F32, Shape{n}), entropy(DType::F32, Shape{n});
  HostTensor argmax(DType::I32, Shape{n});
  HostTensor workspace(DType::F32,
                       Shape{logprob_head_workspace_floats(head_chunk_rows_, config_.hidden_size, config_.vocab_size)});
  logprob_head_forward_cpu({hidden.view(), weights_.head(), index_view(rows.rows), index_view(rows.labels), out.view(),
                            logsumexp ? logsumexp->view() : Tensor{}, workspace.view(), head_chunk_rows_},
                           {mean_logit.view(), entropy.view(), argmax.view()});
  return sequence_scores_from_rows(rows, n_seqs, out.f32(), mean_logit.f32(), entropy.f32(),
                                   argmax.view().as<int32_t>());
}

namespace {

// Records in `keep` which prompts a pass is about to keep, and with which weights.
void note_prompts(PromptCache& keep, const PackedBatch& batch, std::span<const int32_t> n_prompt,
                  const LoraAdapter* adapter) {
  keep.prompts.resize(static_cast<size_t>(batch.n_sequences()));
  for (size_t s = 0; s < keep.prompts.size(); ++s) {
    const auto begin = batch.tokens.begin() + batch.seq_starts[s];
    keep.prompts[s].assign(begin, begin + n_prompt[s]);
  }
  keep.adapter = adapter;
  keep.adapter_version = adapter ? adapter->version : 0;
}

// True when sequence s of `batch` begins with kept prompt s for every s, and the weights are the same.
bool continues(const PromptCache& kept, const PackedBatch& batch, std::span<const int32_t> n_prompt,
               const LoraAdapter* adapter) {
  if (kept.adapter != adapter || (adapter && (adapter->version == 0 || adapter->version != kept.adapter_version))) {
    return false;
  }
  if (static_cast<int64_t>(kept.prompts.size()) != batch.n_sequences()) return false;
  for (size_t s = 0; s < kept.prompts.size(); ++s) {
    const std::vector<int32_t>& p = kept.prompts[s];
    if (static_cast<size_t>(n_prompt[s]) != p.size()) return false;
    if (!std::equal(p.begin(), p.end(), batch.tokens.begin() + batch.seq_starts[s])) return false;
  }
  return true;
}

}  // namespace

SequenceScores Model::sequence_scores_after(const PromptCache& kept, const PackedBatch& batch,
                                            std::span<const int32_t> n_prompt, const LoraAdapter* adapter) const {
  packed_batch_validate(batch, config_.vocab_size);
  const CompletionRows rows = completion_rows(batch, n_prompt);
  if (accel_ && kept.device && accel_->owns(kept) && continues(kept, batch, n_prompt, adapter)) {
    return accel_->scores_after(kept, batch, n_prompt, rows, adapter);
  }
  return sequence_scores(batch, n_prompt, adapter);
}

void Model::reserve_prompts(PromptCache& cache, int64_t n_tokens) const {
  if (accel_) accel_->reserve_prompts(cache, n_tokens);
}

SequenceScores Model::sequence_scores(const PackedBatch& batch, std::span<const int32_t> n_prompt,
                                      const LoraAdapter* adapter, PromptCache* keep) const {
  packed_batch_validate(batch, config_.vocab_size);
  const CompletionRows rows = completion_rows(batch, n_prompt);
  if (keep) note_prompts(*keep, batch, n_prompt, adapter);
  if (accel_) return accel_->scores(batch, rows, adapter, keep);
  const HostTensor hidden = decoder_forward(decoder(adapter), batch, nullptr);  // [T, D]
  return score_rows(hidden, rows, batch.n_sequences(), nullptr);
}

TrainPass Model::forward_train(const PackedBatch& batch, std::span<const int32_t> n_prompt, const LoraAdapter& adapter,
                               const DecoderTrainOptions& options, PromptCache* keep) const {
  packed_batch_validate(batch, config_.vocab_size);
  TrainPass pass;
  pass.batch = batch;
  pass.adapter = &adapter;
  pass.head_rows = completion_rows(batch, n_prompt);
  if (keep) note_prompts(*keep, batch, n_prompt, &adapter);
  if (accel_) {
    accel_->forward_train(pass, adapter, options, keep);
    return pass;
  }
  decoder_forward_train(decoder(&adapter), pass.batch, options, pass.saved);
  pass.scores = score_rows(pass.saved.hidden, pass.head_rows, batch.n_sequences(), &pass.logsumexp);
  return pass;
}

// d_logp per head row = d_logps of its sequence; head backward → d_hidden [T, D] (zero at
// unscored rows), and the head weight's gradient into d_head when given (full fine-tuning).
HostTensor Model::head_backward(const TrainPass& pass, std::span<const double> d_logps, const Tensor& d_head) const {
  if (static_cast<int64_t>(d_logps.size()) != pass.batch.n_sequences()) {
    fail(ErrorKind::InvalidArgument, "backward_train: ", d_logps.size(), " gradients for ",
         pass.batch.n_sequences(), " sequences");
  }
  const int64_t n = static_cast<int64_t>(pass.head_rows.rows.size());
  HostTensor d_hidden(DType::F32, pass.saved.hidden.shape());  // [T, D], zero-initialised
  if (n > 0) {
    HostTensor d_out(DType::F32, Shape{n});
    for (int64_t i = 0; i < n; ++i) {
      d_out.f32()[i] = static_cast<float>(d_logps[static_cast<size_t>(pass.head_rows.owner[static_cast<size_t>(i)])]);
    }
    HostTensor workspace(DType::F32, Shape{logprob_head_workspace_floats(head_chunk_rows_, config_.hidden_size,
                                                                          config_.vocab_size)});
    logprob_head_backward_cpu({pass.saved.hidden.view(), weights_.head(), index_view(pass.head_rows.rows),
                               index_view(pass.head_rows.labels), pass.logsumexp.view(), d_out.view(),
                               d_hidden.view(), workspace.view(), head_chunk_rows_, d_head});
  }
  return d_hidden;
}

void Model::backward_train(const TrainPass& pass, std::span<const double> d_logps, LoraAdapter& adapter) const {
  if (pass.adapter != &adapter) {
    fail(ErrorKind::InvalidArgument, "backward_train: the adapter differs from the one forward_train used");
  }
  if (static_cast<int64_t>(d_logps.size()) != pass.batch.n_sequences()) {
    fail(ErrorKind::InvalidArgument, "backward_train: ", d_logps.size(), " gradients for ", pass.batch.n_sequences(),
         " sequences");
  }
  if (accel_) {
    accel_->backward_train(pass, d_logps, adapter);
    return;
  }
  if (pass.device) fail(ErrorKind::InvalidArgument, "backward_train: the forward ran on an accelerator, the model is now on the CPU");
  const HostTensor d_hidden = head_backward(pass, d_logps, Tensor{});
  decoder_backward(decoder(&adapter), pass.batch, pass.saved, d_hidden.view(), adapter);
}

TrainPass Model::forward_train_full(const PackedBatch& batch, std::span<const int32_t> n_prompt) const {
  packed_batch_validate(batch, config_.vocab_size);
  TrainPass pass;
  pass.batch = batch;
  pass.head_rows = completion_rows(batch, n_prompt);
  if (accel_) {
    accel_->forward_train_full(pass);
    return pass;
  }
  decoder_forward_train(decoder(nullptr), pass.batch, {}, pass.saved);
  pass.scores = score_rows(pass.saved.hidden, pass.head_rows, batch.n_sequences(), &pass.logsumexp);
  return pass;
}

void Model::backward_train_full(const TrainPass& pass, std::span<const double> d_logps, Weights& grads) const {
  if (pass.adapter != nullptr) {
    fail(ErrorKind::InvalidArgument, "backward_train_full: the pass ran with a LoRA adapter; use backward_train");
  }
  if (accel_) {
    if (static_cast<int64_t>(d_logps.size()) != pass.batch.n_sequences()) {
      fail(ErrorKind::InvalidArgument, "backward_train_full: ", d_logps.size(), " gradients for ",
           pass.batch.n_sequences(), " sequences");
    }
    accel_->backward_train_full(pass, d_logps, grads);
    return;
  }
  const Tensor d_head = grads.lm_head.empty() ? grads.embed.view() : grads.lm_head.view();
  const HostTensor d_hidden = head_backward(pass, d_logps, d_head);
  decoder_backward_full(decoder(nullptr), pass.batch, pass.saved, d_hidden.view(), grads);
}

}  // namespace kto
