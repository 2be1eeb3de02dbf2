// Model: a loaded decoder-only causal LM (config + f32 weights) and what the CLI, the trainer's
// reference pass and generation ask of it: logits, per-sequence completion log-probabilities
// through the chunked head, and KV-cache decoding. Mirrors transformers' *ForCausalLM.forward
// and generate's incremental decoding. Thread-safety: const methods may run concurrently; a
// KvCache belongs to one caller.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/decoder_forward.h"
#include "model/packed_batch.h"
#include "model/weights.h"
#include "tensor/tensor.h"

namespace kto {

class Model {
 public:
  // A local HF model directory or a hub id in the HF cache (formats/hf_cache.h); reads
  // config.json and every safetensors tensor. Throws kto::Error (NotFound, Format, Unsupported).
  static Model load(const std::string& name_or_path);
  // From parts already in memory (tests, merged weights).
  static Model from_parts(ModelConfig config, Weights weights, std::string dir = "");

  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  const std::string& dir() const { return dir_; }  // the resolved directory ("" when from parts)

  // Rows of the chunked log-prob head computed at once (memory: rows × V floats).
  void set_head_chunk_rows(int64_t rows);

  // Final-normed hidden states [T, D] f32 of a packed batch.
  HostTensor forward_hidden(const PackedBatch& batch) const;
  // Logits [T, V] f32 for every token (meant for small inputs; training never calls this).
  HostTensor forward_logits(const PackedBatch& batch) const;
  // For each sequence s: Σ_{t = seq_starts[s]+n_prompt[s] .. seq_starts[s+1]-1}
  // log p(tokens[t] | tokens[<t] of s), from the chunked head at those positions only.
  // n_prompt[s] must be in [1, len(s)]; a sequence with n_prompt[s] == len(s) scores 0.
  std::vector<double> sequence_logprobs(const PackedBatch& batch, std::span<const int32_t> n_prompt) const;

  // Incremental decoding of one sequence. decode appends new_tokens (≥ 1) to the cache and
  // returns the logits [V] f32 after the last of them. InvalidArgument when the cache is full.
  KvCache new_cache(int64_t max_tokens) const;
  HostTensor decode(KvCache& cache, std::span<const int32_t> new_tokens) const;

 private:
  Model() = default;
  Decoder decoder() const { return {&config_, &weights_, inv_freq_.view()}; }

  ModelConfig config_;
  Weights weights_;
  HostTensor inv_freq_;  // [Dh/2] f32
  std::string dir_;
  int64_t head_chunk_rows_ = 256;
};

}  // namespace kto
