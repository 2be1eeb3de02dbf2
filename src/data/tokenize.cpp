// TRL v1.9 standard-row tokenisation (trl/trainer/kto_trainer.py, "CUR" in spec/kto.md §2).
#include "data/tokenize.h"

#include <algorithm>
#include <string>

#include "tokenizer/tokenizer.h"

namespace kto {

TokenizedRow tokenize_prompt_completion(const Tokenizer& tokenizer, std::string_view prompt, std::string_view completion) {
  std::string full(prompt);
  full += completion;
  const std::string& eos = tokenizer.eos_token();
  if (!eos.empty() && !completion.ends_with(eos)) full += eos;

  TokenizedRow row;
  row.prompt_ids = tokenizer.encode(prompt, AddSpecial::Yes);
  std::vector<int32_t> full_ids = tokenizer.encode(full, AddSpecial::Yes);
  const size_t n_prompt = row.prompt_ids.size();
  row.boundary_mismatch =
      full_ids.size() < n_prompt || !std::equal(row.prompt_ids.begin(), row.prompt_ids.end(), full_ids.begin());
  if (full_ids.size() > n_prompt) row.completion_ids.assign(full_ids.begin() + static_cast<std::ptrdiff_t>(n_prompt), full_ids.end());
  return row;
}

}  // namespace kto
