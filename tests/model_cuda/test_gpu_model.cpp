// The model and the trainer on a GPU against outside references (skipped without a GPU):
// logits of the four fixture architectures against transformers' (make_models.py), KV-cache
// decode logits against the same, LoRA log-probs and gradients against PEFT (make_lora_grads.py),
// and a 10-step KTO run against the real TRL 1.9 KTOTrainer's log (make_kto_steps.py), plus the
// same run on the CPU reference, resume on the GPU, and the error a batch too large gives.
// Tolerances are bf16's (DESIGN.md §4: bf16 weights and activations, fp32 accumulation): the
// fixtures were made in fp32, so each check states the bound and prints what it measured.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/dataset.h"
#include "formats/safetensors.h"
#include "model/device.h"
#include "model/lora.h"
#include "model/model.h"
#include "gpu_test_util.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {
namespace {

using nlohmann::json;


using test::kGpu;
using test::read_f32;
using test::scaled_error;

class GpuFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    KTO_REQUIRE_GPU();
    dir_ = test::fixture("models/" + GetParam());
    expected_ = json_read_file(dir_ + "/expected.json");
    model_ = std::make_unique<Model>(Model::load(dir_, kGpu));
  }
  std::string dir_;
  json expected_;
  std::unique_ptr<Model> model_;
};

// bf16 rounds weights and every activation to 8 significant bits (relative 2^-9); through two
// layers the logits move by about 1% of their scale. Bound: 3%.
constexpr double kLogitTol = 3e-2;

