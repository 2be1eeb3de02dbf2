// The CUDA backend's op interface: the same args structs as backend/ops.h (same field names and
// shapes), an entry point per op taking the CudaContext whose stream runs it, and a workspace-size
// query for each op that needs scratch (the caller allocates it once; ops never allocate).
// Every tensor is a device view (Device::Cuda). Numerics (DESIGN.md §4): activations and frozen
// weights bf16 where the CPU reference has f32, fp32 accumulation, fp32 softmax / norm statistics /
// log-probs / reductions; LoRA master weights, their gradients and optimizer states fp32.
// Per op, the dtypes where the CUDA side differs from the f32 CPU structs:
//   embedding      tokens i32, table bf16, out bf16
//   rms_norm       x, weight, out, d_out, d_x bf16 (statistics fp32)
//   rope           x bf16 (in place), positions i32, inv_freq f32
//   attention      q, k, v, out, d_out, d_q, d_k, d_v bf16; q_starts, k_starts i32 (device)
//   swiglu, add    every tensor bf16
//   linear         x, weight, bias bf16; out bf16, or f32 when there is no bias (logits)
//   lora_linear    x, weight, bias, lora_a, lora_b (bf16 working copies of the fp32 masters),
//                  dropout_mask, xa, out, d_out, d_x bf16; d_lora_a, d_lora_b f32 (accumulated)
//   logprob_head   hidden, weight, d_hidden bf16; rows, labels i32; out, logsumexp, stats,
//                  d_out f32; stats.argmax i32; d_weight f32 (accumulated); workspace u8 of
//                  logprob_head_workspace_bytes_cuda()
// Errors: a failed CUDA/cuBLAS call or launch throws Error(Cuda) naming the call and the op
// (asynchronous kernel faults surface at the next CudaContext::synchronize); a head_dim or shape
// the kernels do not support throws Error(Unsupported); wrong shapes/dtypes are caller bugs and
// assert, as on the CPU.
#pragma once

#include <cstdint>
#include <span>

#include "backend/cuda/context.h"
#include "backend/ops.h"

