// The public API (include/kto/kto.h) over the engine: LoadedModel::Impl holds an InferenceModel
// and its chat template; generate() and chat() translate the public params and callback into
// GenerateOptions and a TextSink with a cancel flag, and run infer/generate.h.
#include "kto/kto.h"

#include <atomic>

#include "infer/chat.h"
#include "infer/generate.h"
#include "infer/inference_model.h"
#include "util/error.h"

namespace kto {

struct LoadedModel::Impl {
  InferenceModel model;
  std::optional<ChatTemplate> chat_template;
  std::optional<int32_t> end_of_turn;
};

namespace {
GenerateOptions options_from(const InferenceModel& model, const GenerateParams& params) {
  if (params.max_new_tokens < 1) {
    fail(ErrorKind::InvalidArgument, "max_new_tokens must be at least 1, got ", params.max_new_tokens);
  }
  GenerateOptions options = model.generate_options(params.max_new_tokens);
  SamplingOptions& s = options.sampling;
  s.seed = params.seed;
  if (params.temperature) s.temperature = *params.temperature;
  if (params.top_k) s.top_k = *params.top_k;
  if (params.top_p) s.top_p = *params.top_p;
  return options;
}

// Runs generate() with the user's callback; its `false` becomes the cancel flag.
std::string run(const InferenceModel& model, const std::vector<int32_t>& prompt, GenerateOptions options,
                const TokenCallback& on_text) {
  std::atomic<bool> stop{false};
  options.cancel = &stop;
  TextSink sink;
  if (on_text) {
    sink = [&](std::string_view piece) {
      if (!stop.load() && !on_text(piece)) stop.store(true);
    };
  }
  return kto::generate(model.model, model.tokenizer, prompt, options, sink).text;
}

std::vector<ChatMessage> chat_messages(const std::vector<Message>& messages) {
  std::vector<ChatMessage> out;
  out.reserve(messages.size());
  for (const Message& m : messages) out.push_back({m.role, m.content});
  return out;
}

const ChatTemplate& require_template(const LoadedModel::Impl& impl) {
  if (!impl.chat_template) fail(ErrorKind::NotFound, chat_no_template_message(impl.model.dir));
  return *impl.chat_template;
}
}  // namespace

LoadedModel::LoadedModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LoadedModel::LoadedModel(LoadedModel&&) noexcept = default;
LoadedModel& LoadedModel::operator=(LoadedModel&&) noexcept = default;
LoadedModel::~LoadedModel() = default;

const std::string& LoadedModel::directory() const { return impl_->model.dir; }
bool LoadedModel::has_adapter() const { return impl_->model.adapter.has_value(); }
bool LoadedModel::has_chat_template() const { return impl_->chat_template.has_value(); }

std::string LoadedModel::render_chat(const std::vector<Message>& messages) const {
  return chat_render(require_template(*impl_), impl_->model.tokenizer, chat_messages(messages));
}

LoadedModel load(const std::string& model, const std::string& adapter) {
  auto impl = std::make_unique<LoadedModel::Impl>(LoadedModel::Impl{InferenceModel::load(model, adapter), {}, {}});
  try {
    impl->chat_template = chat_template_load(impl->model.dir);
    impl->end_of_turn = chat_end_of_turn_id(*impl->chat_template, impl->model.tokenizer);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;  // no template: generate() only
  }
  return LoadedModel(std::move(impl));
}

std::string generate(const LoadedModel& model, const std::string& prompt, const GenerateParams& params,
                     const TokenCallback& on_text) {
  const InferenceModel& m = model.impl().model;
  const std::vector<int32_t> ids = m.tokenizer.encode(prompt, AddSpecial::Yes);
  if (ids.empty()) fail(ErrorKind::InvalidArgument, "the prompt encodes to no tokens; give a non-empty prompt");
  return run(m, ids, options_from(m, params), on_text);
}

std::string chat(const LoadedModel& model, const std::vector<Message>& messages, const GenerateParams& params,
                 const TokenCallback& on_text) {
  const LoadedModel::Impl& impl = model.impl();
  if (messages.empty()) fail(ErrorKind::InvalidArgument, "chat needs at least one message");
  const ChatPrompt prompt = chat_prompt(impl.model, require_template(impl), chat_messages(messages));
  GenerateOptions options = options_from(impl.model, params);
  if (impl.end_of_turn) options.stop_ids.push_back(*impl.end_of_turn);
  return run(impl.model, prompt.tokens, std::move(options), on_text);
}

}  // namespace kto
