// `kto score` (placeholder until the verb lands).
#include <CLI/CLI.hpp>

#include "cli/app.h"
#include "util/error.h"

namespace kto::cli {

void add_score_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("score", "not implemented yet");
  cmd->callback([] { fail(ErrorKind::Unsupported, "`kto score` is not implemented yet"); });
}

}  // namespace kto::cli
