// Sampling and scoring the demo model (see demo_eval.h).
#include "demo/demo_eval.h"

#include <cmath>

#include "infer/sampler.h"
#include "util/progress.h"

namespace kto {
namespace {

// One answer: prefill the prompt, then sample until EOS or max_chars + 1 tokens (an answer
// that never ends is returned as generated, and is wrong).
std::string answer_one(const Answering& who, const std::vector<int32_t>& prompt, Sampler& sampler, KvCache& cache) {
  cache.n_tokens = 0;
  HostTensor logits = who.model->decode(cache, prompt, who.adapter);
  std::vector<int32_t> out;
  const auto eos = who.tokenizer->eos_id();
  for (int i = 0; i <= who.max_answer_chars; ++i) {
    const int32_t token = sampler.sample(std::span<float>(logits.f32(), static_cast<size_t>(logits.numel())));
    if (eos && token == *eos) break;
    out.push_back(token);
    const int32_t next[1] = {token};
    logits = who.model->decode(cache, next, who.adapter);
  }
  return who.tokenizer->decode(out, SkipSpecial::Yes);
}

}  // namespace

AnswerSet demo_answer(const Answering& who, const std::vector<Problem>& problems, int64_t per_question, double temperature,
                      uint64_t seed, ProgressBar* progress) {
  AnswerSet out;
  Sampler sampler(SamplingOptions{temperature, 0, 1.0, seed});
  KvCache cache = who.model->new_cache(64);
  for (size_t q = 0; q < problems.size(); ++q) {
    const std::vector<int32_t> prompt = who.tokenizer->encode(problems[q].prompt(), AddSpecial::Yes);
    for (int64_t k = 0; k < per_question; ++k) {
      out.answers.push_back(answer_one(who, prompt, sampler, cache));
      out.n_right += ArithmeticTask::is_right(problems[q], out.answers.back()) ? 1 : 0;
    }
    if (progress) progress->update(static_cast<int64_t>(q + 1));
  }
  return out;
}

double demo_mean_p_right(const Answering& who, const std::vector<Problem>& problems) {
  if (problems.empty()) return 0.0;
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> n_prompt;
  for (const Problem& p : problems) {
    std::vector<int32_t> ids = who.tokenizer->encode(p.prompt(), AddSpecial::Yes);
    n_prompt.push_back(static_cast<int32_t>(ids.size()));
    for (int32_t t : who.tokenizer->encode(p.answer(), AddSpecial::No)) ids.push_back(t);
    if (const auto eos = who.tokenizer->eos_id()) ids.push_back(*eos);
    seqs.push_back(std::move(ids));
  }
  const SequenceScores scores = who.model->sequence_scores(PackedBatch::from_sequences(seqs), n_prompt, who.adapter);
  double sum = 0.0;
  for (double l : scores.logps) sum += std::exp(l);
  return sum / static_cast<double>(problems.size());
}

}  // namespace kto
