// `kto` top level: global flags, verb registration, and error → exit-code mapping.
#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "util/error.h"
#include "util/log.h"

namespace kto::cli {

int run(int argc, char** argv) {
  CLI::App app{"kto — KTO alignment of open LLMs with LoRA / QLoRA, in C++ and CUDA", "kto"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kto 0.1.0");
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "Only print errors");
  app.add_flag("-v,--verbose", verbose, "Print debug information");
  app.parse_complete_callback([&] {
    log_set_level(quiet ? LogLevel::Quiet : verbose ? LogLevel::Debug : LogLevel::Info);
  });

  add_generate_verb(app);
  add_chat_verb(app);
  add_demo_verb(app);
  add_export_verb(app);
  add_inspect_verb(app);
  add_merge_verb(app);
  add_pull_verb(app);
  add_push_verb(app);
  add_tokenize_verb(app);
  add_score_verb(app);
  add_template_verb(app);
  add_train_verb(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "kto: %s\nRun `kto --help` (or `kto VERB --help`) for usage.\n", e.what());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "kto: %s\n", e.what());
    return error_kind_exit_code(e.kind());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kto: out of host memory\n");
    return error_kind_exit_code(ErrorKind::OutOfMemory);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kto: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace kto::cli
