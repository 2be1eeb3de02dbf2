// The demo's closing report: the before/after table, answers side by side, the files, and the
// commands to try next.
#include <cmath>
#include <cstdio>

#include "demo/demo.h"

namespace kto {
namespace {

std::string line(const char* fmt, auto... args) {
  if constexpr (sizeof...(args) == 0) {
    return std::string(fmt) + "\n";  // no format: -Wformat-security (on in Ubuntu's gcc)
  } else {
    char buf[256];
    std::snprintf(buf, sizeof buf, fmt, args...);
    return std::string(buf) + "\n";
  }
}

const char* mark(const DemoSample& s, const std::string& answer) { return answer == s.right ? "right" : "wrong"; }

std::string shown(const std::string& answer) { return answer.empty() ? "(empty)" : answer; }

}  // namespace

std::string demo_report(const DemoResult& r, const std::string& program) {
  std::string out = "\n";
  out += line("Held-out questions: %lld (never seen in SFT or KTO data)", (long long)r.n_eval_questions);
  out += line("  %-38s %12s %12s", "", "before KTO", "after KTO");
  out += line("  %-38s %11.1f%% %11.1f%%", "answer accuracy, sampled (temp. 1)", 100 * r.before.sampled_accuracy,
              100 * r.after.sampled_accuracy);
  out += line("  %-38s %11.1f%% %11.1f%%", "answer accuracy, greedy", 100 * r.before.greedy_accuracy, 100 * r.after.greedy_accuracy);
  out += line("  %-38s %12.3f %12.3f", "mean p(right answer)", r.before.mean_p_right, r.after.mean_p_right);
  out += line("  %-38s %12.3f %12.3f", "mean reward margin (right - wrong)", r.before.reward_margin, r.after.reward_margin);
  out += "\nSample answers (temperature 1):\n";
  out += line("  %-12s %-8s %-16s %-16s", "question", "right", "before KTO", "after KTO");
  for (const DemoSample& s : r.samples) {
    const std::string before = shown(s.before) + " (" + mark(s, s.before) + ")";
    const std::string after = shown(s.after) + " (" + mark(s, s.after) + ")";
    out += line("  %-12s %-8s %-16s %-16s", s.prompt.c_str(), s.right.c_str(), before.c_str(), after.c_str());
  }
  out += line("\nDone in %.0f s (SFT %.0f s, sampling %.0f s, KTO %.0f s). Everything is in %s:", r.total_seconds,
              r.sft_seconds, r.sampling_seconds, r.kto_seconds, r.output_dir.c_str());
  out += line("  %-28s the SFT model (HF format: config.json, model.safetensors, tokenizer.json)", r.model_dir.c_str());
  out += line("  %-28s the KTO LoRA adapter (PEFT), checkpoint, trainer_state.json, trainer_log.jsonl", r.adapter_dir.c_str());
  out += line("  %-28s SFT data, and the model's own answers labelled for KTO", r.data_dir.c_str());
  out += line("  %-28s the numbers above", r.summary_path.c_str());
  const std::string question = r.samples.empty() ? "12+34" : r.samples.front().prompt.substr(0, r.samples.front().prompt.size() - 1);
  out += "\nTry next:\n";
  out += line("  %s chat --model %s --adapter %s", program.c_str(), r.model_dir.c_str(), r.adapter_dir.c_str());
  out += line("      talk to the result: type a sum such as %s", question.c_str());
  out += line("  %s train %s", program.c_str(), r.kto_config.c_str());
  out += line("      rerun the KTO stage from the config it wrote (add output_dir=... to keep this run)");
  out += line("  %s train %s", program.c_str(), r.sft_config.c_str());
  out += line("      rerun SFT from scratch; objective: sft, finetuning_type: full");
  return out;
}

}  // namespace kto
