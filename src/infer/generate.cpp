// generate(): prefill + KV-cached decode loop over Model::decode, with sampling and streaming.
#include "infer/generate.h"

#include <algorithm>
#include <cctype>
#include <chrono>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kto {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD: a byte sequence cut mid-character

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A byte-fallback piece of a sentencepiece-style vocabulary: "<0xHH>".
bool is_byte_piece(std::string_view piece) {
  return piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>' && std::isxdigit(static_cast<unsigned char>(piece[3])) &&
         std::isxdigit(static_cast<unsigned char>(piece[4]));
}

bool cancelled(const GenerateOptions& options) { return options.cancel && options.cancel->load(); }
}  // namespace

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::EndOfSequence: return "end of sequence";
    case StopReason::MaxTokens: return "max new tokens";
    case StopReason::ContextFull: return "context full";
    case StopReason::Cancelled: return "cancelled";
  }
  return "?";
}

std::string TextStream::push(int32_t token) {
  tokens_.push_back(token);
  text_ = tokenizer_.decode(tokens_, SkipSpecial::Yes);
  // tokenizers' ByteFallback decodes a run of <0xHH> pieces together and, when the run is not
  // valid UTF-8, replaces every byte of it: text from such a run is final only once it ends.
  if (token < tokenizer_.vocab_size() && is_byte_piece(tokenizer_.id_to_token(token))) return {};
  if (text_.ends_with(kReplacement)) return {};  // wait for the rest of the character
  return emit();
}

std::string TextStream::finish() { return emit(); }

std::string TextStream::emit() {
  if (text_.compare(0, emitted_.size(), emitted_) != 0) return {};  // earlier text was rewritten; never take back output
  std::string fresh = text_.substr(emitted_.size());
  emitted_ = text_;
  return fresh;
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
  HostTensor logits = model.decode(cache, prompt, options.adapter);
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
    if (cancelled(options)) {
      result.stop = StopReason::Cancelled;
      break;
    }
    logits = model.decode(cache, std::span<const int32_t>(&next, 1), options.adapter);
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
