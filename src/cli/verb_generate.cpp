// `kto generate` (placeholder until the verb lands).
#include <CLI/CLI.hpp>

#include "cli/app.h"
#include "util/error.h"

namespace kto::cli {

void add_generate_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "not implemented yet");
  cmd->callback([] { fail(ErrorKind::Unsupported, "`kto generate` is not implemented yet"); });
}

}  // namespace kto::cli
