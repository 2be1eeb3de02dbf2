// Autoregressive generation with the model's KV cache: prefill the prompt, then one token per
// step until an end-of-sequence id, max_new_tokens or a cancel request. Text is streamed as it
// becomes stable. Greedy output equals transformers' `generate(do_sample=False)`, and with a
// LoRA adapter equals PEFT's unmerged PeftModel.generate.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "infer/sampler.h"

namespace kto {

class Model;
class Tokenizer;
struct LoraAdapter;

struct GenerateOptions {
  SamplingOptions sampling;
  int64_t max_new_tokens = 128;
  std::vector<int32_t> stop_ids;  // any of them ends generation (it is kept in `tokens`)
  const LoraAdapter* adapter = nullptr;      // applied unmerged on top of the base; nullptr = base
  const std::atomic<bool>* cancel = nullptr;  // when it turns true, generation stops after the current step
};

enum class StopReason { EndOfSequence, MaxTokens, ContextFull, Cancelled };
const char* stop_reason_name(StopReason reason);  // "end of sequence", "max new tokens", …

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
// the new suffix, holding back text that ends in an incomplete UTF-8 character (U+FFFD) or in a
// byte-fallback piece (<0xHH>, whose run the decoder may still replace). The pieces add up to
// the final decode whenever the decoder never rewrites text it has already produced otherwise.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t token);  // text that became stable with this token
  std::string finish();             // whatever is still held back
  const std::string& text() const { return text_; }

 private:
  std::string emit();  // the new suffix of text_, if text_ still starts with what was emitted

  const Tokenizer& tokenizer_;
  std::vector<int32_t> tokens_;
  std::string text_;     // full decode so far
  std::string emitted_;  // the prefix of text_ already handed out
};

}  // namespace kto
