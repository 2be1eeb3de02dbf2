// Message lists of conversational rows: detection (TRL v1.9 trl/data_utils.py is_conversational),
// ShareGPT aliases, the last-assistant split and extract_prompt on lists (data_utils.py).
#include "data/conversation.h"

#include <algorithm>
#include <string>

#include "util/error.h"

namespace kto {

namespace {

using nlohmann::json;

bool present(const json& v, const char* key) { return v.contains(key) && !v[key].is_null(); }

// ShareGPT `from` values and the role each becomes.
std::string sharegpt_role(const std::string& from, const DataRow& row, const char* key, size_t index) {
  if (from == "human" || from == "user") return "user";
  if (from == "gpt" || from == "assistant") return "assistant";
  if (from == "system" || from == "tool") return from;
  fail(ErrorKind::Format, row.where(), ": `", key, "`[", index, "] has `from: \"", from,
       "\"`; known ShareGPT names: human, gpt, system (also user, assistant, tool)");
}

json normalise_message(const json& m, const DataRow& row, const char* key, size_t index) {
  if (!m.is_object()) {
    fail(ErrorKind::Format, row.where(), ": `", key, "`[", index, "] is ", m.type_name(),
         ", not an object {\"role\": …, \"content\": …}");
  }
  json out = json::object();
  for (const auto& [k, value] : m.items()) {
    if (!value.is_null() && k != "from" && k != "value") out[k] = value;
  }
  if (present(m, "from")) {
    if (!m["from"].is_string()) fail(ErrorKind::Format, row.where(), ": `", key, "`[", index, "]: `from` must be a string");
    out["role"] = sharegpt_role(m["from"].get<std::string>(), row, key, index);
    if (present(m, "value")) out["content"] = m["value"];
  }
  if (!out.contains("role") || !out["role"].is_string()) {
    fail(ErrorKind::Format, row.where(), ": `", key, "`[", index, "] has no string `role` (or ShareGPT `from`)");
  }
  const bool tool_call = out["role"] == "assistant" && out.contains("tool_calls");
  if (out.contains("content") ? !out["content"].is_string() : !tool_call) {
    fail(ErrorKind::Format, row.where(), ": `", key, "`[", index, "] (", out["role"].get<std::string>(), "): `content` must be a string, got ",
         out.contains("content") ? out["content"].type_name() : "nothing", " (multimodal content lists are not supported)");
  }
  return out;
}

}  // namespace

bool row_is_conversational(const json& row) {
  if (present(row, "conversations")) return true;
  for (const char* key : {"prompt", "chosen", "rejected", "completion", "messages"}) {
    if (!present(row, key)) continue;
    const json& field = row[key];
    return field.is_array() && !field.empty() && field[0].is_object() &&
           (field[0].contains("role") || field[0].contains("from"));
  }
  return false;
}

Messages messages_parse(const DataRow& row, const char* key) {
  const json& field = row.value[key];
  if (!field.is_array() || field.empty()) {
    fail(ErrorKind::Format, row.where(), ": `", key, "` must be a non-empty list of messages, got ",
         field.is_array() ? "an empty list" : field.type_name());
  }
  Messages out = json::array();
  for (size_t i = 0; i < field.size(); ++i) out.push_back(normalise_message(field[i], row, key, i));
  return out;
}

PromptCompletionMessages messages_split_last_assistant(const Messages& messages, const DataRow& row) {
  size_t last = messages.size();
  for (size_t i = messages.size(); i-- > 0;) {
    if (messages[i]["role"] == "assistant") {
      last = i;
      break;
    }
  }
  if (last == messages.size()) {
    fail(ErrorKind::Format, row.where(), ": the conversation has no assistant message; KTO needs one as the completion");
  }
  if (last == 0) {
    fail(ErrorKind::Format, row.where(), ": the conversation starts with its only assistant message; KTO needs prompt "
         "messages (system / user) before it");
  }
  if (last + 1 != messages.size()) {
    fail(ErrorKind::Format, row.where(), ": the conversation goes on after its last assistant message (",
         messages.size() - last - 1, " more); KTO scores the last assistant turn, so end the conversation with it");
  }
  PromptCompletionMessages out{json::array(), json::array()};
  for (size_t i = 0; i < last; ++i) out.prompt.push_back(messages[i]);
  out.completion.push_back(messages[last]);
  return out;
}

ExtractedMessages extract_prompt_messages(const Messages& chosen, const Messages& rejected, const DataRow& row) {
  const size_t n = std::min(chosen.size(), rejected.size());
  KTO_ASSERT(n > 0, "extract_prompt_messages needs non-empty lists");
  size_t idx = n - 1;  // Python's loop variable after `for idx in range(n)` ran out
  for (size_t i = 0; i < n; ++i) {
    if (chosen[i] != rejected[i]) {
      idx = i;
      break;
    }
  }
  if (idx == 0) {
    fail(ErrorKind::Format, row.where(), ": no prompt is left in `chosen` and `rejected`: without a `prompt` list it is "
         "their common leading messages (one short when one list is a prefix of the other, as TRL's extract_prompt "
         "does); start both with the prompt turns or add a `prompt` list");
  }
  ExtractedMessages out{json::array(), json::array(), json::array()};
  for (size_t i = 0; i < idx; ++i) out.prompt.push_back(chosen[i]);
  for (size_t i = idx; i < chosen.size(); ++i) out.chosen.push_back(chosen[i]);
  for (size_t i = idx; i < rejected.size(); ++i) out.rejected.push_back(rejected[i]);
  return out;
}

std::optional<PromptCompletionMessages> conversation_prompt_completion(const DataRow& row) {
  const json& v = row.value;
  if (!row_is_conversational(v)) return std::nullopt;
  for (const char* key : {"messages", "conversations"}) {
    if (present(v, key)) return messages_split_last_assistant(messages_parse(row, key), row);
  }
  if (!present(v, "prompt") || !present(v, "completion")) return std::nullopt;
  return PromptCompletionMessages{messages_parse(row, "prompt"), messages_parse(row, "completion")};
}

}  // namespace kto