namespace kto {

void embedding_forward_cuda(const EmbeddingArgs& args, CudaContext& ctx);
void embedding_backward_cuda(const EmbeddingBackwardArgs& args, CudaContext& ctx);  // d_out bf16, d_table f32

void rms_norm_forward_cuda(const RmsNormArgs& args, CudaContext& ctx);
void rms_norm_backward_cuda(const RmsNormBackwardArgs& args, CudaContext& ctx);
// x, d_out bf16; d_weight f32 accumulated. Workspace: the rows' inverse RMS.
int64_t rms_norm_weight_backward_workspace_bytes_cuda(int64_t rows);
void rms_norm_weight_backward_cuda(const RmsNormWeightBackwardArgs& args, const Tensor& workspace, CudaContext& ctx);

void rope_forward_cuda(const RopeArgs& args, CudaContext& ctx);
void rope_backward_cuda(const RopeArgs& args, CudaContext& ctx);

// head_dim <= 128. The backward needs lse and delta rows of the forward: workspace bytes below.
void attention_forward_cuda(const AttentionArgs& args, CudaContext& ctx);
int64_t attention_backward_workspace_bytes_cuda(int64_t n_query_tokens, int64_t n_heads);
void attention_backward_cuda(const AttentionBackwardArgs& args, const Tensor& workspace, CudaContext& ctx);

void swiglu_forward_cuda(const SwigluArgs& args, CudaContext& ctx);
void swiglu_backward_cuda(const SwigluBackwardArgs& args, CudaContext& ctx);

void add_forward_cuda(const AddArgs& args, CudaContext& ctx);

void linear_forward_cuda(const LinearArgs& args, CudaContext& ctx);
// x, weight, d_out, d_x bf16; d_weight, d_bias f32 accumulated (full fine-tuning).
void linear_backward_cuda(const LinearBackwardArgs& args, CudaContext& ctx);

// One workspace serves the forward and the backward of a layer with these sizes (the dropped-out
// input [T, K] bf16 and the [T, R] LoRA gradient, 256-byte aligned).
int64_t lora_linear_workspace_bytes_cuda(int64_t n_tokens, int64_t in_features, int64_t rank);
void lora_linear_forward_cuda(const LoraLinearArgs& args, const Tensor& workspace, CudaContext& ctx);
void lora_linear_backward_cuda(const LoraLinearBackwardArgs& args, const Tensor& workspace, CudaContext& ctx);

// Serves the forward and the backward: a chunk's gathered rows, fp32 logits, bf16 logit gradients
// and fp32 hidden gradients, O(chunk_rows · V).
int64_t logprob_head_workspace_bytes_cuda(int64_t chunk_rows, int64_t hidden_size, int64_t vocab_size);
void logprob_head_forward_cuda(const LogprobHeadArgs& args, const LogprobHeadStats& stats, CudaContext& ctx);
void logprob_head_backward_cuda(const LogprobHeadBackwardArgs& args, CudaContext& ctx);

// Per-sequence sums of the head's per-row log-probs (the KTO objective's inputs; the objective
// itself runs on the host on these [S] values) and the backward broadcast of ∂loss/∂sum.
struct SegmentSumArgs {
  Tensor values;  // [N] f32
  Tensor starts;  // [S+1] i32 device, starts[0] = 0, starts[S] = N, non-decreasing
  Tensor out;     // [S] f32, written (sum in fp32 per block, fixed order: deterministic)
};
void segment_sum_forward_cuda(const SegmentSumArgs& args, CudaContext& ctx);
struct SegmentSumBackwardArgs {
  Tensor d_out;     // [S] f32
  Tensor starts;    // [S+1] i32 device
  Tensor d_values;  // [N] f32, written: d_values[r] = d_out[segment of r]
};
void segment_sum_backward_cuda(const SegmentSumBackwardArgs& args, CudaContext& ctx);

// torch.optim.AdamW (single-tensor path, amsgrad off) over one flat fp32 parameter buffer, with the
// same operation order as train/adamw.cpp (bit-identical results for the same inputs).
struct AdamWCudaArgs {
  Tensor param;       // [P] f32 master weights, updated in place
  Tensor grad;        // [P] f32
  Tensor exp_avg;     // [P] f32, m
  Tensor exp_avg_sq;  // [P] f32, v
  Tensor param_bf16;  // [P] bf16, optional: the working copy the forward reads, rewritten
  Tensor grad_scale;  // [1] f32, optional: multiplies grad (grad_norm_cuda's clip coefficient)
  double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;  // 1-based, as torch's state["step"] after incrementing
};
void adamw_step_cuda(const AdamWCudaArgs& args, CudaContext& ctx);

// out[r] = a[index[r]] when index[r] >= 0, else b[-1 - index[r]]: rows of 2-byte values (bf16), a
// copy. Assembles a pass's keys and values from a prompt cache and the rows it computed itself.
struct GatherRowsArgs {
  Tensor a;      // [Na, W]
  Tensor b;      // [Nb, W], optional (absent: every index must be >= 0)
  Tensor index;  // [N] i32 device
  Tensor out;    // [N, W]
};
void gather_rows_cuda(const GatherRowsArgs& args, CudaContext& ctx);

// Global L2 norm over gradient tensors (torch.nn.utils.clip_grad_norm_): norm = sqrt(Σ g²) summed
// in double, and optionally the clip coefficient min(1, max_norm / (norm + 1e-6)) for adamw_step_cuda.
struct GradNormArgs {
  std::span<const Tensor> grads;  // each [n_i] f32 (any shape, contiguous)
  Tensor norm;                    // [1] f32, written
  Tensor clip_scale;              // [1] f32, optional, written
  float max_norm = 1.0f;
};
int64_t grad_norm_workspace_bytes_cuda();
void grad_norm_cuda(const GradNormArgs& args, const Tensor& workspace, CudaContext& ctx);

// ---- QLoRA: NF4 frozen weights and bitsandbytes 8-bit AdamW ----------------------------------

// Dequantises a frozen NF4 weight (tensor/nf4.h layout; every tensor of `w` a device view:
// packed u8, absmax f32 or nested u8 + nested_absmax f32 + nested_code f32 [256], code f32 [16])
// into out [rows, cols] bf16 (the GEMM operand) or f32. Bit-exact: out equals the CPU
// nf4_dequantize of the same bytes (values of w.dtype), rounded to nearest even when out is bf16.
void nf4_dequantize_cuda(const Nf4View& w, const Tensor& out, CudaContext& ctx);

// bitsandbytes AdamW8bit over one parameter tensor, bit-identical with train/adamw8bit.cpp
// (adamw8bit_step): P >= 4096 (bnb min_8bit_size) keeps both moments as 8-bit dynamic-map codes
// in blocks of 256 with an f32 absmax each (state1..absmax2 set, exp_avg / exp_avg_sq empty);
// a smaller parameter keeps f32 moments and takes bnb's 32-bit update (exp_avg / exp_avg_sq set,
// state1..absmax2 empty). Which pair is present selects the path; weight decay is decoupled and
// applied first on both, as on the CPU.
struct AdamW8bitCudaArgs {
  Tensor param;       // [P] f32 master weights, updated in place
  Tensor grad;        // [P] f32
  Tensor state1;      // [P] u8: codes of m (signed dynamic map); 8-bit path
  Tensor state2;      // [P] u8: codes of v (unsigned dynamic map); 8-bit path
  Tensor absmax1;     // [ceil(P/256)] f32; 8-bit path
  Tensor absmax2;     // [ceil(P/256)] f32; 8-bit path
  Tensor exp_avg;     // [P] f32, m; 32-bit path
  Tensor exp_avg_sq;  // [P] f32, v; 32-bit path
  Tensor param_bf16;  // [P] bf16, optional: the working copy the forward reads, rewritten
  Tensor grad_scale;  // [1] f32, optional: multiplies grad first (grad_norm_cuda's clip coefficient)
  double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;  // 1-based
};
void adamw8bit_step_cuda(const AdamW8bitCudaArgs& args, CudaContext& ctx);

}  // namespace kto
