// Packing and KL rotation (TRL v1.9 kto_trainer.py `add_kl_completion_ids` and
// DataCollatorForUnpairedPreference, without the padding).
#include "data/batch.h"

#include "util/error.h"

namespace kto {

namespace {

void append_sequence(PackedMicroBatch& out, const std::vector<int32_t>& prompt, const std::vector<int32_t>& completion,
                     const TruncationRule& rule, PackedSequence info) {
  const SequenceCut cut =
      truncate_sequence(static_cast<int64_t>(prompt.size()), static_cast<int64_t>(completion.size()), rule);
  const auto p0 = prompt.begin() + cut.prompt_begin;
  out.tokens.insert(out.tokens.end(), p0, p0 + cut.prompt_len);
  out.tokens.insert(out.tokens.end(), completion.begin(), completion.begin() + cut.completion_len);
  for (int64_t i = 0; i < cut.length(); ++i) out.positions.push_back(static_cast<int32_t>(i));
  KTO_ASSERT(out.tokens.size() <= static_cast<size_t>(INT32_MAX), "micro-batch too large for int32 offsets");
  out.seq_starts.push_back(static_cast<int32_t>(out.tokens.size()));
  info.prompt_len = static_cast<int32_t>(cut.prompt_len);
  out.sequences.push_back(info);
}

}  // namespace

std::span<const int32_t> PackedMicroBatch::sequence_tokens(int64_t s) const {
  const auto i = static_cast<size_t>(s);
  return std::span<const int32_t>(tokens).subspan(static_cast<size_t>(seq_starts[i]),
                                                  static_cast<size_t>(seq_starts[i + 1] - seq_starts[i]));
}

int64_t PackedMicroBatch::completion_len(int64_t s) const {
  const auto i = static_cast<size_t>(s);
  return seq_starts[i + 1] - seq_starts[i] - sequences[i].prompt_len;
}

PackedMicroBatch pack_micro_batch(std::span<const Example> examples, std::span<const int64_t> batch,
                                  const TruncationRule& rule, KlSequences kl) {
  KTO_ASSERT(!batch.empty(), "empty micro-batch");
  PackedMicroBatch out;
  out.n_main = static_cast<int64_t>(batch.size());
  out.seq_starts.push_back(0);
  for (int64_t index : batch) {
    const Example& e = examples[static_cast<size_t>(index)];
    append_sequence(out, e.prompt_ids, e.completion_ids, rule, {SeqKind::Main, e.label, 0, index});
  }
  if (kl == KlSequences::Yes) {
    for (size_t k = 0; k < batch.size(); ++k) {
      const Example& e = examples[static_cast<size_t>(batch[k])];
      const Example& donor = examples[static_cast<size_t>(batch[(k + batch.size() - 1) % batch.size()])];
      append_sequence(out, e.prompt_ids, donor.completion_ids, rule, {SeqKind::Kl, e.label, 0, batch[k]});
    }
  }
  return out;
}

}  // namespace kto
