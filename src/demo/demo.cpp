// The demo pipeline (see demo.h): each stage prints a phase line, trains through the same
// Trainer and file layout as `kto train` (train/train_run.h), and leaves a normal run behind.
#include "demo/demo.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "backend/ops.h"
#include "demo/demo_eval.h"
#include "demo/demo_model.h"
#include "demo/demo_stage.h"
#include "demo/demo_task.h"
#include "formats/hf_cache.h"
#include "util/files.h"
#include "util/progress.h"

namespace kto {
namespace {

struct DemoPlan {
  std::string device = "auto";  // where the stages run (model/device.h)
  TinyLlamaShape shape;
  int digits = 3;
  double noise = 0.4;  // share of SFT answers that forget their carries
  int64_t sft_examples = 0, sft_batch = 32;
  double sft_epochs = 1, sft_lr = 3e-3;
  int64_t kto_questions = 0, kto_samples = 4, kto_batch = 16, lora_r = 8;
  double kto_epochs = 1, kto_lr = 2e-3, beta = 0.1;
  int64_t eval_questions = 0, shown = 6;
};

DemoPlan plan_for(DemoScale scale) {
  DemoPlan p;
  if (scale == DemoScale::Quick) {
    p.shape = {32, 1, 2, 64, 32};
    p.digits = 1, p.sft_examples = 80, p.sft_batch = 16, p.sft_epochs = 10, p.sft_lr = 1e-2;
    p.kto_questions = 16, p.kto_samples = 2, p.kto_batch = 8, p.lora_r = 4, p.eval_questions = 12, p.shown = 3;
    return p;
  }
  // Tuned on 2 CPU cores (README "kto demo"): SFT escapes its loss plateau for every seed
  // tried, KTO then lifts sampled accuracy by 0.2-0.3.
  p.shape = {96, 4, 4, 256, 32};
  p.digits = 2, p.sft_examples = 8000, p.sft_epochs = 16, p.sft_lr = 1e-3;
  p.kto_questions = 1500, p.kto_epochs = 2, p.kto_lr = 3e-4, p.beta = 1.0, p.eval_questions = 300;
  return p;
}

void write_jsonl(const std::string& path, const std::vector<nlohmann::json>& rows) {
  std::string text;
  for (const nlohmann::json& r : rows) text += r.dump() + "\n";
  file_write_atomic(path, text);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct Paths {
  std::string root, init, sft, kto, data, sft_data, kto_data, kto_eval, sft_yaml, kto_yaml, summary;
};

Paths paths_for(const std::string& root) {
  const std::string data = path_join(root, "data");
  return {root, path_join(root, "model-init"), path_join(root, "sft"), path_join(root, "kto"), data,
          path_join(data, "sft_train.jsonl"), path_join(data, "kto_train.jsonl"), path_join(data, "kto_eval.jsonl"),
          path_join(root, "sft.yaml"), path_join(root, "kto.yaml"), path_join(root, "demo_summary.json")};
}

void clear_previous(const Paths& p) {
  for (const std::string& dir : {p.init, p.sft, p.kto, p.data}) std::filesystem::remove_all(dir);
  for (const std::string& file : {p.sft_yaml, p.kto_yaml, p.summary}) std::filesystem::remove(file);
  std::filesystem::create_directories(p.data);
}

TrainConfig sft_config(const DemoPlan& plan, const Paths& p, uint64_t seed) {
  TrainConfig c;
  c.objective = "sft", c.finetuning_type = "full";
  c.model_name_or_path = p.init, c.dataset_name = p.sft_data, c.output_dir = p.sft;
  c.learning_rate = plan.sft_lr, c.lr_scheduler_type = "cosine", c.warmup_ratio = 0.05;
  c.per_device_train_batch_size = plan.sft_batch, c.num_train_epochs = plan.sft_epochs, c.max_length = 32;
  c.logging_steps = 25, c.save_steps = 1000000, c.save_total_limit = 1, c.seed = static_cast<int64_t>(seed);
  c.device = plan.device;
  return c;
}

TrainConfig kto_config(const DemoPlan& plan, const Paths& p, uint64_t seed) {
  TrainConfig c;
  c.model_name_or_path = p.sft, c.dataset_name = p.kto_data, c.eval_dataset = p.kto_eval, c.output_dir = p.kto;
  c.beta = plan.beta, c.learning_rate = plan.kto_lr, c.lr_scheduler_type = "cosine", c.warmup_ratio = 0.1;
  c.per_device_train_batch_size = plan.kto_batch, c.per_device_eval_batch_size = 32, c.num_train_epochs = plan.kto_epochs;
  c.max_length = 32, c.logging_steps = 10, c.save_steps = 1000000, c.save_total_limit = 1, c.eval_steps = 1000000;
  c.lora_r = plan.lora_r, c.lora_alpha = static_cast<double>(2 * plan.lora_r), c.seed = static_cast<int64_t>(seed);
  c.device = plan.device;
  return c;
}

void phase(int n, const std::string& text) { std::fprintf(stderr, "\n[%d/6] %s\n", n, text.c_str()); }

// Stage 3: the SFT model's sampled answers, labelled, as KTO rows (train) and the held-out
// questions' answers (eval; their accuracy is the "before" accuracy).
AnswerSet make_kto_data(const DemoPlan& plan, const Paths& p, ArithmeticTask& task, const Answering& sft,
                        const std::vector<Problem>& kto_q, const std::vector<Problem>& eval_q, uint64_t seed, DemoResult& r) {
  ProgressBar bar("sampling", static_cast<int64_t>(kto_q.size() + eval_q.size()));
  const AnswerSet train = demo_answer(sft, kto_q, plan.kto_samples, 1.0, seed + 11, &bar);
  AnswerSet eval = demo_answer(sft, eval_q, 1, 1.0, seed + 12, nullptr);
  bar.finish();
  // An empty answer (EOS at once) is written as the EOS text: a completion must not be empty,
  // and "<|eos|>" tokenises to exactly what the model produced (no second EOS is appended).
  auto row = [&](const Problem& q, const std::string& answer) {
    return nlohmann::json{{"prompt", q.prompt()}, {"completion", answer.empty() ? sft.tokenizer->eos_token() : answer},
                          {"label", task.is_right(q, answer)}};
  };
  std::vector<nlohmann::json> rows, eval_rows;
  for (size_t i = 0; i < train.answers.size(); ++i) rows.push_back(row(kto_q[i / static_cast<size_t>(plan.kto_samples)], train.answers[i]));
  for (size_t i = 0; i < eval.answers.size(); ++i) eval_rows.push_back(row(eval_q[i], eval.answers[i]));
  write_jsonl(p.kto_data, rows);
  write_jsonl(p.kto_eval, eval_rows);
  r.n_kto_examples = static_cast<int64_t>(rows.size()), r.n_kto_desirable = train.n_right;
  return eval;
}

DemoMeasure measure(const Answering& who, const std::vector<Problem>& eval_q, const AnswerSet& sampled) {
  DemoMeasure m;
  m.sampled_accuracy = sampled.accuracy();
  m.greedy_accuracy = demo_answer(who, eval_q, 1, 0.0, 0, nullptr).accuracy();
  m.mean_p_right = demo_mean_p_right(who, eval_q);
  return m;
}

// Stages 1-2: the model from nothing, its noisy SFT data, SFT of every weight.
void stage_sft(const DemoPlan& plan, const Paths& p, uint64_t seed, ArithmeticTask& task, const std::vector<Problem>& sft_q,
               DemoResult& r) {
  const ModelConfig config = demo_model_config(plan.shape);
  phase(1, str_cat("a byte-level tokenizer and a tiny Llama: ", plan.shape.n_layers, " layers, hidden ", plan.shape.hidden_size,
                   ", ", config.n_params(), " parameters, random weights → ", p.init));
  demo_write_tokenizer(p.init);
  demo_save_model(config, demo_init_weights(config, seed), p.init);
  std::vector<nlohmann::json> sft_rows;
  for (const Problem& q : sft_q) sft_rows.push_back({{"prompt", q.prompt()}, {"completion", task.noisy_answer(q, plan.noise)}});
  write_jsonl(p.sft_data, sft_rows);
  phase(2, str_cat("SFT from scratch (every weight) on ", sft_q.size(), " additions; ", static_cast<int>(plan.noise * 100),
                   "% of the sums that need a carry are answered without it → ", p.sft));
  r.sft_seconds = demo_train_stage(sft_config(plan, p, seed), p.sft_yaml).seconds;
}

// Stage 5: KTO of a LoRA adapter on the labelled answers. With fewer right than wrong
// answers, desirable_weight follows the KTO paper's balance rule (λ_D·n_D ≈ λ_U·n_U), which
// keeps a weaker SFT model from being pushed down as a whole.
void stage_kto(const DemoPlan& plan, const Paths& p, uint64_t seed, DemoResult& r) {
  TrainConfig kto = kto_config(plan, p, seed);
  const int64_t n_undesirable = r.n_kto_examples - r.n_kto_desirable;
  if (r.n_kto_desirable > 0 && n_undesirable > r.n_kto_desirable) {
    kto.desirable_weight = std::round(100.0 * static_cast<double>(n_undesirable) / static_cast<double>(r.n_kto_desirable)) / 100.0;
  }
  phase(5, str_cat("KTO of a LoRA adapter (r=", kto.lora_r, ", beta ", kto.beta, ") on the model's own answers → ", p.kto));
  const StageOutcome run = demo_train_stage(kto, p.kto_yaml);
  r.kto_seconds = run.seconds;
  auto margin = [](const std::map<std::string, double>& eval) {
    auto it = eval.find("eval_rewards/margins");
    return it == eval.end() ? 0.0 : it->second;
  };
  r.before.reward_margin = margin(run.eval_before);
  r.after.reward_margin = margin(run.eval_after);
}

}  // namespace

DemoResult demo_run(const DemoOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  DemoPlan plan = plan_for(options.scale);
  plan.device = options.device;
  const DeviceChoice device = device_resolve(plan.device);
  const Paths p = paths_for(options.output_dir);
  DemoResult r;
  cpu_set_num_threads(options.threads);
  const std::string where = device.kind == DeviceKind::Cpu
                                ? str_cat("this CPU (", options.threads, " of ", std::thread::hardware_concurrency(), " threads)")
                                : device_name(device) + " (bf16)";
  std::fprintf(stderr, "kto demo · SFT, then KTO, of a tiny Llama on %d-digit additions, on %s · output: %s\n", plan.digits,
               where.c_str(), p.root.c_str());
  clear_previous(p);
  ArithmeticTask task(plan.digits, options.seed);
  const std::vector<Problem> eval_q = task.draw(plan.eval_questions);
  const std::vector<Problem> sft_q = task.draw(plan.sft_examples, eval_q);
  stage_sft(plan, p, options.seed, task, sft_q, r);

  const Tokenizer tokenizer = Tokenizer::load(p.sft);
  const Model model = Model::load(p.sft, device);
  const Answering sft_who{&model, &tokenizer, nullptr, task.max_answer_chars()};
  std::vector<Problem> seen = eval_q;
  seen.insert(seen.end(), sft_q.begin(), sft_q.end());
  const std::vector<Problem> kto_q = task.draw(plan.kto_questions, seen);
  phase(3, str_cat("the SFT model answers ", kto_q.size(), " new questions ", plan.kto_samples, " times each; answers labelled right "
                   "(desirable) or wrong (undesirable) → ", p.kto_data));
  auto t = std::chrono::steady_clock::now();
  const AnswerSet before_answers = make_kto_data(plan, p, task, sft_who, kto_q, eval_q, options.seed, r);
  r.sampling_seconds = seconds_since(t);
  std::fprintf(stderr, "  %lld answers: %lld right, %lld wrong\n", (long long)r.n_kto_examples, (long long)r.n_kto_desirable,
               (long long)(r.n_kto_examples - r.n_kto_desirable));

  phase(4, str_cat("held-out accuracy before KTO (", eval_q.size(), " questions the model never saw)"));
  r.before = measure(sft_who, eval_q, before_answers);
  std::fprintf(stderr, "  sampled %.1f%%  greedy %.1f%%  mean p(right answer) %.3f\n", 100 * r.before.sampled_accuracy,
               100 * r.before.greedy_accuracy, r.before.mean_p_right);
  stage_kto(plan, p, options.seed, r);

  phase(6, "held-out accuracy after KTO (the same questions, the same sampling seed)");
  const LoraAdapter adapter = lora_load_peft(p.kto, model.config());
  const Answering kto_who{&model, &tokenizer, &adapter, task.max_answer_chars()};
  ProgressBar bar("answering", static_cast<int64_t>(eval_q.size()));
  const AnswerSet after_answers = demo_answer(kto_who, eval_q, 1, 1.0, options.seed + 12, &bar);
  bar.finish();
  const double margin_after = r.after.reward_margin;
  r.after = measure(kto_who, eval_q, after_answers);
  r.after.reward_margin = margin_after;
  for (size_t i = 0; i < eval_q.size() && static_cast<int64_t>(i) < plan.shown; ++i) {
    r.samples.push_back({eval_q[i].prompt(), eval_q[i].answer(), before_answers.answers[i], after_answers.answers[i]});
  }
  r.n_eval_questions = static_cast<int64_t>(eval_q.size());
  r.output_dir = p.root, r.model_dir = p.sft, r.adapter_dir = p.kto, r.data_dir = p.data, r.kto_config = p.kto_yaml;
  r.sft_config = p.sft_yaml, r.summary_path = p.summary;
  r.total_seconds = seconds_since(start);
  demo_write_summary(r, options, p.summary);
  return r;
}

}  // namespace kto
