// The device-memory plan of LoRA / QLoRA training on one GPU (DESIGN.md §3: memory is planned,
// not discovered), from a ModelConfig alone — before any weight is read. It names every
// DeviceBuffer the GPU model allocates for a training run: the weights buffer, the LoRA mirror
// (and optimizer states when they live on the device), the saved-activation and scratch arenas
// that GpuModel::reserve sizes for the largest pass, and the cuBLAS workspace. model/gpu/ is
// built only with CUDA, so memory_plan.cpp repeats its carving arithmetic term by term (each
// term names the function it mirrors); tests/model_cuda/test_memory_plan_cuda.cpp checks the
// two agree byte for byte. peak() is what cuda_memory_stats().peak measures; the CUDA context
// (driver memory outside every DeviceBuffer) is an estimate reported beside it, never in it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"

namespace kto {

enum class Checkpointing { Off, On };

// How the base model's seven projections sit on the GPU: bf16, or NF4 (bitsandbytes blocksize
// 64) with an f32 absmax per block, or with double quantisation (u8 absmax codes + f32 second level).
enum class BaseWeights { Bf16, Nf4, Nf4DoubleQuant };
enum class PlanOptimizer { AdamW, AdamW8bit };       // optim adamw_torch | adamw_8bit
enum class OptimizerPlacement { Host, Device };      // where the fp32 masters and moments live

struct LoraPlan {
  int64_t rank = 16;                                      // R, the same for every wrapped module
  std::vector<std::string> target_modules{"all-linear"};  // PEFT names (lora_resolve_targets)
  double dropout = 0.0;                                   // > 0: training passes keep dropout masks
};

// KTO's KL pass over completions of kept prompts (Model::sequence_scores_after): each model's
// main pass keeps its prompt tokens' keys and values (Model::reserve_prompts), and its KL pass
// runs only each completion and its prompt's last token, attending to keys assembled from the
// kept rows and its own. The largest of each, over the micro-batches (as reserve takes them).
struct KlReuseExtent {
  int64_t n_prompt_tokens = 1;  // P: prompt tokens of one micro-batch's main sequences
  int64_t n_queries = 0;        // Σ (length − prompt + 1) over one micro-batch's KL sequences
  int64_t n_keys = 0;           // tokens of those KL sequences
  int64_t n_sequences = 0;
  int64_t n_head_rows = 0;      // their scored completion tokens
};

// The largest pass of a run: what Trainer::reserve_device_memory hands GpuModel::reserve.
struct PassExtent {
  int64_t n_tokens = 1;     // T: tokens of the main or the KL sequences of one micro-batch
  int64_t n_head_rows = 1;  // N: scored completion tokens of that pass
  KlReuseExtent kl_reuse;
};

struct MemoryPlanInputs {
  PassExtent pass;
  PassExtent eval_pass{0, 0, {}};  // the largest evaluation pass (inference only); 0 tokens = none
  // Kept-prompt buffers (KL passes reusing prompts): 0 none, 1 the reference's, 2 also the
  // policy's (the Trainer keeps the policy's only without LoRA dropout).
  int64_t n_prompt_caches = 0;
  Checkpointing checkpointing = Checkpointing::On;
  LoraPlan lora;
  BaseWeights base = BaseWeights::Bf16;
  PlanOptimizer optimizer = PlanOptimizer::AdamW;
  OptimizerPlacement optimizer_placement = OptimizerPlacement::Host;
  int64_t head_chunk_rows = 256;  // rows of the log-prob head at once (GpuModel's default)
};

// One use of the scratch arena and the named parts of it; the rest are the layer's tensors
// (activations or their gradients) and the pass's inputs.
struct ScratchUse {
  int64_t bytes = 0;
  int64_t recompute = 0;            // checkpointing: the recomputed layer's tensors, scratch, output
  int64_t attention_workspace = 0;  // attention backward's lse and delta rows
  int64_t lora_workspace = 0;       // lora_linear's dropped-out input and [T, R] gradient (+ norm rows)
  int64_t head_chunk = 0;           // the log-prob head's chunk workspace (chunk × vocab)
  int64_t layer_tensors() const { return bytes - recompute - attention_workspace - lora_workspace - head_chunk; }
};

struct MemoryPlan {  // bytes
  int64_t weights = 0;          // the weights buffer (gpu_weights_upload), dequant scratch included
  int64_t dequant_scratch = 0;  // of which: NF4's bf16 scratch of the largest projection
  int64_t lora = 0;             // LoRA mirror, + optimizer states on the device (memory_plan_lora_bytes)
  int64_t saved = 0;            // saved-activation arena (carve_saved)
  int64_t kept_prompts = 0;     // kept prompts' keys and values, every buffer together
  ScratchUse inference, forward, backward;  // the scratch arena's uses: passes without gradient, the
  ScratchUse kl_after;                      // training forward, the backward, a KL pass over kept prompts
  int64_t scratch = 0;          // the scratch arena: the largest use
  int64_t cublas_workspace = 0;
  int64_t cuda_context = 0;     // estimate; not part of peak()
  int64_t peak() const { return weights + lora + saved + kept_prompts + scratch + cublas_workspace; }
  const ScratchUse& largest_scratch_use() const;
  const char* largest_scratch_use_name() const;  // "inference", "training forward", "backward", "KL pass …"
};

// What CudaContext allocates as a DeviceBuffer (backend/cuda/context.cpp): the cuBLAS workspace.
constexpr int64_t kCublasWorkspaceBytes = int64_t{32} << 20;
// Driver memory of a CUDA context with cuBLAS handles and this program's kernels loaded, outside
// every DeviceBuffer: an estimate, as it varies with the driver and GPU (measured 598 MiB on an
// H200, driver 580, CUDA 13; the CUDA memory-plan test prints it).
constexpr int64_t kCudaContextEstimateBytes = int64_t{640} << 20;
// What still comes after a free-memory query has created the context: cuBLAS handles and the
// kernels loaded on first use (an estimate, as above).
constexpr int64_t kCudaLateOverheadBytes = int64_t{256} << 20;

MemoryPlan memory_plan(const ModelConfig& config, const MemoryPlanInputs& inputs);
// The extent of micro-batches of `batch_size` sequences of up to `seq_len` tokens, the most a
// pass can hold: T = batch × seq_len, N = batch × (seq_len − 1) (the first token is never
// scored), and as many kept prompt tokens as N (a prompt leaves at least one token).
PassExtent memory_plan_batch_extent(int64_t batch_size, int64_t seq_len);

// The parts on their own (the lead's bench prints them; the plan sums them).
int64_t memory_plan_weights_bytes(const ModelConfig& config, BaseWeights base);  // dequant scratch included
int64_t memory_plan_dequant_scratch_bytes(const ModelConfig& config, BaseWeights base);
// The LoRA adapter's device bytes: bf16 A and B and their f32 gradients (GpuLora's two buffers);
// with the optimizer on the device also fp32 master weights and AdamW's two moments (f32, or
// adamw_8bit's u8 codes with an f32 absmax per 256-block; f32 for tensors under 4096 elements).
int64_t memory_plan_lora_bytes(const ModelConfig& config, const LoraPlan& lora, PlanOptimizer optimizer,
                               OptimizerPlacement placement);
int64_t lora_param_count(const ModelConfig& config, int64_t rank);  // LoRA on all seven projections

// The largest batch size in [min_batch, max_batch] whose plan's peak fits in `budget` bytes, by
// bisection over `extent(batch)` (the largest pass of that batch size; passes grow with the batch
// size, so every size tried below the answer fits: each answer was planned, never guessed).
// batch_size 0 when even min_batch does not fit; `plan` is then min_batch's.
struct BatchChoice {
  int64_t batch_size = 0;
  PassExtent extent;
  MemoryPlan plan;
};
BatchChoice memory_plan_largest_batch(const ModelConfig& config, MemoryPlanInputs inputs, int64_t budget,
                                      int64_t min_batch, int64_t max_batch,
                                      const std::function<PassExtent(int64_t)>& extent);

// Human-readable size: "512.0 MiB", "6.52 GiB".
std::string memory_bytes_text(int64_t bytes);

}  // namespace kto
