// kto.cpp's public C++ API: load a Hugging Face model (optionally with a PEFT LoRA adapter,
// applied unmerged), continue text and answer chats through the model's chat template, with
// streaming. Only standard-library types cross this header; the engine stays behind a pimpl
// (src/infer/api.cpp). Errors throw std::runtime_error whose what() says what to do.
// Thread-safety: a LoadedModel is immutable; generate() and chat() may run on it concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kto {

// How to generate. Unset sampling fields take the model's generation_config.json values
// (greedy unless it says do_sample), as transformers' generate() does.
struct GenerateParams {
  int64_t max_new_tokens = 128;
  std::optional<double> temperature;  // 0 = greedy
  std::optional<int64_t> top_k;       // 0 = off
  std::optional<double> top_p;        // 1 = off
  uint64_t seed = 42;
};

struct Message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Receives each piece of text as soon as it is complete UTF-8; return false to stop generating.
using TokenCallback = std::function<bool(std::string_view piece)>;

// A model ready to generate: weights, tokenizer, generation defaults, chat template (if any)
// and adapter (if any). Move-only.
class LoadedModel {
 public:
  LoadedModel(LoadedModel&&) noexcept;
  LoadedModel& operator=(LoadedModel&&) noexcept;
  ~LoadedModel();

  const std::string& directory() const;  // the resolved model directory
  bool has_adapter() const;
  bool has_chat_template() const;
  // The text chat() feeds the model for `messages` (the template with add_generation_prompt).
  std::string render_chat(const std::vector<Message>& messages) const;

  struct Impl;  // defined in src/infer/api.cpp
  const Impl& impl() const { return *impl_; }
  explicit LoadedModel(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// `model`: a local model directory, or a hub id already in the Hugging Face cache
// ("ORG/NAME[@REVISION]"). `adapter` (directory or hub id, "" = none): a PEFT LoRA adapter
// for that model, applied on top of the base weights without merging.
LoadedModel load(const std::string& model, const std::string& adapter = "");

// Continues `prompt` (BOS added as the tokenizer's post-processor does); returns the new text.
std::string generate(const LoadedModel& model, const std::string& prompt, const GenerateParams& params = {},
                     const TokenCallback& on_text = {});

// The assistant's answer to `messages` (the last one normally from the user), stopping at the
// model's eos or the template's end-of-turn token. Throws when the model has no chat template.
std::string chat(const LoadedModel& model, const std::vector<Message>& messages, const GenerateParams& params = {},
                 const TokenCallback& on_text = {});

}  // namespace kto
