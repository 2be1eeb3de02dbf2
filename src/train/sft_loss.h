// The SFT objective of one micro-batch as transformers' Trainer computes it for TRL 1.9's
// SFTTrainer (completion-only labels, HF ForCausalLMLoss with num_items_in_batch): the summed
// next-token NLL of the micro-batch's completion tokens divided by the completion tokens of the
// whole optimizer step, so that the accumulated gradient is that of the step's token mean (with
// one micro-batch per step: the mean over the micro-batch's completion tokens). Metrics as
// SFTTrainer.compute_loss logs them: mean_token_accuracy and entropy over completion tokens.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kto {

struct SftLossResult {
  double loss = 0.0;                   // Σ_s -logp_s / num_items_in_batch
  std::vector<double> d_policy_logps;  // [S] ∂loss/∂logp_s = -1 / num_items_in_batch
};

// `logps` [S]: summed completion log-probs per sequence; num_items_in_batch > 0.
SftLossResult sft_loss(std::span<const double> logps, double num_items_in_batch);

}  // namespace kto
