// PackedBatch: several token sequences concatenated without padding (DESIGN.md §3), with
// per-token positions restarting at 0 in each sequence and the sequence boundaries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kto {

struct PackedBatch {
  std::vector<int32_t> tokens;      // [T] token ids
  std::vector<int32_t> positions;   // [T] position of each token inside its sequence
  std::vector<int32_t> seq_starts;  // [S+1] sequence s is tokens[seq_starts[s] .. seq_starts[s+1])

  int64_t n_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t n_sequences() const { return seq_starts.empty() ? 0 : static_cast<int64_t>(seq_starts.size()) - 1; }
  int64_t seq_len(int64_t s) const { return seq_starts[static_cast<std::size_t>(s + 1)] - seq_starts[static_cast<std::size_t>(s)]; }

  static PackedBatch from_sequences(const std::vector<std::vector<int32_t>>& sequences);
};

// Throws kto::Error(InvalidArgument) when the batch is malformed (sizes, starts not increasing
// from 0 to T) or a token id is outside [0, vocab_size), naming the sequence and position.
void packed_batch_validate(const PackedBatch& batch, int64_t vocab_size);

}  // namespace kto
