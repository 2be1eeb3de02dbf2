// Chat sessions over generate(): template rendering as transformers' apply_chat_template
// (render_jinja_template with the tokenizer's special tokens, tools/documents None), the
// end-of-turn stop token, and the history a session keeps.
#include "infer/chat.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "data/tokenize.h"
#include "util/error.h"

namespace kto {

namespace {

nlohmann::json messages_json(const std::vector<ChatMessage>& messages) {
  nlohmann::json out = nlohmann::json::array();
  for (const ChatMessage& m : messages) out.push_back({{"role", m.role}, {"content", m.content}});
  return out;
}

}  // namespace

std::string chat_no_template_message(const std::string& model_dir) {
  return model_dir + " has no chat template (chat_template.jinja or tokenizer_config.json \"chat_template\"), "
         "so it cannot chat; use `kto generate --prompt TEXT` to continue plain text";
}

ChatTemplate chat_template_for_model(const std::string& model_dir) {
  try {
    return chat_template_load(model_dir);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
    fail(ErrorKind::NotFound, chat_no_template_message(model_dir));
  }
}

std::string chat_render(const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                        const std::vector<ChatMessage>& messages) {
  return chat_template_apply(chat_template, tokenizer, messages_json(messages), AddGenerationPrompt::Yes);
}

std::optional<int32_t> chat_end_of_turn_id(const ChatTemplate& chat_template, const Tokenizer& tokenizer) {
  const std::string reply = "kto-probe-reply";
  const std::vector<ChatMessage> probe = {{"user", "kto-probe-question"}, {"assistant", reply}};
  std::string text;
  try {
    text = chat_template_apply(chat_template, tokenizer, messages_json(probe), AddGenerationPrompt::No);
  } catch (const Error&) {
    return std::nullopt;  // a template with stricter rules (a system message first, …): eos ids only
  }
  const size_t at = text.rfind(reply);
  if (at == std::string::npos) return std::nullopt;
  const std::vector<int32_t> after = tokenizer.encode(std::string_view(text).substr(at + reply.size()), AddSpecial::No);
  if (after.empty() || !tokenizer.is_special(after.front())) return std::nullopt;
  return after.front();
}

ChatPrompt chat_prompt(const InferenceModel& model, const ChatTemplate& chat_template,
                       const std::vector<ChatMessage>& messages) {
  ChatPrompt prompt;
  prompt.text = chat_render(chat_template, model.tokenizer, messages);
  prompt.tokens = model.tokenizer.encode(prompt.text, AddSpecial::No);
  const int64_t context = model.model.config().max_position_embeddings;
  const int64_t n = static_cast<int64_t>(prompt.tokens.size());
  if (n == 0) fail(ErrorKind::InvalidArgument, chat_template.origin(), " rendered an empty prompt");
  if (context > 0 && n >= context) {
    fail(ErrorKind::InvalidArgument, "the conversation is ", n, " tokens and the model's context holds ", context,
         "; start over (/reset in `kto chat`) or shorten the messages");
  }
  return prompt;
}

ChatSession::ChatSession(const InferenceModel& model)
    : model_(model), template_(chat_template_for_model(model.dir)) {
  end_of_turn_ = chat_end_of_turn_id(template_, model.tokenizer);
}

void ChatSession::set_system(std::string text) { system_ = std::move(text); }

void ChatSession::reset() { turns_.clear(); }

std::vector<ChatMessage> ChatSession::messages() const {
  std::vector<ChatMessage> out;
  if (!system_.empty()) out.push_back({"system", system_});
  out.insert(out.end(), turns_.begin(), turns_.end());
  return out;
}

std::string ChatSession::prompt_for(const std::string& user) const {
  std::vector<ChatMessage> history = messages();
  history.push_back({"user", user});
  return chat_render(template_, model_.tokenizer, history);
}

GenerateResult ChatSession::send(const std::string& user, const GenerateOptions& options, const TextSink& on_text) {
  std::vector<ChatMessage> history = messages();
  history.push_back({"user", user});
  const ChatPrompt prompt = chat_prompt(model_, template_, history);
  last_prompt_ = prompt.text;
  GenerateOptions turn = options;
  if (end_of_turn_ && std::find(turn.stop_ids.begin(), turn.stop_ids.end(), *end_of_turn_) == turn.stop_ids.end()) {
    turn.stop_ids.push_back(*end_of_turn_);
  }
  GenerateResult result = generate(model_.model, model_.tokenizer, prompt.tokens, turn, on_text);
  turns_.push_back({"user", user});
  turns_.push_back({"assistant", result.text});
  return result;
}

}  // namespace kto
