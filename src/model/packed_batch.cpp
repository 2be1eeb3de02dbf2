// PackedBatch construction and validation (the packed layout of DESIGN.md §3).
#include "model/packed_batch.h"

#include "util/error.h"

namespace kto {

PackedBatch PackedBatch::from_sequences(const std::vector<std::vector<int32_t>>& sequences) {
  PackedBatch batch;
  batch.seq_starts.push_back(0);
  for (const auto& seq : sequences) {
    for (size_t i = 0; i < seq.size(); ++i) {
      batch.tokens.push_back(seq[i]);
      batch.positions.push_back(static_cast<int32_t>(i));
    }
    batch.seq_starts.push_back(static_cast<int32_t>(batch.tokens.size()));
  }
  return batch;
}

void packed_batch_validate(const PackedBatch& batch, int64_t vocab_size) {
  const int64_t n_tokens = batch.n_tokens();
  if (batch.positions.size() != batch.tokens.size()) {
    fail(ErrorKind::InvalidArgument, "packed batch has ", n_tokens, " tokens but ", batch.positions.size(), " positions");
  }
  if (batch.seq_starts.empty() || batch.seq_starts.front() != 0 || batch.seq_starts.back() != n_tokens) {
    fail(ErrorKind::InvalidArgument, "packed batch seq_starts must run from 0 to the token count ", n_tokens);
  }
  for (int64_t s = 0; s < batch.n_sequences(); ++s) {
    if (batch.seq_len(s) < 0) fail(ErrorKind::InvalidArgument, "packed batch seq_starts decrease at sequence ", s);
    for (int32_t t = batch.seq_starts[static_cast<size_t>(s)]; t < batch.seq_starts[static_cast<size_t>(s + 1)]; ++t) {
      const int32_t id = batch.tokens[static_cast<size_t>(t)];
      if (id < 0 || id >= vocab_size) {
        fail(ErrorKind::InvalidArgument, "token id ", id, " in sequence ", s, " at position ",
             t - batch.seq_starts[static_cast<size_t>(s)], " is outside the model's vocabulary [0, ", vocab_size,
             "); was the text tokenized with another model's tokenizer?");
      }
      if (batch.positions[static_cast<size_t>(t)] < 0) {
        fail(ErrorKind::InvalidArgument, "negative position in sequence ", s);
      }
    }
  }
}

}  // namespace kto
