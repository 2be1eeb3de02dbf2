// Conversational KTO rows (shared/spec/kto.md §1): message lists as TRL v1.9 takes them
// (trl/data_utils.py `is_conversational`, `extract_prompt` on lists) and the seed formats
// {"messages"} / ShareGPT {"conversations"} (from/value, human/gpt), which TRL itself does not
// read: everything before the last assistant message is the prompt, that message the completion.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "data/jsonl.h"

namespace kto {

// A JSON array of message objects, each with a string `role` and (usually) a string `content`,
// plus whatever else the template reads (tool_calls, name, …). Null-valued keys are dropped, as
// transformers' apply_chat_template drops them.
using Messages = nlohmann::json;

// TRL's is_conversational: the first present key among prompt, chosen, rejected, completion and
// messages holds a list whose first element is an object with `role` (or ShareGPT `from`); a row
// with a `conversations` list counts too.
bool row_is_conversational(const nlohmann::json& row);

// `row.value[key]` as normalised Messages: `from`/`value` become `role`/`content`, with the
// ShareGPT names human → user and gpt → assistant (system, user, assistant, tool kept); `role`
// values are kept as written. Format errors naming row.where(): not a non-empty list of objects,
// no role, an unknown `from` name, a content that is not a string (absent is allowed only in an
// assistant message with tool_calls).
Messages messages_parse(const DataRow& row, const char* key);

struct PromptCompletionMessages {
  Messages prompt, completion;
};

// {"messages"} / {"conversations"} rows: the prompt is every message before the last assistant
// message, the completion that message. Format errors: no assistant message, nothing before it,
// messages after it (KTO scores the last assistant turn only).
PromptCompletionMessages messages_split_last_assistant(const Messages& messages, const DataRow& row);

// TRL's extract_prompt on message lists: the longest common prefix of chosen and rejected is the
// prompt. TRL's quirk is kept: when the shorter list is a prefix of the other (or they are
// equal), the prompt stops one message short of it. A Format error when they share no first
// message (the prompt would be empty, which no chat template renders).
struct ExtractedMessages {
  Messages prompt, chosen, rejected;
};
ExtractedMessages extract_prompt_messages(const Messages& chosen, const Messages& rejected, const DataRow& row);

// The prompt and completion of a conversational row without caring about its label: {prompt,
// completion} lists, or {messages} / {conversations}. nullopt for rows that are not
// conversational or have another shape (paired rows); errors as above. For `kto score`.
std::optional<PromptCompletionMessages> conversation_prompt_completion(const DataRow& row);

}  // namespace kto
