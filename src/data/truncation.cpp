// CUR and LEG truncation (TRL v1.9 DataCollatorForUnpairedPreference.torch_call keep-start cut;
// TRL v0.25 KTOTrainer._process_tokens prompt-then-completion cut).
#include "data/truncation.h"

#include <algorithm>

#include "util/error.h"

namespace kto {

TruncationMode truncation_mode_parse(const std::string& text, const std::string& where) {
  if (text == "keep_end") return TruncationMode::KeepEnd;
  if (text == "keep_start") return TruncationMode::KeepStart;
  fail(ErrorKind::InvalidArgument, where, ": truncation_mode \"", text, "\" is not keep_end or keep_start");
}

void TruncationRule::validate() const {
  if (max_length < 0) fail(ErrorKind::InvalidArgument, "max_length must be >= 0 (0 = no limit), got ", max_length);
  if (max_prompt_length < 0) fail(ErrorKind::InvalidArgument, "max_prompt_length must be >= 0 (0 = unset), got ", max_prompt_length);
  if (legacy() && max_length > 0 && max_prompt_length >= max_length) {
    fail(ErrorKind::InvalidArgument, "max_prompt_length (", max_prompt_length, ") must be smaller than max_length (",
         max_length, "): the legacy rule keeps max_length - max_prompt_length completion tokens");
  }
}

bool TruncationRule::drops(int64_t prompt_len) const {
  return !legacy() && max_length > 0 && prompt_len >= max_length;
}

SequenceCut truncate_sequence(int64_t prompt_len, int64_t completion_len, const TruncationRule& rule) {
  SequenceCut cut{0, prompt_len, completion_len};
  if (rule.max_length <= 0 || cut.length() <= rule.max_length) return cut;
  if (!rule.legacy()) {  // keep-start: the first max_length tokens of prompt ++ completion
    cut.prompt_len = std::min(prompt_len, rule.max_length);
    cut.completion_len = rule.max_length - cut.prompt_len;
    return cut;
  }
  if (prompt_len > rule.max_prompt_length) {
    cut.prompt_len = rule.max_prompt_length;
    if (rule.mode == TruncationMode::KeepEnd) cut.prompt_begin = prompt_len - rule.max_prompt_length;
  }
  if (cut.length() > rule.max_length) cut.completion_len = rule.max_length - rule.max_prompt_length;
  return cut;
}

}  // namespace kto
