// Chat templates: parse and render a model's Jinja chat template the way transformers'
// apply_chat_template does (jinja2 ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks,
// loopcontrols, {% generation %}, tojson override, raise_exception, strftime_now), and find a
// model directory's template as transformers does. A parsed template is immutable and can be
// rendered concurrently from several threads.
#pragma once

#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace kto {

namespace jinja {
struct Stmt;
}

struct ChatTemplateRenderOptions {
  std::optional<std::tm> now;  // the clock strftime_now reads; unset = current local time
};

class ChatTemplate {
 public:
  // Syntax errors (unclosed block, unknown tag / filter / test, bad expression) throw
  // kto::Error(Format) "origin:LINE:COL: message". `origin` names the template in messages.
  static ChatTemplate parse(std::string source, std::string origin);

  // Renders with the template variables: a JSON object with messages, add_generation_prompt,
  // bos_token, eos_token, tools, documents and any caller kwargs (enable_thinking, …). Errors
  // throw kto::Error "origin:LINE:COL: message": InvalidArgument for raise_exception (the
  // conversation does not suit the template), Format for any other runtime error.
  // nlohmann::json sorts object keys; pass nlohmann::ordered_json (render_ordered) where the
  // key order of tools / arguments must be kept, as Python dicts keep it.
  std::string render(const nlohmann::json& variables) const;
  std::string render_ordered(const nlohmann::ordered_json& variables,
                             const ChatTemplateRenderOptions& options = {}) const;

  const std::string& source() const { return source_; }
  const std::string& origin() const { return origin_; }

 private:
  ChatTemplate() = default;
  std::string source_;
  std::string origin_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
};

// The template of a model directory as transformers finds it: chat_template.jinja if present, else
// tokenizer_config.json "chat_template" (a string, or a list of {"name", "template"}: "default",
// or `name` if given), else chat_template.json {"chat_template": …}. NotFound error if none.
// A non-empty `name` also selects additional_chat_templates/<name>.jinja.
ChatTemplate chat_template_load(const std::string& model_dir, const std::string& name = "");

}  // namespace kto
