// Entry point of the `kto` command line and the contract every verb follows: a verb file
// registers a CLI11 subcommand and a callback; errors propagate as kto::Error to run().
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace kto::cli {

int run(int argc, char** argv);

// One verb per file (cli/verb_<name>.cpp); each adds its subcommand to `app`.
void add_chat_verb(CLI::App& app);
void add_demo_verb(CLI::App& app);
void add_export_verb(CLI::App& app);
void add_generate_verb(CLI::App& app);
void add_inspect_verb(CLI::App& app);
void add_merge_verb(CLI::App& app);
void add_pull_verb(CLI::App& app);
void add_push_verb(CLI::App& app);
void add_tokenize_verb(CLI::App& app);
void add_score_verb(CLI::App& app);
void add_template_verb(CLI::App& app);
void add_train_verb(CLI::App& app);

}  // namespace kto::cli
