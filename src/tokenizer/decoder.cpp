// Decoders of huggingface/tokenizers (decoders/{byte_fallback,fuse,strip,sequence}.rs,
// pre_tokenizers/{byte_level,metaspace}.rs, normalizers/replace.rs).
#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/pattern.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace kto {
namespace {

std::vector<char32_t> code_points(std::string_view s) {
  std::vector<char32_t> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len = 0;
    out.push_back(utf8::decode(s, pos, &len));
    pos += len;
  }
  return out;
}

// All tokens become one string: each token's characters mapped back to bytes through the
// GPT-2 table (a token with a character off the table keeps its own bytes), then lossy UTF-8.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      std::string mapped;
      bool all = true;
      for (char32_t c : code_points(token)) {
        auto b = byte_level_byte(c);
        if (!b) {
          all = false;
          break;
        }
        mapped += static_cast<char>(*b);
      }
      bytes += all ? mapped : token;
    }
    tokens.assign(1, utf8::from_lossy(bytes));
  }
};

// What the Metaspace decoder does with the replacement inside the first token.
enum class FirstToken { Space, Drop };

// Replacement → ' ', except that in the first token it is dropped (unless prepend "never").
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, FirstToken first) : replacement_(replacement), first_(first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      for (char32_t c : code_points(tokens[i])) {
        if (c != replacement_) {
          utf8::append(out, c);
        } else if (!(i == 0 && first_ == FirstToken::Drop)) {
          out += ' ';
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  FirstToken first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string out;
      size_t last = 0;
      for (const Span& m : pattern_.find_all(token)) {
        out.append(token, last, m.begin - last);
        out += content_;
        last = m.end;
      }
      out.append(token, last, std::string::npos);
      token = std::move(out);
    }
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// u8::from_str_radix(token[3..5], 16) on a 6-byte "<0x..>" token.
std::optional<uint8_t> byte_token(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = digit(token[3]), lo = digit(token[4]);
  if (token[3] == '+' && lo >= 0) return static_cast<uint8_t>(lo);  // Rust accepts a leading '+'
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

// Runs of <0xXX> tokens become their UTF-8 string, or one U+FFFD per byte when invalid.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (utf8::is_valid(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& token : tokens) {
      if (auto b = byte_token(token)) {
        pending += static_cast<char>(*b);
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::vector<char32_t> chars = code_points(token);
      size_t begin = 0;
      while (begin < start_ && begin < chars.size() && chars[begin] == content_) ++begin;
      size_t end = chars.size();
      for (size_t i = 0; i < stop_ && end > begin && chars[end - 1] == content_; ++i) --end;
      std::string out;
      for (size_t i = begin; i < end; ++i) utf8::append(out, chars[i]);
      token = std::move(out);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<const Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<const Decoder>> steps_;
};

char32_t single_char(const std::string& s, const char* key, const std::string& where) {
  std::vector<char32_t> cps = code_points(s);
  if (cps.size() != 1) fail(ErrorKind::Format, where, ": decoder '", key, "' must be one character, got '", s, "'");
  return cps[0];
}

size_t count_field(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_number_unsigned()) fail(ErrorKind::Format, where, ": Strip '", key, "' must be a non-negative integer");
  return v.get<size_t>();
}

}  // namespace

std::unique_ptr<const Decoder> decoder_from_json(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = json_type(j, "decoder", where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    std::string scheme = json_string_or(j, "prepend_scheme", "", where);
    bool drop = scheme.empty() ? json_bool_or(j, "add_prefix_space", true, where) : scheme != "never";
    return std::make_unique<MetaspaceDecoder>(
        single_char(json_string_or(j, "replacement", "\xE2\x96\x81", where), "replacement", where),
        drop ? FirstToken::Drop : FirstToken::Space);
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(Pattern::from_json(json_field(j, "pattern", where), where),
                                            json_string(j, "content", where));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(single_char(json_string(j, "content", where), "content", where),
                                          count_field(j, "start", where), count_field(j, "stop", where));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<const Decoder>> steps;
    for (const auto& step : json_array(j, "decoders", where)) {
      if (auto d = decoder_from_json(step, where)) steps.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  fail(ErrorKind::Unsupported, where, ": decoder type '", type,
       "' is not supported (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
}

}  // namespace kto
