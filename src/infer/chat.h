// Chat sessions: a conversation history rendered with the model's chat template the way
// transformers' apply_chat_template(add_generation_prompt=True) does, tokenised without
// added special tokens (the template writes BOS itself), and answered by generate() until an
// eos id or the template's end-of-turn token (<|eot_id|>, <|im_end|>, …). Used by `kto chat`
// and the public API (include/kto/kto.h). A session belongs to one thread; the InferenceModel
// it reads may be shared.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "infer/generate.h"
#include "infer/inference_model.h"
#include "tokenizer/chat_template/chat_template.h"

namespace kto {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// The model directory's chat template; NotFound (saying to use `kto generate`) when it has none.
ChatTemplate chat_template_for_model(const std::string& model_dir);
// That NotFound error's message.
std::string chat_no_template_message(const std::string& model_dir);

// `messages` rendered with add_generation_prompt=true, the tokenizer's bos/eos token strings,
// tools and documents null, as apply_chat_template(tokenize=False) renders them.
std::string chat_render(const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                        const std::vector<ChatMessage>& messages);

// The special token the template closes an assistant turn with, found by rendering a probe
// conversation: <|eot_id|> (Llama 3), <|im_end|> (ChatML), </s> (Mistral). nullopt when the text
// after the reply does not start with a special token (or the template rejects the probe).
std::optional<int32_t> chat_end_of_turn_id(const ChatTemplate& chat_template, const Tokenizer& tokenizer);

struct ChatPrompt {
  std::string text;             // the rendered template
  std::vector<int32_t> tokens;  // text encoded with AddSpecial::No
};

// Renders and encodes `messages`; InvalidArgument when the prompt leaves no room to answer in
// the model's context (max_position_embeddings).
ChatPrompt chat_prompt(const InferenceModel& model, const ChatTemplate& chat_template,
                       const std::vector<ChatMessage>& messages);

class ChatSession {
 public:
  // `model` must outlive the session. Throws as chat_template_for_model when there is no template.
  explicit ChatSession(const InferenceModel& model);

  void set_system(std::string text);  // "" removes the system message
  void reset();                       // forgets the turns; keeps the system message
  const std::string& system() const { return system_; }
  const std::vector<ChatMessage>& turns() const { return turns_; }  // user/assistant, oldest first
  std::vector<ChatMessage> messages() const;                        // the system message (if any) + turns
  std::string prompt_for(const std::string& user) const;            // the text send(user) would render

  // Answers `user` given the history: renders, generates with `options` (its stop ids plus the
  // end-of-turn id), then appends the user turn and the reply (decoded without special tokens;
  // the partial text when cancelled) to the history. On an error the history is unchanged.
  GenerateResult send(const std::string& user, const GenerateOptions& options, const TextSink& on_text = {});

  const std::string& last_prompt() const { return last_prompt_; }  // text rendered for the last send
  const ChatTemplate& chat_template() const { return template_; }
  std::optional<int32_t> end_of_turn_id() const { return end_of_turn_; }

 private:
  const InferenceModel& model_;
  ChatTemplate template_;
  std::optional<int32_t> end_of_turn_;
  std::string system_;
  std::vector<ChatMessage> turns_;
  std::string last_prompt_;
};

}  // namespace kto
