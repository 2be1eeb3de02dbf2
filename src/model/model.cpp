// Model: loading (config.json + safetensors → f32 Weights) and the inference entry points over
// decoder_forward; the head mirrors transformers' lm_head + log_softmax-gather as TRL scores
// completions, through the chunked backend op so [T, V] is never built for scoring.
#include "model/model.h"

#include "backend/ops.h"
#include "model/accelerator.h"
#include "formats/hf_cache.h"
#include "formats/safetensors.h"

namespace kto {

Model Model::load(const std::string& name_or_path, DeviceChoice device, const WeightsLoadOptions& options) {
  const std::string dir = hf_resolve_model(name_or_path);
  ModelConfig config = model_config_load(dir);
  const SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint::open_dir(dir);
  Weights weights = weights_load(config, checkpoint, options);
  Model model = from_parts(std::move(config), std::move(weights), dir);
  model.to_device(device);
  return model;
}

void Model::to_device(DeviceChoice device) {
  accel_.reset();
  device_ = {};
  if (device.kind == DeviceKind::Cuda) {
    accel_ = accelerator_create_cuda(config_, weights_, inv_freq_, device.index);
    accel_->set_head_chunk_rows(head_chunk_rows_);
  }
  device_ = device;
}

void Model::weights_updated() {
  if (accel_) accel_->weights_updated(weights_);
}

std::string Model::device_description() const { return accel_ ? accel_->describe() : "cpu (fp32)"; }

void Model::reserve(int64_t n_tokens, int64_t n_head_rows, const LoraAdapter* adapter, Checkpointing checkpointing) const {
  if (accel_) accel_->reserve(n_tokens, n_head_rows, adapter, checkpointing);
}

Model Model::from_parts(ModelConfig config, Weights weights, std::string dir) {
  Model model;
  const std::vector<double> inv_freq = rope_inv_freq(config);
  if (static_cast<int64_t>(inv_freq.size()) * 2 != config.head_dim) {
    fail(ErrorKind::Unsupported, config.source, ": RoPE over ", inv_freq.size() * 2, " of ", config.head_dim,
         " head dimensions (partial rotary) is not supported");
  }
  model.inv_freq_ = HostTensor(DType::F32, Shape{static_cast<int64_t>(inv_freq.size())});
  for (size_t i = 0; i < inv_freq.size(); ++i) model.inv_freq_.f32()[i] = static_cast<float>(inv_freq[i]);
  model.config_ = std::move(config);
  model.weights_ = std::move(weights);
  model.dir_ = std::move(dir);
  return model;
}

void Model::set_head_chunk_rows(int64_t rows) {
  if (rows < 1) fail(ErrorKind::InvalidArgument, "head chunk rows must be at least 1, got ", rows);
  head_chunk_rows_ = rows;
  if (accel_) accel_->set_head_chunk_rows(rows);
}

HostTensor Model::forward_hidden(const PackedBatch& batch) const {
  packed_batch_validate(batch, config_.vocab_size);
  if (accel_) return accel_->hidden(batch);
  return decoder_forward(decoder(), batch, nullptr);
}

HostTensor Model::forward_logits(const PackedBatch& batch) const {
  if (accel_) {
    packed_batch_validate(batch, config_.vocab_size);
    return accel_->logits(batch);
  }
  const HostTensor hidden = forward_hidden(batch);  // [T, D]
  HostTensor logits(DType::F32, Shape{batch.n_tokens(), config_.vocab_size});
  linear_forward_cpu({hidden.view(), weights_.head(), Tensor{}, logits.view()});
  return logits;
}

CompletionRows completion_rows(const PackedBatch& batch, std::span<const int32_t> n_prompt) {
  const int64_t n_seqs = batch.n_sequences();
  if (static_cast<int64_t>(n_prompt.size()) != n_seqs) {
    fail(ErrorKind::InvalidArgument, "completion scores: ", n_prompt.size(), " prompt lengths for ", n_seqs,
         " sequences");
  }
  CompletionRows out;
  for (int64_t s = 0; s < n_seqs; ++s) {
    const int32_t begin = batch.seq_starts[static_cast<size_t>(s)], len = static_cast<int32_t>(batch.seq_len(s));
    const int32_t np = n_prompt[static_cast<size_t>(s)];
    if (np < 1 || np > len) {
      fail(ErrorKind::InvalidArgument, "sequence ", s, ": prompt length ", np, " must be in [1, ", len,
           "] (the first completion token needs a token before it)");
    }
    for (int32_t t = begin + np; t < begin + len; ++t) {
      out.rows.push_back(t - 1);
      out.labels.push_back(batch.tokens[static_cast<size_t>(t)]);
      out.owner.push_back(static_cast<int32_t>(s));
    }
  }
  return out;
}

std::vector<double> Model::sequence_logprobs(const PackedBatch& batch, std::span<const int32_t> n_prompt) const {
  const CompletionRows head_rows = completion_rows(batch, n_prompt);
  std::vector<double> sums(static_cast<size_t>(batch.n_sequences()), 0.0);
  if (head_rows.rows.empty()) return sums;
  if (accel_) return sequence_scores(batch, n_prompt, nullptr).logps;
  const HostTensor hidden = forward_hidden(batch);  // [T, D]
  const int64_t n = static_cast<int64_t>(head_rows.rows.size());
  HostTensor out(DType::F32, Shape{n});
  HostTensor workspace(DType::F32,
                       Shape{logprob_head_workspace_floats(head_chunk_rows_, config_.hidden_size, config_.vocab_size)});
  const Shape index_shape{n};
  logprob_head_forward_cpu({hidden.view(), weights_.head(),
                            Tensor{const_cast<int32_t*>(head_rows.rows.data()), DType::I32, index_shape},
                            Tensor{const_cast<int32_t*>(head_rows.labels.data()), DType::I32, index_shape},
                            out.view(), Tensor{}, workspace.view(), head_chunk_rows_});
  for (int64_t i = 0; i < n; ++i) sums[static_cast<size_t>(head_rows.owner[static_cast<size_t>(i)])] += out.f32()[i];
  return sums;
}

KvCache Model::new_cache(int64_t max_tokens) const {
  if (max_tokens < 1) fail(ErrorKind::InvalidArgument, "kv cache size must be at least 1 token, got ", max_tokens);
  if (accel_) {
    KvCache cache;
    cache.capacity = max_tokens;
    accel_->new_cache(cache, max_tokens);
    return cache;
  }
  return kv_cache_new(config_, max_tokens);
}

HostTensor Model::decode(KvCache& cache, std::span<const int32_t> new_tokens) const {
  return decode(cache, new_tokens, nullptr);
}

HostTensor Model::decode(KvCache& cache, std::span<const int32_t> new_tokens, const LoraAdapter* adapter) const {
  const int64_t n = static_cast<int64_t>(new_tokens.size());
  if (n < 1) fail(ErrorKind::InvalidArgument, "decode needs at least one new token");
  if (cache.n_tokens + n > cache.capacity) {
    fail(ErrorKind::InvalidArgument, "kv cache holds ", cache.capacity, " tokens; ", cache.n_tokens, " used, ", n,
         " more requested (raise the generation's length limit)");
  }
  PackedBatch batch;
  batch.tokens.assign(new_tokens.begin(), new_tokens.end());
  for (int64_t i = 0; i < n; ++i) batch.positions.push_back(static_cast<int32_t>(cache.n_tokens + i));
  batch.seq_starts = {0, static_cast<int32_t>(n)};
  packed_batch_validate(batch, config_.vocab_size);
  if (accel_) {
    if (!cache.device) fail(ErrorKind::InvalidArgument, "decode: this cache was made for the CPU; make it with this model's new_cache");
    HostTensor logits = accel_->decode(cache, batch, adapter);
    cache.n_tokens += n;
    return logits;
  }
  if (cache.device) fail(ErrorKind::InvalidArgument, "decode: this cache lives on a GPU; the model runs on the CPU");
  const HostTensor hidden = decoder_forward(decoder(adapter), batch, &cache);  // [n, D]
  const Tensor last{hidden.f32() + (n - 1) * config_.hidden_size, DType::F32, Shape{1, config_.hidden_size}};
  HostTensor logits(DType::F32, Shape{config_.vocab_size});
  linear_forward_cpu(
      {last, weights_.head(), Tensor{}, Tensor{logits.f32(), DType::F32, Shape{1, config_.vocab_size}}});
  return logits;
}

}  // namespace kto
