// `kto demo [--output-dir DIR] [--seed N] [--threads N] [--quick]`: SFT then KTO of a tiny model made on the
// spot (demo/demo.h), with progress on stderr and the before/after report on stdout.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "cli/app.h"
#include "demo/demo.h"

namespace kto::cli {

namespace {
// How the user runs this binary, for the commands the report suggests: "./build/kto" when it
// lies under the current directory, else its absolute path.
std::string program_path() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "kto";
  const std::filesystem::path rel = std::filesystem::relative(exe, std::filesystem::current_path(ec), ec);
  if (ec || rel.empty() || rel.string().starts_with("..")) return exe.string();
  return "./" + rel.string();
}
}  // namespace

void add_demo_verb(CLI::App& app) {
  auto options = std::make_shared<DemoOptions>();
  auto quick = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("demo", "The whole pipeline on a tiny model made on the spot: SFT, sampling, KTO, before/after");
  cmd->add_option("--output-dir", options->output_dir, "Where the model, data, adapter and reports go")->capture_default_str();
  cmd->add_option("--device", options->device, "auto (the GPU when present), cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--seed", options->seed, "Seed of the task, the model and the training runs")->capture_default_str();
  cmd->add_option("--threads", options->threads, "Compute threads (the tiny model runs fastest on one)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--quick", *quick, "A much smaller run of the same stages (seconds; for tests)");
  cmd->callback([options, quick] {
    options->scale = *quick ? DemoScale::Quick : DemoScale::Full;
    const DemoResult result = demo_run(*options);
    std::fputs(demo_report(result, program_path()).c_str(), stdout);
  });
}

}  // namespace kto::cli
