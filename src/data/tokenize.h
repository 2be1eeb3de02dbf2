// Tokenisation of a KTO row as TRL v1.9's KTOTrainer does it (shared/spec/kto.md §2). Standard
// rows: EOS text appended to the completion when missing, prompt and prompt+completion tokenised
// separately, completion = the joint ids past the prompt's length. Conversational rows: the same
// split over transformers' apply_chat_template(tokenize=True) of the prompt messages (with the
// generation prompt) and of prompt + completion messages (without), no EOS added.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/conversation.h"
#include "tokenizer/chat_template/chat_template.h"

namespace kto {

class Tokenizer;

struct TokenizedRow {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> completion_ids;
  // The joint tokenisation did not start with prompt_ids (a merge across the boundary, or a
  // template whose generation prompt differs from an assistant turn's start). TRL only warns and
  // trains on prompt_ids ++ completion_ids; so do we, counting these rows.
  bool boundary_mismatch = false;
};

TokenizedRow tokenize_prompt_completion(const Tokenizer& tokenizer, std::string_view prompt, std::string_view completion);

enum class AddGenerationPrompt { No, Yes };  // apply_chat_template's add_generation_prompt

// What transformers' apply_chat_template(messages, tools=None, documents=None,
// add_generation_prompt=…, tokenize=False) renders: the template sees messages, tools and
// documents (null), add_generation_prompt and the tokenizer's special tokens (bos_token,
// eos_token, pad_token; those it lacks are left undefined). Template errors propagate
// ("origin:LINE:COL: message").
std::string chat_template_apply(const ChatTemplate& chat_template, const Tokenizer& tokenizer, const Messages& messages,
                                AddGenerationPrompt generation_prompt);
// apply_chat_template(tokenize=True): the rendered text encoded with add_special_tokens=False
// (the template supplies BOS).
std::vector<int32_t> chat_template_encode(const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                                          const Messages& messages, AddGenerationPrompt generation_prompt);

// TRL v1.9 tokenize_fn for conversational rows: prompt_ids = chat_template_encode(prompt, Yes),
// full = chat_template_encode(prompt + completion, No), completion_ids = full[len(prompt_ids):].
TokenizedRow tokenize_conversation(const Tokenizer& tokenizer, const ChatTemplate& chat_template, const Messages& prompt,
                                   const Messages& completion);

// The model directory's chat template (chat_template_load), or nullopt when it has none. A
// template that does not parse is a Format error naming its line:col.
std::optional<ChatTemplate> chat_template_find(const std::string& model_dir);

}  // namespace kto
