// The memory plan's arithmetic on a tiny config, against numbers worked out by hand from the
// GPU model's layout (every tensor bf16 unless said, each rounded up to 256 bytes): which
// buffers exist and how big each tensor is, written out term by term below — not copied from
// the plan's output. tests/model_cuda/test_memory_plan_cuda.cpp checks the same plan against
// what a GPU run allocates.
#include <gtest/gtest.h>

#include "model/memory_plan.h"

namespace kto {
namespace {

// D 64, H 4 (Dh 16, Q 64), Hkv 2 (KV 32), F 160, V 1000, L 2, untied head, no biases.
ModelConfig tiny() {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 1000, c.hidden_size = 64, c.intermediate_size = 160, c.n_layers = 2;
  c.n_heads = 4, c.n_heads_kv = 2, c.head_dim = 16;
  return c;
}

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(MemoryPlan, Bf16WeightsBuffer) {
  const int64_t embed = 1000 * 64 * 2;                    // 128000 = 500 × 256
  const int64_t final_norm = 256;                          // 128 bytes → 256
  const int64_t inv_freq = 256;                            // 8 f32 → 256
  const int64_t norms = 2 * 256;                           // two [64] bf16 per layer
  const int64_t proj = 8192 + 4096 + 4096 + 8192 + 3 * 20480;  // q, k, v, o, gate, up, down
  EXPECT_EQ(memory_plan_weights_bytes(tiny(), BaseWeights::Bf16), 2 * embed + final_norm + inv_freq + 2 * (norms + proj));
  EXPECT_EQ(memory_plan_weights_bytes(tiny(), BaseWeights::Bf16), 429568);
  ModelConfig tied = tiny();
  tied.tie_word_embeddings = true;  // the head is the embedding: one table fewer
  EXPECT_EQ(memory_plan_weights_bytes(tied, BaseWeights::Bf16), 429568 - embed);
  ModelConfig qwen = tiny();
  qwen.qkv_bias = qwen.qk_norm = true;  // biases [64], [32], [32] and q/k norms [16]: 256 bytes each
  EXPECT_EQ(memory_plan_weights_bytes(qwen, BaseWeights::Bf16), 429568 + 2 * (3 * 256 + 2 * 256));
  EXPECT_EQ(memory_plan_dequant_scratch_bytes(tiny(), BaseWeights::Bf16), 0);
}

TEST(MemoryPlan, Nf4WeightsBuffer) {
  // Per projection: packed nibbles (numel / 2), code [16] f32, absmax [numel / 64] f32.
  const int64_t q = 2048 + 256 + 256;        // 4096 weights: 64 blocks
  const int64_t k = 1024 + 256 + 256;        // 2048 weights: 32 blocks (128 bytes → 256)
  const int64_t gate = 5120 + 256 + 768;     // 10240 weights: 160 blocks (640 bytes → 768)
  const int64_t layer = 2 * 256 + q + 2 * k + q + 3 * gate;
  const int64_t rest = 2 * 128000 + 256 + 256;  // embedding, head, final norm, inv_freq stay as bf16 / f32
  const int64_t scratch = 10240 * 2;         // bf16 of the largest projection (gate / up / down)
  EXPECT_EQ(memory_plan_dequant_scratch_bytes(tiny(), BaseWeights::Nf4), scratch);
  EXPECT_EQ(memory_plan_weights_bytes(tiny(), BaseWeights::Nf4), rest + 2 * layer + scratch);
  EXPECT_EQ(memory_plan_weights_bytes(tiny(), BaseWeights::Nf4), 331264);
  // Double quantisation: absmax as u8 codes, + nested_absmax [ceil(blocks / 256)] f32 + nested_code [256] f32.
  const int64_t nq = 2048 + 256 + 256 + 256 + 1024, nk = 1024 + 256 + 256 + 256 + 1024, ngate = 5120 + 256 + 256 + 256 + 1024;
  EXPECT_EQ(memory_plan_weights_bytes(tiny(), BaseWeights::Nf4DoubleQuant), rest + 2 * (512 + 2 * nq + 2 * nk + 3 * ngate) + scratch);
}

TEST(MemoryPlan, LoraMirrorAndOptimizerStates) {
  // r = 8: A [8, in], B [out, 8]; each bf16 copy and f32 gradient rounded to 256 bytes.
  auto tensor = [](int64_t n) { return (n * 2 + 255) / 256 * 256 + (n * 4 + 255) / 256 * 256; };
  const int64_t layer = tensor(512) + tensor(512)           // q: A 8×64, B 64×8
                        + 2 * (tensor(512) + tensor(256))   // k, v: B 32×8
                        + tensor(512) + tensor(512)         // o
                        + 2 * (tensor(512) + tensor(1280))  // gate, up: B 160×8
                        + tensor(1280) + tensor(512);       // down: A 8×160
  const LoraPlan all{8, {"all-linear"}, 0.0};
  EXPECT_EQ(memory_plan_lora_bytes(tiny(), all, PlanOptimizer::AdamW, OptimizerPlacement::Host), 2 * layer);
  EXPECT_EQ(2 * layer, 107520);
  // On the device: + fp32 master, exp_avg, exp_avg_sq per tensor (all f32 gradients' sizes: 35840 a layer).
  EXPECT_EQ(memory_plan_lora_bytes(tiny(), all, PlanOptimizer::AdamW, OptimizerPlacement::Device), 107520 + 2 * 3 * 35840);
  // adamw_8bit: every tensor here is under 4096 elements, so its moments stay f32 too.
  EXPECT_EQ(memory_plan_lora_bytes(tiny(), all, PlanOptimizer::AdamW8bit, OptimizerPlacement::Device), 107520 + 2 * 3 * 35840);
  // gate_proj only, r = 32: A 2048 elements (f32 moments), B 5120 (u8 moments + 20 f32 absmax each).
  const LoraPlan gate{32, {"gate_proj"}, 0.0};
  const int64_t a = 4096 + 8192 + 8192 + 2 * 8192, b = 10240 + 20480 + 20480 + 2 * (5120 + 256);
  EXPECT_EQ(memory_plan_lora_bytes(tiny(), gate, PlanOptimizer::AdamW8bit, OptimizerPlacement::Device), 2 * (a + b));
  EXPECT_EQ(lora_param_count(tiny(), 8), 2 * 8 * (128 + 96 + 96 + 128 + 224 + 224 + 224));
}

// T = 10 tokens, N = 7 scored rows, head chunk 4 rows, LoRA r = 8 on all seven projections.
// Rounded sizes of one [10, width] bf16 tensor: D 1280, Q 1280, KV 768, F 3328, r 256.
MemoryPlanInputs small_pass(Checkpointing ckpt) {
  MemoryPlanInputs in;
  in.pass = {10, 7, {}};
  in.checkpointing = ckpt;
  in.lora = {8, {"all-linear"}, 0.0};
  in.head_chunk_rows = 4;
  return in;
}

constexpr int64_t kInputs = 2 * 256 + 2 * 256;  // tokens, positions [10] i32; q/k starts [11] i32
// A training layer: x, x_norm1, q, k, v, attn, h_mid, x_norm2, gate, up, act, seven [10, 8] xa.
constexpr int64_t kTrainingLayer = 2 * 1280 + 1280 + 2 * 768 + 1280 + 1280 + 1280 + 3 * 3328 + 7 * 256;
// lora_linear's workspace: the widest input [10, 160] and [10, 8].
constexpr int64_t kLoraWorkspace = 3328 + 256;
// The head's chunk workspace: [4, 64] bf16, [4, 1000] f32, [4, 1000] bf16, [4, 64] f32.
constexpr int64_t kHeadChunk = 512 + 16128 + 8192 + 1024;
constexpr int64_t kRows = 256;  // one [7] i32/f32 tensor

TEST(MemoryPlan, ArenasWithoutCheckpointing) {
  const MemoryPlan p = memory_plan(tiny(), small_pass(Checkpointing::Off));
  EXPECT_EQ(kTrainingLayer, 20992);
  EXPECT_EQ(p.saved, kInputs + 2 * kTrainingLayer + 2 * 1280 + 3 * kRows);  // + x_final, hidden; rows, labels, logsumexp
  // Inference: one shared layer (no h_mid / act / q_raw), o and down, the LoRA workspace, hidden, the head.
  const int64_t shared_layer = kTrainingLayer - 1280 - 3328;
  EXPECT_EQ(p.inference.bytes, kInputs + shared_layer + 2 * 1280 + kLoraWorkspace + 1280 + 6 * kRows + kHeadChunk);
  EXPECT_EQ(p.forward.bytes, 2 * 1280 + kLoraWorkspace + 6 * kRows + kHeadChunk);
  // Backward: d_h, d_x1, d_x2, d_attn, d_q, d_k, d_v, d_act, d_up; attention lse + delta [10·4] f32
  // each; lora workspace; the norm-weight workspace (rows' inverse RMS + 2^18 f32 partials);
  // d_hidden, d_out, the head chunk.
  const int64_t gradients = 3 * 1280 + 2 * 1280 + 2 * 768 + 2 * 3328;
  const int64_t norm_ws = 256 + kMiB;
  EXPECT_EQ(p.backward.bytes, gradients + 512 + kLoraWorkspace + norm_ws + 1280 + kRows + kHeadChunk);
  EXPECT_EQ(p.backward.attention_workspace, 512);
  EXPECT_EQ(p.backward.head_chunk, kHeadChunk);
  EXPECT_EQ(p.backward.recompute, 0);
  EXPECT_EQ(p.scratch, p.backward.bytes);
  EXPECT_STREQ(p.largest_scratch_use_name(), "backward");
  EXPECT_EQ(p.cublas_workspace, 32 * kMiB);
  EXPECT_EQ(p.peak(), 429568 + 107520 + p.saved + p.backward.bytes + 32 * kMiB);
  EXPECT_GT(p.cuda_context, 0);
}

TEST(MemoryPlan, CheckpointingKeepsOnlyLayerInputs) {
  const MemoryPlan off = memory_plan(tiny(), small_pass(Checkpointing::Off));
  const MemoryPlan on = memory_plan(tiny(), small_pass(Checkpointing::On));
  EXPECT_EQ(on.saved, kInputs + 2 * 1280 + 2 * 1280 + 3 * kRows);  // each layer's x, then x_final, hidden
  // The forward and the backward also carve the recomputed layer (shared by all layers); the
  // backward its scratch (o, down, LoRA workspace) and output too.
  EXPECT_EQ(on.forward.bytes, off.forward.bytes + kTrainingLayer);
  EXPECT_EQ(on.backward.recompute, (2 * 1280 + kLoraWorkspace) + kTrainingLayer + 1280);
  EXPECT_EQ(on.backward.bytes, off.backward.bytes + on.backward.recompute);
}

TEST(MemoryPlan, DropoutMasksAndTargetSubsets) {
  MemoryPlanInputs in = small_pass(Checkpointing::Off);
  in.lora.dropout = 0.1;  // a [10, in] bf16 mask per wrapped module: in 64 for six, 160 for down
  const int64_t masks = 6 * 1280 + 3328;
  EXPECT_EQ(memory_plan(tiny(), in).saved, kInputs + 2 * (kTrainingLayer + masks) + 2 * 1280 + 3 * kRows);
  in.lora = {8, {"q_proj", "v_proj"}, 0.0};  // two of seven: five xa fewer per layer, a smaller mirror
  EXPECT_EQ(memory_plan(tiny(), in).saved, kInputs + 2 * (kTrainingLayer - 5 * 256) + 2 * 1280 + 3 * kRows);
  EXPECT_EQ(memory_plan(tiny(), in).lora, 2 * ((3072 + 3072) + (3072 + 1536)));
}

TEST(MemoryPlan, KeptPromptsAndTheKlPassOverThem) {
  MemoryPlanInputs in = small_pass(Checkpointing::Off);
  in.n_prompt_caches = 2;  // the reference's and the policy's
  // 6 kept prompt tokens; a KL pass of 2 sequences, 9 tokens, 5 queries, 3 scored rows.
  in.pass.kl_reuse = {6, 5, 9, 2, 3};
  const MemoryPlan p = memory_plan(tiny(), in);
  // Per cache: keys and values [6, 32] bf16 (384 → 512 bytes) for each of 2 layers, rows [6] i32.
  EXPECT_EQ(p.kept_prompts, 2 * (2 * 2 * 512 + 256));
  // An inference pass over the 5 queries ([5, width] bf16: D 768, Q 768, KV 512, F 1792, r 256;
  // 2 sequences), then the assembled keys and values [9, 32] bf16 and their index [9] i32.
  const int64_t inputs = 2 * 256 + 2 * 256;
  const int64_t layer = 2 * 768 + 768 + 2 * 512 + 768 + 768 + 2 * 1792 + 7 * 256;
  const int64_t scratch = 2 * 768 + (1792 + 256);
  EXPECT_EQ(p.kl_after.bytes, inputs + layer + scratch + 768 + 6 * 256 + kHeadChunk + 2 * 768 + 256);
  EXPECT_EQ(p.peak(), memory_plan(tiny(), small_pass(Checkpointing::Off)).peak() + p.kept_prompts);
}

TEST(MemoryPlan, BatchExtentAndLargestBatch) {
  const PassExtent e = memory_plan_batch_extent(8, 1024);
  EXPECT_EQ(e.n_tokens, 8192);
  EXPECT_EQ(e.n_head_rows, 8 * 1023);
  const MemoryPlanInputs base = small_pass(Checkpointing::On);
  auto extent = [](int64_t batch) { return memory_plan_batch_extent(batch, 64); };
  MemoryPlanInputs at5 = base;
  at5.pass = extent(5);
  const int64_t budget = memory_plan(tiny(), at5).peak();  // exactly batch 5's peak
  const BatchChoice choice = memory_plan_largest_batch(tiny(), base, budget, 1, 100, extent);
  EXPECT_EQ(choice.batch_size, 5);
  EXPECT_EQ(choice.plan.peak(), budget);
  EXPECT_EQ(memory_plan_largest_batch(tiny(), base, budget - 1, 1, 100, extent).batch_size, 4);
  EXPECT_EQ(memory_plan_largest_batch(tiny(), base, budget, 1, 3, extent).batch_size, 3);  // capped
  const BatchChoice none = memory_plan_largest_batch(tiny(), base, 1000, 2, 100, extent);
  EXPECT_EQ(none.batch_size, 0);
  EXPECT_EQ(none.extent.n_tokens, 128);  // the plan reported is the smallest batch's
}

}  // namespace
}  // namespace kto
