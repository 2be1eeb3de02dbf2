// Autoregressive generation with the model's KV cache: prefill the prompt, then one token per
// step until an end-of-sequence id or max_new_tokens. Text is streamed as it becomes stable.
// Greedy output equals transformers' `generate(do_sample=False)`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "infer/sampler.h"

namespace kto {

class Model;
class Tokenizer;

struct GenerateOptions {
  SamplingOptions sampling;
  int64_t max_new_tokens = 128;
  std::vector<int32_t> stop_ids;  // any of them ends generation (it is kept in `tokens`)
};

enum class StopReason { EndOfSequence, MaxTokens, ContextFull };

struct GenerateResult {
  std::vector<int32_t> tokens;  // the new tokens only
  std::string text;             // tokenizer.decode(tokens, skip special)
  StopReason stop = StopReason::MaxTokens;
  double prefill_seconds = 0.0, decode_seconds = 0.0;
};

using TextSink = std::function<void(std::string_view)>;

GenerateResult generate(const Model& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const TextSink& on_text = {});

// Incremental detokenisation: decodes the whole generated sequence each time and emits only
// the new suffix, holding back text that ends in an incomplete UTF-8 character (U+FFFD).
class TextStream {
 public:
  explicit TextStream(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t token);  // text that became stable with this token
  std::string finish();             // whatever is still held back
  const std::string& text() const { return text_; }

 private:
  const Tokenizer& tokenizer_;
  std::vector<int32_t> tokens_;
  std::string text_;     // full decode so far
  size_t emitted_ = 0;   // bytes of text_ already handed out
};

}  // namespace kto
