// The memory plan (model/memory_plan.h) against what the GPU model really allocates (skipped
// without a GPU): cuda_memory_stats() counts every DeviceBuffer byte, so after uploading the
// weights, after GpuModel::reserve and at the peak of a LoRA training forward, backward and the
// inference passes (and of a whole Trainer run) the bytes must equal the plan's, exactly — the
// plan mirrors the carving code term by term, so any difference is drift to fix in
// memory_plan.cpp. Also prints the CUDA context's measured size beside the plan's estimate.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "backend/cuda/context.h"
#include "data/dataset.h"
#include "model/device.h"
#include "model/lora.h"
#include "model/memory_plan.h"
#include "model/model.h"
#include "gpu_test_util.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/train_memory.h"
#include "train/train_run.h"
#include "train/trainer.h"
#include "util/log.h"

namespace kto {
namespace {

using test::kGpu;

// A shape with every optional part the plan counts: GQA, q/k/v biases, q/k norms, untied head;
// widths that are not multiples of 256 bytes.
ModelConfig test_shape() {
  ModelConfig c;
  c.model_type = "qwen3";
  c.vocab_size = 3001, c.hidden_size = 192, c.intermediate_size = 520, c.n_layers = 3;
  c.n_heads = 6, c.n_heads_kv = 2, c.head_dim = 32;
  c.qkv_bias = true, c.qk_norm = true;
  c.rms_norm_eps = 1e-6;
  return c;
}

HostTensor filled(Shape shape, float value) {
  HostTensor t(DType::F32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = value;
  return t;
}

Weights test_weights(const ModelConfig& c) {
  Weights w;
  w.embed = filled(Shape{c.vocab_size, c.hidden_size}, 0.01f);
  w.lm_head = filled(Shape{c.vocab_size, c.hidden_size}, 0.01f);
  w.final_norm = filled(Shape{c.hidden_size}, 1.0f);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights lw;
    lw.input_norm = filled(Shape{c.hidden_size}, 1.0f);
    lw.post_attention_norm = filled(Shape{c.hidden_size}, 1.0f);
    lw.q_norm = filled(Shape{c.head_dim}, 1.0f), lw.k_norm = filled(Shape{c.head_dim}, 1.0f);
    lw.q_proj = filled(Shape{c.q_dim(), c.hidden_size}, 0.01f), lw.q_bias = filled(Shape{c.q_dim()}, 0.0f);
    lw.k_proj = filled(Shape{c.kv_dim(), c.hidden_size}, 0.01f), lw.k_bias = filled(Shape{c.kv_dim()}, 0.0f);
    lw.v_proj = filled(Shape{c.kv_dim(), c.hidden_size}, 0.01f), lw.v_bias = filled(Shape{c.kv_dim()}, 0.0f);
    lw.o_proj = filled(Shape{c.hidden_size, c.q_dim()}, 0.01f);
    lw.gate_proj = filled(Shape{c.intermediate_size, c.hidden_size}, 0.01f);
    lw.up_proj = filled(Shape{c.intermediate_size, c.hidden_size}, 0.01f);
    lw.down_proj = filled(Shape{c.hidden_size, c.intermediate_size}, 0.01f);
    w.layers.push_back(std::move(lw));
  }
  return w;
}

int64_t allocated() { return cuda_memory_stats().allocated; }

struct PlanCase {
  const char* name;
  Checkpointing checkpointing;
  double dropout;
  std::vector<std::string> targets;
  BaseWeights base;
};

class MemoryPlanGpu : public ::testing::TestWithParam<PlanCase> {};

// Three sequences (37, 50 and 13 tokens; prompts 5, 20 and 3): T = 100, N = 72 scored rows.
TEST_P(MemoryPlanGpu, EveryByteOfAPassIsPlanned) {
  KTO_REQUIRE_GPU();
  const PlanCase& pc = GetParam();
  const ModelConfig c = test_shape();
  Weights weights = test_weights(c);
  if (pc.base != BaseWeights::Bf16) {
    Nf4QuantizeOptions nf4;
    nf4.double_quant = pc.base == BaseWeights::Nf4DoubleQuant;
    weights_quantize_nf4(weights, nf4);
  }
  std::vector<std::vector<int32_t>> sequences;
  for (int64_t len : {37, 50, 13}) {
    std::vector<int32_t> s;
    for (int64_t i = 0; i < len; ++i) s.push_back(static_cast<int32_t>((i * 37 + len) % c.vocab_size));
    sequences.push_back(s);
  }
  const PackedBatch batch = PackedBatch::from_sequences(sequences);
  const std::vector<int32_t> n_prompt{5, 20, 3};
  MemoryPlanInputs in;
  in.pass = {100, 72, {}};
  in.checkpointing = pc.checkpointing;
  in.lora = {8, pc.targets, pc.dropout};
  in.base = pc.base;
  const MemoryPlan plan = memory_plan(c, in);

  const int64_t before = allocated();
  cuda_memory_reset_peak();
  {
    Model model = Model::from_parts(c, std::move(weights));
    model.to_device(kGpu);
    EXPECT_EQ(allocated() - before, plan.weights + plan.cublas_workspace) << "weights buffer and cuBLAS workspace";
    LoraConfig lora;
    lora.rank = 8, lora.alpha = 16, lora.dropout = pc.dropout, lora.target_modules = pc.targets;
    LoraAdapter adapter = lora_init(c, lora, 3);
    model.reserve(in.pass.n_tokens, in.pass.n_head_rows, &adapter, pc.checkpointing);
    EXPECT_EQ(allocated() - before, plan.peak()) << "after reserve: + LoRA mirror, saved and scratch arenas";
    const TrainPass pass = model.forward_train(batch, n_prompt, adapter, DecoderTrainOptions{5, pc.checkpointing});
    model.backward_train(pass, std::vector<double>{1.0, -0.5, 0.25}, adapter);
    (void)model.sequence_scores(batch, n_prompt, &adapter);  // the KL pass
    (void)model.sequence_scores(batch, n_prompt, nullptr);   // the reference pass
    const int64_t measured = cuda_memory_stats().peak - before;
    std::printf("[%s] plan: weights %lld (dequant scratch %lld), LoRA %lld, saved %lld, scratch %lld (%s), cuBLAS %lld; "
                "predicted peak %lld, measured %lld\n",
                pc.name, (long long)plan.weights, (long long)plan.dequant_scratch, (long long)plan.lora,
                (long long)plan.saved, (long long)plan.scratch, plan.largest_scratch_use_name(),
                (long long)plan.cublas_workspace, (long long)plan.peak(), (long long)measured);
    EXPECT_EQ(measured, plan.peak()) << "the passes grew an arena past the plan";
  }
  EXPECT_EQ(allocated(), before);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MemoryPlanGpu,
    ::testing::Values(PlanCase{"bf16", Checkpointing::Off, 0.0, {"all-linear"}, BaseWeights::Bf16},
                      PlanCase{"bf16_ckpt", Checkpointing::On, 0.0, {"all-linear"}, BaseWeights::Bf16},
                      PlanCase{"bf16_dropout", Checkpointing::Off, 0.1, {"all-linear"}, BaseWeights::Bf16},
                      PlanCase{"bf16_ckpt_dropout_qv", Checkpointing::On, 0.1, {"q_proj", "v_proj"}, BaseWeights::Bf16},
                      PlanCase{"nf4_ckpt", Checkpointing::On, 0.0, {"all-linear"}, BaseWeights::Nf4},
                      PlanCase{"nf4_nested", Checkpointing::Off, 0.0, {"all-linear"}, BaseWeights::Nf4DoubleQuant}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// The TRL fixture's model and KTO data (max_length 48) for whole runs of the trainer.
struct FixtureRun {
  std::string model_dir = test::fixture("models/llama");
  KtoDatasets data;
  TrainConfig config;  // a short run, LoRA r=4, no saving; the batch size is the test's
};

FixtureRun fixture_run(const std::string& tag, int64_t max_steps) {
  log_set_level(LogLevel::Warn);
  FixtureRun run;
  const Tokenizer tokenizer = Tokenizer::load(run.model_dir);
  DataOptions options;
  options.truncation.max_length = 48;
  options.trl_compat = TrlCompat::Yes;
  run.data = load_kto_datasets(test::fixture("kto_steps/train.jsonl"), "", 0.0, tokenizer, options);
  TrainConfig& c = run.config;
  c.output_dir = test::temp_dir(tag);
  c.max_length = 48, c.max_steps = max_steps, c.save_steps = 0, c.logging_steps = 1, c.lora_r = 4;
  return run;
}

// Trains `c` on the GPU and returns the peak device bytes of the run (model load included).
// With report_context, also prints what the process holds beyond its DeviceBuffers.
int64_t trained_peak(const FixtureRun& run, const TrainConfig& c, bool report_context = false) {
  const int64_t before = allocated();
  cuda_memory_reset_peak();
  Model model = Model::load(run.model_dir, kGpu);
  Trainer trainer(c, model, run.data, train_initial_adapter(c, model.config()));
  trainer.train();
  const int64_t measured = cuda_memory_stats().peak - before;
  if (report_context) {  // assumes the process is alone on the GPU
    const CudaDeviceInfo info = cuda_device_info(0);
    std::printf("CUDA context measured: %.1f MiB (total − free − DeviceBuffer bytes); the plan's estimate %.1f MiB\n",
                static_cast<double>(info.total_bytes - info.free_bytes - allocated()) / (1 << 20),
                static_cast<double>(kCudaContextEstimateBytes) / (1 << 20));
  }
  return measured;
}

// A whole KTO run (three steps): the trainer reserves for the first epoch's largest pass
// (train_pass_extent finds it) and never allocates more. Without LoRA dropout it also keeps the
// policy's prompts (two kept-prompt buffers, not one).
struct TrainerCase {
  const char* name;
  Checkpointing checkpointing;
  double dropout;
};
class MemoryPlanTrainer : public ::testing::TestWithParam<TrainerCase> {};

TEST_P(MemoryPlanTrainer, PeakOfARunIsThePlan) {
  KTO_REQUIRE_GPU();
  FixtureRun run = fixture_run("memory-plan-run", 3);
  TrainConfig& c = run.config;
  c.per_device_train_batch_size = 6;
  c.gradient_checkpointing = GetParam().checkpointing == Checkpointing::On;
  c.lora_dropout = GetParam().dropout;
  const int64_t measured = trained_peak(run, c, true);
  TrainMemorySetup setup;
  setup.model = model_config_load(run.model_dir);
  const PassExtent extent = train_pass_extent(run.data.train, c.per_device_train_batch_size, KlSequences::Yes,
                                              run.data.train.options().truncation);
  const MemoryPlan plan = memory_plan(setup.model, train_memory_inputs(c, setup, BaseWeights::Bf16, extent));
  std::printf("[%s] largest pass %lld tokens (%lld scored), %lld prompt tokens kept: predicted peak %lld (kept prompts "
              "%lld, scratch %lld for the %s), measured %lld\n",
              GetParam().name, (long long)extent.n_tokens, (long long)extent.n_head_rows,
              (long long)extent.kl_reuse.n_prompt_tokens, (long long)plan.peak(), (long long)plan.kept_prompts,
              (long long)plan.scratch, plan.largest_scratch_use_name(), (long long)measured);
  EXPECT_EQ(measured, plan.peak());
}

// per_device_train_batch_size `auto` under a budget the fixed batch of the test above misses by
// one byte: the size it picks then trains on the GPU within the budget, at the planned peak.
TEST(MemoryPlanAuto, PickedBatchRunsWithinTheBudget) {
  KTO_REQUIRE_GPU();
  FixtureRun run = fixture_run("memory-plan-auto", 2);
  TrainConfig& c = run.config;
  c.lora_dropout = 0.0;
  c.gradient_checkpointing = true;
  TrainMemorySetup setup;
  setup.model = model_config_load(run.model_dir);
  setup.extent = train_extent_fn(run.data.train, KlSequences::Yes);
  setup.n_examples = run.data.train.size();
  const auto peak_at = [&](int64_t batch) {
    c.per_device_train_batch_size = batch;
    return memory_plan(setup.model, train_memory_inputs(c, setup, BaseWeights::Bf16, setup.extent(batch, 48))).peak();
  };
  MemoryBudget budget;
  budget.bytes = peak_at(6) - 1;
  budget.what = "the test's budget";
  c.per_device_train_batch_size = 0;  // auto
  const MemoryResolution r = train_memory_resolve(c, setup, budget);
  ASSERT_TRUE(r.advice.empty()) << r.advice;
  ASSERT_GE(r.batch_size, 1);
  ASSERT_LT(r.batch_size, 6);
  EXPECT_GT(peak_at(r.batch_size + 1), budget.bytes) << "auto did not pick the largest size that fits";
  c.per_device_train_batch_size = r.batch_size;
  const int64_t measured = trained_peak(run, c);
  std::printf("auto batch under a budget of %lld bytes: %lld sequences, measured peak %lld, planned %lld\n",
              (long long)budget.bytes, (long long)r.batch_size, (long long)measured, (long long)r.plan.peak());
  EXPECT_LE(measured, budget.bytes);
  EXPECT_EQ(measured, r.plan.peak());
}

INSTANTIATE_TEST_SUITE_P(Runs, MemoryPlanTrainer,
                         ::testing::Values(TrainerCase{"no_ckpt_dropout", Checkpointing::Off, 0.05},
                                           TrainerCase{"ckpt_no_dropout", Checkpointing::On, 0.0},
                                           TrainerCase{"no_ckpt_no_dropout", Checkpointing::Off, 0.0}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace kto
