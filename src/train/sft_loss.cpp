// SFT loss: transformers' ForCausalLMLoss (reduction "sum" / num_items_in_batch) over the
// completion tokens, from the per-sequence sums the chunked head already computes.
#include "train/sft_loss.h"

#include "util/error.h"

namespace kto {

SftLossResult sft_loss(std::span<const double> logps, double num_items_in_batch) {
  KTO_ASSERT(num_items_in_batch > 0, "sft_loss: num_items_in_batch must be positive");
  SftLossResult out;
  for (double l : logps) out.loss -= l;
  out.loss /= num_items_in_batch;
  out.d_policy_logps.assign(logps.size(), -1.0 / num_items_in_batch);
  return out;
}

}  // namespace kto
