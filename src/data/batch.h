// Tokenised KTO examples and the packed micro-batch (DESIGN.md §3): main sequences then KL
// sequences laid end to end, no padding. The KL sequence of example k is its own prompt plus the
// completion of example k-1 of the same micro-batch (the first takes the last's), as TRL v1.9's
// `add_kl_completion_ids` rotation (shared/spec/kto.md §3), truncated like any sequence.
// The trainer copies tokens/positions/seq_starts into model/PackedBatch; data knows no model.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/rows.h"
#include "data/truncation.h"

namespace kto {

struct Example {
  std::vector<int32_t> prompt_ids;      // as tokenised (BOS included when the tokenizer adds it)
  std::vector<int32_t> completion_ids;  // EOS included for text rows; untruncated
  bool label = true;                    // true = desirable
  SourceRef source;
};

enum class SeqKind : uint8_t { Main, Kl };
enum class KlSequences { Yes, No };  // No for loss_type apo_zero_unpaired (no KL pass)

struct PackedSequence {
  SeqKind kind = SeqKind::Main;
  bool label = true;       // the example's label (KL sequences: the prompt owner's)
  int32_t prompt_len = 0;  // tokens before the completion, after truncation
  int64_t example = 0;     // index into the dataset's examples
};

struct PackedMicroBatch {
  std::vector<int32_t> tokens;           // [T] token ids
  std::vector<int32_t> positions;        // [T] 0, 1, … restarting at every sequence
  std::vector<int32_t> seq_starts;       // [S+1] offsets into tokens; S = B main (+ B KL)
  std::vector<PackedSequence> sequences; // [S] the B main sequences in batch order, then KL
  int64_t n_main = 0;                    // B

  int64_t n_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t n_sequences() const { return static_cast<int64_t>(sequences.size()); }
  std::span<const int32_t> sequence_tokens(int64_t s) const;
  int64_t completion_len(int64_t s) const;  // sequence length - prompt_len
};

// Packs `batch` (indices into `examples`, in micro-batch order) with `rule` applied to every
// sequence. The batch must be non-empty; a batch of one pairs its prompt with its own completion.
PackedMicroBatch pack_micro_batch(std::span<const Example> examples, std::span<const int64_t> batch,
                                  const TruncationRule& rule, KlSequences kl);

}  // namespace kto
