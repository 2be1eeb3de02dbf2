// TRL v1.9 row tokenisation (trl/trainer/kto_trainer.py `_prepare_dataset.tokenize_fn`, "CUR" in
// spec/kto.md §2) and transformers 5 `PreTrainedTokenizerBase.apply_chat_template` (variables:
// special_tokens_map + tools/documents; tokenize=True encodes with add_special_tokens=False).
#include "data/tokenize.h"

#include <algorithm>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kto {

namespace {

TokenizedRow split_at_prompt(std::vector<int32_t> prompt_ids, const std::vector<int32_t>& full_ids) {
  TokenizedRow row;
  row.prompt_ids = std::move(prompt_ids);
  const size_t n_prompt = row.prompt_ids.size();
  row.boundary_mismatch =
      full_ids.size() < n_prompt || !std::equal(row.prompt_ids.begin(), row.prompt_ids.end(), full_ids.begin());
  if (full_ids.size() > n_prompt) row.completion_ids.assign(full_ids.begin() + static_cast<std::ptrdiff_t>(n_prompt), full_ids.end());
  return row;
}

}  // namespace

TokenizedRow tokenize_prompt_completion(const Tokenizer& tokenizer, std::string_view prompt, std::string_view completion) {
  std::string full(prompt);
  full += completion;
  const std::string& eos = tokenizer.eos_token();
  if (!eos.empty() && !completion.ends_with(eos)) full += eos;
  return split_at_prompt(tokenizer.encode(prompt, AddSpecial::Yes), tokenizer.encode(full, AddSpecial::Yes));
}

std::string chat_template_apply(const ChatTemplate& chat_template, const Tokenizer& tokenizer, const Messages& messages,
                                AddGenerationPrompt generation_prompt) {
  if (!messages.is_array() || messages.empty()) {
    fail(ErrorKind::InvalidArgument, "cannot apply a chat template to an empty conversation");
  }
  nlohmann::json variables = {{"messages", messages},
                              {"tools", nullptr},
                              {"documents", nullptr},
                              {"add_generation_prompt", generation_prompt == AddGenerationPrompt::Yes}};
  if (!tokenizer.bos_token().empty()) variables["bos_token"] = tokenizer.bos_token();
  if (!tokenizer.eos_token().empty()) variables["eos_token"] = tokenizer.eos_token();
  if (std::optional<int32_t> pad = tokenizer.pad_id()) variables["pad_token"] = tokenizer.id_to_token(*pad);
  return chat_template.render(variables);
}

std::vector<int32_t> chat_template_encode(const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                                          const Messages& messages, AddGenerationPrompt generation_prompt) {
  return tokenizer.encode(chat_template_apply(chat_template, tokenizer, messages, generation_prompt), AddSpecial::No);
}

TokenizedRow tokenize_conversation(const Tokenizer& tokenizer, const ChatTemplate& chat_template, const Messages& prompt,
                                   const Messages& completion) {
  Messages full = prompt;
  for (const nlohmann::json& message : completion) full.push_back(message);
  return split_at_prompt(chat_template_encode(chat_template, tokenizer, prompt, AddGenerationPrompt::Yes),
                         chat_template_encode(chat_template, tokenizer, full, AddGenerationPrompt::No));
}

std::optional<ChatTemplate> chat_template_find(const std::string& model_dir) {
  try {
    return chat_template_load(model_dir);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::NotFound) return std::nullopt;
    throw;
  }
}

}  // namespace kto
