// `kto template`: a conversation rendered with the model's chat template, as transformers'
// apply_chat_template(tokenize=False) renders it, or (--tokens) its ids and pieces with the
// completion mask TRL v1.9's KTOTrainer gives the row (prompt rendered with the generation
// prompt, completion = the ids of prompt + completion past the prompt's; data/tokenize.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "data/conversation.h"
#include "data/tokenize.h"
#include "formats/hf_cache.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto::cli {

namespace {
struct TemplateArgs {
  std::string model, messages, template_file;
  bool add_generation_prompt = false;
  bool tokens = false;
};

// CONV.json as a KTO row: a list of messages (split at its last assistant message when it ends
// with one and no generation prompt is asked for), or an object with prompt/completion lists,
// messages or conversations. `completion` stays empty for a list shown whole.
struct Conversation {
  Messages prompt, completion;
};

Conversation read_conversation(const TemplateArgs& args) {
  nlohmann::json value = json_read_file(args.messages);
  const bool is_list = value.is_array();
  DataRow row{is_list ? nlohmann::json{{"messages", std::move(value)}} : std::move(value), args.messages, 1, false};
  if (!row.value.is_object()) {
    fail(ErrorKind::Format, args.messages, ": expected a JSON list of {role, content} messages, or an object with "
         "`prompt` and `completion` message lists");
  }
  if (is_list) {
    Messages all = messages_parse(row, "messages");
    if (args.add_generation_prompt || all.back()["role"] != "assistant" || all.size() < 2) return {all, Messages()};
    PromptCompletionMessages pc = messages_split_last_assistant(all, row);
    return {std::move(pc.prompt), std::move(pc.completion)};
  }
  std::optional<PromptCompletionMessages> pc = conversation_prompt_completion(row);
  if (!pc) {
    fail(ErrorKind::Format, args.messages, ": expected `prompt` and `completion` message lists (or `messages`)");
  }
  return {std::move(pc->prompt), std::move(pc->completion)};
}

ChatTemplate template_for(const TemplateArgs& args, const std::string& model_dir) {
  if (!args.template_file.empty()) return ChatTemplate::parse(file_read_text(args.template_file), args.template_file);
  std::optional<ChatTemplate> found = chat_template_find(model_dir);
  if (!found) {
    fail(ErrorKind::NotFound, model_dir, " has no chat template (no chat_template.jinja, no \"chat_template\" in "
         "tokenizer_config.json); pass one with --template FILE.jinja");
  }
  return std::move(*found);
}

std::string quoted(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void print_tokens(const Tokenizer& tokenizer, const TokenizedRow& row) {
  std::printf("prompt: %zu tokens, completion: %zu tokens (mask 1 = completion, the tokens KTO scores)\n",
              row.prompt_ids.size(), row.completion_ids.size());
  std::printf("%6s %8s %4s  %s\n", "index", "id", "mask", "piece");
  size_t index = 0;
  for (const std::vector<int32_t>* ids : {&row.prompt_ids, &row.completion_ids}) {
    for (int32_t id : *ids) {
      std::printf("%6zu %8d %4d  %s\n", index++, id, ids == &row.completion_ids ? 1 : 0, quoted(tokenizer.id_to_token(id)).c_str());
    }
  }
  if (row.boundary_mismatch) {
    log_warn("the prompt's tokens are not a prefix of the tokens of prompt + completion (the template's generation "
             "prompt differs from the start of its assistant turn, or a token merges across the boundary); TRL trains "
             "on the prompt tokens followed by the completion tokens shown");
  }
}

void run_template(const TemplateArgs& args) {
  const std::string dir = hf_resolve_model(args.model);
  const Tokenizer tokenizer = Tokenizer::load(dir);
  const ChatTemplate chat_template = template_for(args, dir);
  const Conversation conv = read_conversation(args);
  const AddGenerationPrompt generation = args.add_generation_prompt ? AddGenerationPrompt::Yes : AddGenerationPrompt::No;
  if (conv.completion.empty()) {
    if (!args.tokens) {
      std::fputs(chat_template_apply(chat_template, tokenizer, conv.prompt, generation).c_str(), stdout);
      return;
    }
    TokenizedRow whole;  // no completion: every token is prompt
    whole.prompt_ids = chat_template_encode(chat_template, tokenizer, conv.prompt, generation);
    return print_tokens(tokenizer, whole);
  }
  if (args.tokens) return print_tokens(tokenizer, tokenize_conversation(tokenizer, chat_template, conv.prompt, conv.completion));
  Messages all = conv.prompt;
  for (const nlohmann::json& message : conv.completion) all.push_back(message);
  std::fputs(chat_template_apply(chat_template, tokenizer, all, generation).c_str(), stdout);
}
}  // namespace

void add_template_verb(CLI::App& app) {
  auto args = std::make_shared<TemplateArgs>();
  auto* cmd = app.add_subcommand("template", "Render a conversation with the model's chat template (or show its KTO tokens)");
  cmd->add_option("-m,--model", args->model, "Model directory or hub id (HF cache): tokenizer and chat template")->required();
  cmd->add_option("--messages", args->messages,
                  "CONV.json: a JSON list of {role, content} messages, or an object with `prompt` and `completion` "
                  "message lists (a KTO row)")->required();
  cmd->add_option("--template", args->template_file, "Use this Jinja chat template instead of the model's");
  cmd->add_flag("--add-generation-prompt", args->add_generation_prompt,
                "Append the assistant header a reply would follow (add_generation_prompt=True)");
  cmd->add_flag("--tokens", args->tokens,
                "Print ids and pieces with the KTO completion mask: prompt = the messages before the last assistant "
                "message rendered with the generation prompt, completion = the rest of the full rendering");
  cmd->footer("The text is printed exactly as rendered, with no newline added.\n");
  cmd->callback([args] { run_template(*args); });
}

}  // namespace kto::cli
