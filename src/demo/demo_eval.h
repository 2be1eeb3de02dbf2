// Asking the demo model its questions: sampled answers (temperature 1, as KTO's data is made),
// greedy answers, and the log-probability of the right answer — with or without a LoRA adapter
// (applied unmerged, as PEFT's PeftModel runs it). Sampling runs one question at a time through
// the KV cache (Model::decode), seeded, so a run is reproducible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "demo/demo_task.h"
#include "model/lora.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kto {

class ProgressBar;

struct AnswerSet {
  std::vector<std::string> answers;  // [questions × per_question], question-major
  int64_t n_right = 0;
  double accuracy() const { return answers.empty() ? 0.0 : static_cast<double>(n_right) / static_cast<double>(answers.size()); }
};

struct Answering {
  const Model* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  const LoraAdapter* adapter = nullptr;  // nullptr: the model alone
  int max_answer_chars = 4;
};

// `per_question` answers to each problem, sampled at temperature 1 (or greedy when
// temperature <= 0) with `seed`; advances `progress` by one per question when given.
AnswerSet demo_answer(const Answering& who, const std::vector<Problem>& problems, int64_t per_question,
                      double temperature, uint64_t seed, ProgressBar* progress);

// Mean over problems of p(right answer + EOS | prompt): the expected accuracy of answers
// sampled at temperature 1, computed exactly instead of by sampling.
double demo_mean_p_right(const Answering& who, const std::vector<Problem>& problems);

}  // namespace kto
