// `kto tokenize` (placeholder until the verb lands).
#include <CLI/CLI.hpp>

#include "cli/app.h"
#include "util/error.h"

namespace kto::cli {

void add_tokenize_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "not implemented yet");
  cmd->callback([] { fail(ErrorKind::Unsupported, "`kto tokenize` is not implemented yet"); });
}

}  // namespace kto::cli
