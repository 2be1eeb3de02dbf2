// `kto inspect` (placeholder until the verb lands).
#include <CLI/CLI.hpp>

#include "cli/app.h"
#include "util/error.h"

namespace kto::cli {

void add_inspect_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "not implemented yet");
  cmd->callback([] { fail(ErrorKind::Unsupported, "`kto inspect` is not implemented yet"); });
}

}  // namespace kto::cli
