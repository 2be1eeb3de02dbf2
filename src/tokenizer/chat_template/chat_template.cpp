// ChatTemplate: parse once, render many times (transformers' apply_chat_template rendering step),
// and chat_template_load, which finds a model directory's template in the order transformers'
// tokenizer loading uses (chat_template.jinja, tokenizer_config.json, chat_template.json).
#include "tokenizer/chat_template/chat_template.h"

#include "tokenizer/chat_template/ast.h"
#include "tokenizer/chat_template/evaluator.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {

ChatTemplate ChatTemplate::parse(std::string source, std::string origin) {
  ChatTemplate t;
  t.source_ = std::move(source);
  t.origin_ = std::move(origin);
  auto tokens = jinja::lex_template(t.source_, t.origin_);
  t.body_ = std::make_shared<const jinja::StmtList>(jinja::parse_template(tokens, t.origin_));
  return t;
}

std::string ChatTemplate::render(const nlohmann::json& variables) const {
  return render_ordered(nlohmann::ordered_json::parse(variables.dump()));
}

std::string ChatTemplate::render_ordered(const nlohmann::ordered_json& variables,
                                         const ChatTemplateRenderOptions& options) const {
  if (!variables.is_object()) fail(ErrorKind::InvalidArgument, origin_, ": template variables must be a JSON object");
  jinja::Value vars = jinja::Value::from_json(variables);
  const std::tm* now = options.now ? &*options.now : nullptr;
  jinja::Renderer renderer(now);
  try {
    return renderer.render(*body_, vars.as_dict());
  } catch (const jinja::EvalError& e) {
    fail(e.kind(), origin_, ":", e.line(), ":", e.column(), ": ", e.what());
  }
}

namespace {

ChatTemplate from_config_value(const nlohmann::json& value, const std::string& path, const std::string& name) {
  if (value.is_string()) return ChatTemplate::parse(value.get<std::string>(), path);
  if (!value.is_array()) fail(ErrorKind::Format, path, ": \"chat_template\" must be a string or a list of {name, template}");
  std::string wanted = name.empty() ? "default" : name;
  std::string available;
  for (const auto& entry : value) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template")) {
      fail(ErrorKind::Format, path, ": each \"chat_template\" entry needs \"name\" and \"template\"");
    }
    std::string entry_name = entry["name"].get<std::string>();
    if (entry_name == wanted) return ChatTemplate::parse(entry["template"].get<std::string>(), path + ":" + entry_name);
    available += (available.empty() ? "" : ", ") + entry_name;
  }
  fail(ErrorKind::NotFound, path, ": no chat template named '", wanted, "' (available: ", available, ")");
}

}  // namespace

ChatTemplate chat_template_load(const std::string& model_dir, const std::string& name) {
  if (!name.empty()) {
    std::string extra = path_join(path_join(model_dir, "additional_chat_templates"), name + ".jinja");
    if (file_exists(extra)) return ChatTemplate::parse(file_read_text(extra), extra);
  }
  std::string jinja_path = path_join(model_dir, "chat_template.jinja");
  if (name.empty() && file_exists(jinja_path)) return ChatTemplate::parse(file_read_text(jinja_path), jinja_path);
  std::string config_path = path_join(model_dir, "tokenizer_config.json");
  if (file_exists(config_path)) {
    nlohmann::json config = json_read_file(config_path);
    if (config.contains("chat_template") && !config["chat_template"].is_null()) {
      return from_config_value(config["chat_template"], config_path, name);
    }
  }
  std::string json_path = path_join(model_dir, "chat_template.json");
  if (file_exists(json_path)) {
    nlohmann::json j = json_read_file(json_path);
    if (j.contains("chat_template")) return from_config_value(j["chat_template"], json_path, name);
  }
  fail(ErrorKind::NotFound, model_dir, ": no chat template (looked for chat_template.jinja, \"chat_template\" in ",
       "tokenizer_config.json, chat_template.json); pass a template file explicitly");
}

}  // namespace kto
