// Tokenisation of a standard (string) prompt/completion row as TRL v1.9's KTOTrainer does it
// (shared/spec/kto.md §2): EOS text appended to the completion when missing, prompt and
// prompt+completion tokenised separately, completion = the joint ids past the prompt's length.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace kto {

class Tokenizer;

struct TokenizedRow {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> completion_ids;
  // The joint tokenisation did not start with prompt_ids (a merge across the boundary). TRL
  // only warns and trains on prompt_ids ++ completion_ids; so do we, counting these rows.
  bool boundary_mismatch = false;
};

TokenizedRow tokenize_prompt_completion(const Tokenizer& tokenizer, std::string_view prompt, std::string_view completion);

}  // namespace kto
