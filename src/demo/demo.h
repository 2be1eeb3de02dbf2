// `kto demo`: the whole pipeline on a tiny model made on the spot, with no downloads (the
// README's first command). Stages, each written to the output directory as a normal run:
//   1. a byte-level tokenizer and a tiny Llama with random weights        → model-init/
//   2. SFT from scratch (full fine-tuning) on noisy additions              → sft/ (HF model dir)
//   3. the SFT model answers questions; answers labelled right / wrong     → data/kto_*.jsonl
//   4. held-out accuracy, p(right answer) and samples before KTO
//   5. KTO of a LoRA adapter on the model's own labelled answers           → kto/ (PEFT adapter)
//   6. the same measurements with the adapter; demo_summary.json, sft.yaml and kto.yaml (which
//      `kto train` reruns to the same result).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kto {

enum class DemoScale {
  Full,  // the README demo: a few minutes on two CPU cores
  Quick  // seconds: the same stages on a smaller model and task, for tests
};

struct DemoOptions {
  std::string output_dir = "kto-demo";
  uint64_t seed = 1;
  DemoScale scale = DemoScale::Full;
  int threads = 1;  // compute threads; the tiny model's matrices gain nothing from more
  std::string device = "auto";  // auto | cpu | cuda | cuda:N (model/device.h)
};

struct DemoSample {
  std::string prompt, right, before, after;
};

struct DemoMeasure {
  double sampled_accuracy = 0.0;  // temperature-1 answers that are right (held-out questions)
  double greedy_accuracy = 0.0;
  double mean_p_right = 0.0;      // mean p(right answer + EOS | question): expected sampled accuracy
  double reward_margin = 0.0;     // KTO eval rewards/margins on the held-out labelled answers
};

struct DemoResult {
  DemoMeasure before, after;
  std::vector<DemoSample> samples;
  int64_t n_eval_questions = 0, n_kto_examples = 0, n_kto_desirable = 0;
  double sft_seconds = 0, sampling_seconds = 0, kto_seconds = 0, total_seconds = 0;
  std::string output_dir, model_dir, adapter_dir, data_dir, kto_config, sft_config, summary_path;
};

// Runs every stage, printing a banner, one line per stage and progress bars to stderr.
// Removes and rewrites only its own entries of output_dir (model-init, sft, kto, data, the
// YAML files, demo_summary.json). Throws kto::Error on I/O problems.
DemoResult demo_run(const DemoOptions& options);

// The before/after table, sample answers, where the files are and the commands to try next
// (`program` is how the user runs kto, e.g. "./build/kto").
std::string demo_report(const DemoResult& result, const std::string& program);

}  // namespace kto
