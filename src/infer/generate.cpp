// generate(): prefill + KV-cached decode loop over Model::decode, with sampling and streaming.
#include "infer/generate.h"

#include <algorithm>
#include <chrono>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kto {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD: a byte sequence cut mid-character

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

std::string TextStream::push(int32_t token) {
  tokens_.push_back(token);
  text_ = tokenizer_.decode(tokens_, SkipSpecial::Yes);
  if (text_.size() >= kReplacement.size() && text_.compare(text_.size() - kReplacement.size(), kReplacement.size(), kReplacement) == 0) {
    return {};  // wait for the rest of the character
  }
  if (text_.size() < emitted_) return {};  // the decoder rewrote earlier text; never take back output
  std::string fresh = text_.substr(emitted_);
  emitted_ = text_.size();
  return fresh;
}

std::string TextStream::finish() {
  if (text_.size() <= emitted_) return {};
  std::string rest = text_.substr(emitted_);
  emitted_ = text_.size();
  return rest;
}

GenerateResult generate(const Model& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const TextSink& on_text) {
  KTO_ASSERT(!prompt.empty(), "generation needs at least one prompt token");
  const int64_t context = std::max<int64_t>(model.config().max_position_embeddings, static_cast<int64_t>(prompt.size()) + 1);
  const int64_t capacity = std::min<int64_t>(static_cast<int64_t>(prompt.size()) + options.max_new_tokens, context);

  GenerateResult result;
  Sampler sampler(options.sampling);
  TextStream stream(tokenizer);
  KvCache cache = model.new_cache(capacity);

  auto start = std::chrono::steady_clock::now();
  HostTensor logits = model.decode(cache, prompt);
  result.prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();

  int64_t length = static_cast<int64_t>(prompt.size());
  while (true) {
    float* row = logits.f32();
    int32_t next = sampler.sample(std::span<float>(row, static_cast<size_t>(logits.numel())));
    result.tokens.push_back(next);
    ++length;
    if (on_text) {
      std::string fresh = stream.push(next);
      if (!fresh.empty()) on_text(fresh);
    }
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) {
      result.stop = StopReason::EndOfSequence;
      break;
    }
    if (static_cast<int64_t>(result.tokens.size()) >= options.max_new_tokens) {
      result.stop = StopReason::MaxTokens;
      break;
    }
    if (length >= capacity) {
      result.stop = StopReason::ContextFull;
      break;
    }
    logits = model.decode(cache, std::span<const int32_t>(&next, 1));
  }
  result.decode_seconds = seconds_since(start);
  if (on_text) {
    std::string rest = stream.finish();
    if (!rest.empty()) on_text(rest);
  }
  result.text = tokenizer.decode(result.tokens, SkipSpecial::Yes);
  return result;
}

}  // namespace kto