TEST_P(GpuFixture, PackedLogitsMatchTransformers) {
  const PackedBatch batch = PackedBatch::from_sequences(expected_["packed"]["sequences"].get<std::vector<std::vector<int32_t>>>());
  const HostTensor logits = model_->forward_logits(batch);
  const std::vector<float> want = read_f32(dir_ + "/" + expected_["packed"]["logits_file"].get<std::string>());
  ASSERT_EQ(static_cast<size_t>(logits.numel()), want.size());
  const double err = scaled_error(logits.f32(), want.data(), want.size());
  std::printf("[%s] GPU packed logits: max |gpu - hf| / max |hf| = %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, kLogitTol);
}

// Token-by-token decoding through the GPU KV cache gives the logits of the full forward
// (transformers' packed logits of the first sequence).
TEST_P(GpuFixture, CachedDecodeLogitsMatchTransformers) {
  const auto sequences = expected_["packed"]["sequences"].get<std::vector<std::vector<int32_t>>>();
  const std::vector<float> want = read_f32(dir_ + "/" + expected_["packed"]["logits_file"].get<std::string>());
  const std::vector<int32_t>& seq = sequences[0];
  const int64_t vocab = model_->config().vocab_size;
  KvCache cache = model_->new_cache(static_cast<int64_t>(seq.size()));
  double worst = 0.0;
  // The first half as one prefill, then one token at a time.
  const size_t prefill = seq.size() / 2;
  HostTensor logits = model_->decode(cache, std::span<const int32_t>(seq.data(), prefill));
  worst = std::max(worst, scaled_error(logits.f32(), want.data() + (prefill - 1) * vocab, static_cast<size_t>(vocab)));
  for (size_t t = prefill; t < seq.size(); ++t) {
    logits = model_->decode(cache, std::span<const int32_t>(&seq[t], 1));
    worst = std::max(worst, scaled_error(logits.f32(), want.data() + t * vocab, static_cast<size_t>(vocab)));
  }
  std::printf("[%s] GPU cached decode logits: worst scaled error %.3g over %zu positions\n", GetParam().c_str(), worst,
              seq.size() - prefill + 1);
  EXPECT_LE(worst, kLogitTol);
}

// LoRA scores and gradients of Σ_s c_s · logp_s against PEFT autograd (fp32). Log-probs are sums
// over tokens of bf16-computed values: bound 1% of max(1, |logp|). Gradients: per tensor, the
// largest difference within 8% of the tensor's largest entry (bf16 activations and activation
// gradients through both layers; the LoRA gradients themselves accumulate in fp32; measured on an
// H100/H200: 3.8–6.2%). A wrong term or sign shows as an error of order 100%.
TEST_P(GpuFixture, LoraScoresAndGradientsMatchPeft) {
  const json e = json_read_file(test::fixture("lora/" + GetParam() + "/expected.json"));
  const PackedBatch batch = PackedBatch::from_sequences(e["sequences"].get<std::vector<std::vector<int32_t>>>());
  const auto n_prompt = e["n_prompt"].get<std::vector<int32_t>>();
  model_->set_head_chunk_rows(4);
  LoraAdapter adapter = lora_load_peft(test::fixture("lora/" + GetParam() + "/adapter_init"), model_->config());
  adapter.zero_grad();
  const TrainPass pass = model_->forward_train(batch, n_prompt, adapter);
  double worst_logp = 0.0;
  for (size_t s = 0; s < n_prompt.size(); ++s) {
    const double want = e["logps"][s];
    const double err = std::abs(pass.scores.logps[s] - want) / std::max(1.0, std::abs(want));
    worst_logp = std::max(worst_logp, err);
    EXPECT_EQ(pass.scores.n_tokens[s], e["n_completion_tokens"][s].get<int64_t>());
  }
  EXPECT_LE(worst_logp, 1e-2);
  const SequenceScores eval = model_->sequence_scores(batch, n_prompt, &adapter);
  for (size_t s = 0; s < n_prompt.size(); ++s) {
    EXPECT_NEAR(eval.logps[s], pass.scores.logps[s], 1e-3 * std::max(1.0, std::abs(pass.scores.logps[s])));
  }
  model_->backward_train(pass, e["coefficients"].get<std::vector<double>>(), adapter);
  const std::vector<float> want = read_f32(test::fixture("lora/" + GetParam() + "/" + e["grads_file"].get<std::string>()));
  const std::vector<NamedTensor> grads = adapter.gradients();
  double worst = 0.0;
  for (const json& g : e["grads"]) {
    const std::string name = g["name"];
    const auto it = std::find_if(grads.begin(), grads.end(), [&](const NamedTensor& t) { return t.name == name; });
    ASSERT_NE(it, grads.end()) << name;
    const double err = scaled_error(it->tensor.f32(), want.data() + g["offset"].get<size_t>(),
                                    static_cast<size_t>(it->tensor.numel()));
    worst = std::max(worst, err);
    EXPECT_LE(err, 8e-2) << name;
  }
  std::printf("[%s] GPU LoRA: logp error %.3g, worst gradient error %.3g over %zu tensors\n", GetParam().c_str(),
              worst_logp, worst, grads.size());
}

// Gradient checkpointing recomputes each layer in the backward from its saved input: the same
// kernels on the same inputs, so the gradients equal those of the pass that kept everything,
// bit for bit — with LoRA dropout too (the masks are drawn again from the same seed).
TEST_P(GpuFixture, CheckpointingGivesTheSameGradients) {
  const json e = json_read_file(test::fixture("lora/" + GetParam() + "/expected.json"));
  const PackedBatch batch = PackedBatch::from_sequences(e["sequences"].get<std::vector<std::vector<int32_t>>>());
  const auto n_prompt = e["n_prompt"].get<std::vector<int32_t>>();
  const auto coefficients = e["coefficients"].get<std::vector<double>>();
  for (const double dropout : {0.0, 0.1}) {
    std::vector<std::vector<float>> grads[2];
    std::vector<double> logps[2];
    for (const Checkpointing ckpt : {Checkpointing::Off, Checkpointing::On}) {
      LoraAdapter adapter = lora_load_peft(test::fixture("lora/" + GetParam() + "/adapter_init"), model_->config());
      adapter.config.dropout = dropout;
      adapter.zero_grad();
      DecoderTrainOptions options{7, ckpt};
      const TrainPass pass = model_->forward_train(batch, n_prompt, adapter, options);
      model_->backward_train(pass, coefficients, adapter);
      const size_t k = ckpt == Checkpointing::On ? 1 : 0;
      logps[k] = pass.scores.logps;
      for (const NamedTensor& g : adapter.gradients()) {
        grads[k].emplace_back(g.tensor.f32(), g.tensor.f32() + g.tensor.numel());
      }
    }
    EXPECT_EQ(logps[0], logps[1]) << "dropout " << dropout;
    ASSERT_EQ(grads[0].size(), grads[1].size());
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_EQ(grads[0][i], grads[1][i]) << "tensor " << i << " dropout " << dropout;
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, GpuFixture, ::testing::Values("llama", "mistral", "qwen2", "qwen3"),
                         [](const auto& param_info) { return param_info.param; });

// Full fine-tuning on the GPU against transformers' .grad of every parameter (make_sft_grads.py):
// the SFT loss within 1%, and each weight's gradient within 10% of the tensor's largest entry
// (bf16 activations and activation gradients; fp32 parameter gradients; norm weights and biases
// sum bf16 terms over every token; measured on an H200: worst 5.4% and 6.8%).
class GpuFullGrads : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuFullGrads, EveryGradientMatchesTransformers) {
  KTO_REQUIRE_GPU();
  const std::string dir = test::fixture("sft/" + GetParam());
  const json e = json_read_file(dir + "/expected.json");
  Model model = Model::load(dir + "/model", kGpu);
  model.set_head_chunk_rows(4);
  const PackedBatch batch = PackedBatch::from_sequences(e["sequences"].get<std::vector<std::vector<int32_t>>>());
  const auto n_prompt = e["n_prompt"].get<std::vector<int32_t>>();
  const TrainPass pass = model.forward_train_full(batch, n_prompt);
  int64_t n_tokens = 0;
  double logp_sum = 0.0;
  for (size_t i = 0; i < n_prompt.size(); ++i) n_tokens += pass.scores.n_tokens[i], logp_sum += pass.scores.logps[i];
  ASSERT_EQ(n_tokens, e["num_items_in_batch"].get<int64_t>());
  const double n = static_cast<double>(n_tokens), loss = -logp_sum / n, want_loss = e["loss"];
  EXPECT_LE(std::abs(loss - want_loss), 1e-2 * std::max(1.0, want_loss));
  Weights grads = weights_zeros_like(model.weights());
  model.backward_train_full(pass, std::vector<double>(n_prompt.size(), -1.0 / n), grads);
  const std::vector<float> want = read_f32(dir + "/" + e["grads_file"].get<std::string>());
  const std::vector<NamedTensor> ours = grads.parameters();
  ASSERT_EQ(ours.size(), e["grads"].size());
  double worst = 0.0;
  std::string worst_name;
  for (const json& g : e["grads"]) {
    const std::string name = g["name"];
    const auto it = std::find_if(ours.begin(), ours.end(), [&](const NamedTensor& t) { return t.name == name; });
    ASSERT_NE(it, ours.end()) << name;
    const double err = scaled_error(it->tensor.f32(), want.data() + g["offset"].get<size_t>(),
                                    static_cast<size_t>(it->tensor.numel()));
    if (err > worst) worst = err, worst_name = name;
    EXPECT_LE(err, 1e-1) << name;
  }
  std::printf("[%s] GPU full fine-tuning: loss %.6g (transformers %.6g), worst gradient error %.3g (%s) over %zu tensors\n",
              GetParam().c_str(), loss, want_loss, worst, worst_name.c_str(), ours.size());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuFullGrads, ::testing::Values("llama_bias", "qwen3_tied"),
                         [](const auto& param_info) { return param_info.param; });

// ---------------------------------------------------------------------------------------------
// Training: the TRL fixture's 10 steps (tests/fixtures/kto_steps/base), as test_kto_trl_parity.

TrainConfig trl_config(const std::string& variant, const std::string& output_dir) {
  const json trl = json_read_file(test::fixture("kto_steps/" + variant + "/kto_config.json"));
  TrainConfig c;
  c.model_name_or_path = test::fixture("models/llama");
  c.dataset_name = test::fixture("kto_steps/train.jsonl");
  c.output_dir = output_dir;
  c.trl_compat = true;
  c.per_device_train_batch_size = trl["per_device_train_batch_size"];
  c.gradient_accumulation_steps = trl["gradient_accumulation_steps"];
  c.max_length = trl["max_length"];
  c.beta = trl["beta"];
  c.learning_rate = trl["learning_rate"];
  c.lr_scheduler_type = trl["lr_scheduler_type"];
  c.warmup_steps = trl["warmup_steps"];
  c.max_steps = trl["max_steps"];
  c.logging_steps = trl["logging_steps"];
  c.max_grad_norm = trl["max_grad_norm"];
  c.weight_decay = trl["weight_decay"];
  c.loss_type = trl["loss_type"];
  c.precompute_ref_log_probs = trl["precompute_ref_log_probs"];
  c.save_steps = 0;
  return c;
}

struct TrainRun {
  json log;
  std::string output_dir;  // holds the final adapter
};

TrainRun train(const TrainConfig& c, DeviceChoice device, const std::string& resume_from = "") {
  log_set_level(LogLevel::Warn);
  Model model = Model::load(c.model_name_or_path, device);
  Tokenizer tokenizer = Tokenizer::load(c.model_name_or_path);
  DataOptions options;
  options.truncation.max_length = c.max_length;
  options.trl_compat = TrlCompat::Yes;
  KtoDatasets data = load_kto_datasets(c.dataset_name, "", 0.0, tokenizer, options);
  Trainer trainer(c, model, data, lora_load_peft(test::fixture("kto_steps/base/adapter_init"), model.config()));
  if (!resume_from.empty()) trainer.resume(resume_from);
  trainer.train();
  return {trainer.state().log_history, c.output_dir};
}

// Logged metrics are sums of bf16 log-probs: `logps/*` within 1% of their size, rewards (β times
// a difference of two such sums) and the loss within β·1%·|logps| plus 1e-3, kl likewise.
double metric_tolerance(const std::string& key, double want, double logp_scale, double beta) {
  if (key == "learning_rate" || key == "epoch" || key == "step" || key == "num_tokens") return 1e-9 * std::max(1.0, std::abs(want));
  if (key.rfind("logps/", 0) == 0) return 1e-2 * std::max(1.0, std::abs(want));
  if (key.rfind("logits/", 0) == 0 || key == "entropy") return 3e-2 * std::max(1.0, std::abs(want));
  if (key == "grad_norm") return 0.1 * std::abs(want) + 1e-3;
  return beta * 1e-2 * logp_scale + 1e-3;  // loss, kl, rewards/*, margins
}

TEST(GpuKto, TenStepsTrackTrlAndTheCpuRun) {
  KTO_REQUIRE_GPU();
  const TrainConfig c = trl_config("base", test::temp_dir("gpu-kto"));
  const json trl = json_read_file(test::fixture("kto_steps/base/log_history.json"))["log_history"];
  const TrainRun gpu = train(c, kGpu);
  TrainConfig cpu_config = c;
  cpu_config.output_dir = test::temp_dir("cpu-kto");
  const TrainRun cpu = train(cpu_config, DeviceChoice{});
  ASSERT_EQ(gpu.log.size(), trl.size());
  double logp_scale = 1.0;
  for (const json& step : trl) {
    for (const char* key : {"logps/chosen", "logps/rejected"}) {
      if (step.contains(key)) logp_scale = std::max(logp_scale, std::abs(step[key].get<double>()));
    }
  }
  std::printf("step  key                     TRL           CPU           GPU\n");
  for (size_t i = 0; i < trl.size(); ++i) {
    for (auto& [key, value] : trl[i].items()) {
      ASSERT_TRUE(gpu.log[i].contains(key)) << key;
      const double want = value.get<double>(), got = gpu.log[i][key].get<double>(), on_cpu = cpu.log[i][key].get<double>();
      if (key == "loss" || key == "rewards/margins" || key == "kl" || key == "logps/chosen") {
        std::printf("%4zu  %-20s %13.6g %13.6g %13.6g\n", i + 1, key.c_str(), want, on_cpu, got);
      }
      EXPECT_LE(std::abs(got - want), metric_tolerance(key, want, logp_scale, c.beta)) << "step " << i + 1 << " " << key;
    }
  }
}

// Five steps, a checkpoint, a new process-worth of state resuming from it: the same adapter as
// ten steps straight (the GPU program is deterministic: fixed reduction orders, no atomics on
// the LoRA gradients).
TEST(GpuKto, ResumeContinuesTheRun) {
  KTO_REQUIRE_GPU();
  TrainConfig straight = trl_config("base", test::temp_dir("gpu-straight"));
  const TrainRun whole = train(straight, kGpu);
  TrainConfig first = trl_config("base", test::temp_dir("gpu-resume"));
  first.save_steps = 5;
  first.max_steps = 10;
  {
    TrainConfig half = first;
    half.max_steps = 10;
    // Stop after 5 steps the way a kill would: train to the checkpoint only.
    Model model = Model::load(half.model_name_or_path, kGpu);
    Tokenizer tokenizer = Tokenizer::load(half.model_name_or_path);
    DataOptions options;
    options.truncation.max_length = half.max_length;
    options.trl_compat = TrlCompat::Yes;
    KtoDatasets data = load_kto_datasets(half.dataset_name, "", 0.0, tokenizer, options);
    Trainer trainer(half, model, data, lora_load_peft(test::fixture("kto_steps/base/adapter_init"), model.config()));
    TrainerEvents events;
    events.on_step = [](const TrainerState& s) {
      if (s.global_step == 5) Trainer::request_stop();
    };
    trainer.train(events);
    ASSERT_EQ(trainer.state().global_step, 5);
  }
  const TrainRun resumed = train(first, kGpu, first.output_dir + "/checkpoint-5");
  const ModelConfig config = model_config_load(test::fixture("models/llama"));
  const LoraAdapter whole_adapter = lora_load_peft(whole.output_dir, config);
  const LoraAdapter resumed_adapter = lora_load_peft(resumed.output_dir, config);
  const std::vector<NamedTensor> a = whole_adapter.parameters(), b = resumed_adapter.parameters();
  ASSERT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, scaled_error(b[i].tensor.f32(), a[i].tensor.f32(), static_cast<size_t>(a[i].tensor.numel())));
  }
  std::printf("resumed vs straight adapter: worst scaled difference %.3g\n", worst);
  EXPECT_LE(worst, 1e-6);
}

// A pass larger than the GPU: one clear OutOfMemory naming the buffer, the need, what is free and
// what to change.
TEST(GpuErrors, BatchTooLargeSaysWhatToChange) {
  KTO_REQUIRE_GPU();
  Model model = Model::load(test::fixture("models/llama"), kGpu);
  LoraConfig config;
  LoraAdapter adapter = lora_init(model.config(), config, 1);
  try {
    model.reserve(int64_t{1} << 34, 1024, &adapter);
    FAIL() << "reserving 2^34 tokens should not fit";
  } catch (const Error& e) {
    const std::string what = e.what();
    std::printf("%s\n", what.c_str());
    EXPECT_EQ(e.kind(), ErrorKind::OutOfMemory);
    EXPECT_NE(what.find("saved activations"), std::string::npos) << what;
    EXPECT_NE(what.find("free"), std::string::npos) << what;
    EXPECT_NE(what.find("per_device_train_batch_size"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace kto
