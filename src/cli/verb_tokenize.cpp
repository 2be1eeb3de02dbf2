// `kto tokenize`: ids and pieces of a text as the model's tokenizer encodes it (the same ids
// as Hugging Face `tokenizer(text)["input_ids"]`).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "formats/hf_cache.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/files.h"

namespace kto::cli {

namespace {
struct TokenizeArgs {
  std::string model, text, file;
  bool json = false;
  bool no_special = false;
};

void run_tokenize(const TokenizeArgs& args) {
  Tokenizer tokenizer = Tokenizer::load(hf_resolve_model(args.model));
  const std::string text = args.file.empty() ? args.text : file_read_text(args.file);
  const std::vector<int32_t> ids = tokenizer.encode(text, args.no_special ? AddSpecial::No : AddSpecial::Yes);
  if (args.json) {
    nlohmann::json out = {{"ids", ids}, {"tokens", nlohmann::json::array()}};
    for (int32_t id : ids) out["tokens"].push_back(tokenizer.id_to_token(id));
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  std::printf("%zu tokens\n", ids.size());
  for (int32_t id : ids) {
    std::string piece = nlohmann::json(tokenizer.id_to_token(id)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%8d  %s\n", id, piece.c_str());
  }
}
}  // namespace

void add_tokenize_verb(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "Show the token ids and pieces of a text");
  cmd->add_option("-m,--model", args->model, "Model directory or hub id (HF cache)")->required();
  auto* text = cmd->add_option("-t,--text", args->text, "Text to tokenize");
  auto* file = cmd->add_option("-f,--file", args->file, "Read the text from this file");
  text->excludes(file);
  cmd->add_flag("--json", args->json, "Print {\"ids\": [...], \"tokens\": [...]} on one line");
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS/EOS (add_special_tokens=False)");
  cmd->callback([args, text, file] {
    if (text->count() == 0 && file->count() == 0) fail(ErrorKind::InvalidArgument, "tokenize needs --text TEXT or --file FILE");
    run_tokenize(*args);
  });
}

}  // namespace kto::cli
