// One training stage of the demo, run exactly as `kto train CONFIG` runs it (the same model and
// data loading, Trainer, train_config.yaml and trainer_log.jsonl in output_dir), with the
// config also written to `yaml_path` for the user to rerun, and a progress bar on stderr.
// Also the demo's summary file.
#pragma once

#include <map>
#include <string>

#include "demo/demo.h"
#include "train/train_config.h"

namespace kto {

struct StageOutcome {
  double seconds = 0.0;
  std::map<std::string, double> last_log;     // the last training log record
  std::map<std::string, double> eval_before;  // Trainer::evaluate() before the first step (KTO)
  std::map<std::string, double> eval_after;   // the final evaluation (KTO, with an eval dataset)
};

StageOutcome demo_train_stage(const TrainConfig& config, const std::string& yaml_path);

// demo_summary.json: the before/after numbers, the samples, sizes, timings and paths.
void demo_write_summary(const DemoResult& result, const DemoOptions& options, const std::string& path);

}  // namespace kto
