// Length limits on a (prompt, completion) sequence, main or KL (shared/spec/kto.md §2.4–2.5).
// CUR (TRL v1.9, DataCollatorForUnpairedPreference + the max_length filter in _prepare_dataset):
// rows whose prompt alone has >= max_length tokens are dropped, the rest cut to their first
// max_length tokens. LEG (TRL v0.14–v0.26 KTOTrainer._process_tokens), chosen by setting
// max_prompt_length: prompt cut to max_prompt_length (keep_end: its last tokens), then the
// completion to max_length - max_prompt_length; nothing is dropped.
#pragma once

#include <cstdint>
#include <string>

namespace kto {

enum class TruncationMode { KeepEnd, KeepStart };

// "keep_end" | "keep_start"; anything else is InvalidArgument naming `where`.
TruncationMode truncation_mode_parse(const std::string& text, const std::string& where);

struct TruncationRule {
  int64_t max_length = 1024;      // 0 = no limit (TRL's max_length=None)
  int64_t max_prompt_length = 0;  // 0 = unset (CUR rule); > 0 selects the LEG rule
  TruncationMode mode = TruncationMode::KeepEnd;  // LEG rule only

  bool legacy() const { return max_prompt_length > 0; }
  // Throws InvalidArgument for negative limits or max_prompt_length >= max_length.
  void validate() const;
  // CUR: the prompt alone fills max_length, so TRL drops the row. Never under LEG.
  bool drops(int64_t prompt_len) const;
};

// What of a sequence survives: prompt tokens [prompt_begin, prompt_begin + prompt_len) and the
// first completion_len completion tokens.
struct SequenceCut {
  int64_t prompt_begin = 0;
  int64_t prompt_len = 0;
  int64_t completion_len = 0;
  int64_t length() const { return prompt_len + completion_len; }
};

SequenceCut truncate_sequence(int64_t prompt_len, int64_t completion_len, const TruncationRule& rule);

}  // namespace kto
