// PCRE2-backed tokenizer patterns. Mirrors huggingface/tokenizers SysRegex (Oniguruma) and the
// `&str` pattern (a regex-escaped literal): same leftmost, non-overlapping matches, same
// handling of empty matches.
#include "tokenizer/pattern.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace kto {

struct Pattern::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

namespace {

struct MatchData {
  explicit MatchData(const pcre2_code* code) : data(pcre2_match_data_create_from_pattern(code, nullptr)) {
    KTO_ASSERT(data != nullptr, "pcre2_match_data_create_from_pattern failed");
  }
  ~MatchData() { pcre2_match_data_free(data); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
  pcre2_match_data* data;
};

}  // namespace

Pattern Pattern::literal(std::string text) {
  Pattern p;
  p.literal_ = std::move(text);
  return p;
}

Pattern Pattern::regex(const std::string& source, const std::string& where) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    fail(ErrorKind::Format, where, ": bad regex /", source, "/ at offset ", err_offset, ": ",
         reinterpret_cast<const char*>(msg));
  }
  auto compiled = std::make_shared<Compiled>();
  compiled->code = code;
  compiled->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // interpreter when JIT is absent
  Pattern p;
  p.regex_ = std::move(compiled);
  return p;
}

Pattern Pattern::from_json(const nlohmann::json& j, const std::string& where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) return literal(j["String"].get<std::string>());
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) return regex(j["Regex"].get<std::string>(), where);
  fail(ErrorKind::Format, where, ": a pattern must be {\"String\": …} or {\"Regex\": …}, got ", j.dump());
}

std::vector<Span> Pattern::find_all(std::string_view text) const {
  std::vector<Span> out;
  if (!regex_) {
    if (literal_.empty()) return out;
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      out.push_back({pos, pos + literal_.size()});
      pos += literal_.size();
    }
    return out;
  }
  MatchData md(regex_->code);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t search_from = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (search_from <= text.size()) {
    // The text was validated once; re-checking it on every call would be quadratic.
    int rc = regex_->jit ? pcre2_jit_match(regex_->code, subject, text.size(), search_from, 0, md.data, nullptr)
                         : pcre2_match(regex_->code, subject, text.size(), search_from, PCRE2_NO_UTF_CHECK,
                                       md.data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      fail(ErrorKind::InvalidArgument, "regex match failed: ", reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
    size_t begin = ov[0], end = ov[1];
    if (begin == end && have_last && last_end == end) {
      // Oniguruma's rule: skip an empty match at the end of the previous one, move one char.
      search_from += search_from < text.size() ? utf8::lead_length(static_cast<unsigned char>(text[search_from])) : 1;
      continue;
    }
    out.push_back({begin, end});
    search_from = end;
    have_last = true;
    last_end = end;
  }
  return out;
}

std::vector<MatchSpan> Pattern::find_matches(std::string_view text) const {
  std::vector<MatchSpan> out;
  if (text.empty()) {
    out.push_back({{0, 0}, false});
    return out;
  }
  size_t prev = 0;
  for (const Span& m : find_all(text)) {
    if (prev != m.begin) out.push_back({{prev, m.begin}, false});
    out.push_back({m, true});
    prev = m.end;
  }
  if (prev != text.size()) out.push_back({{prev, text.size()}, false});
  return out;
}

}  // namespace kto
