// The op interface: one args struct per op, one entry point per backend. The CPU backend
// (backend/cpu/, fp32, OpenMP + OpenBLAS) is the reference; a CUDA backend implements the same
// structs later. Activations are packed [T, width] rows over all tokens of a micro-batch
// (DESIGN.md §3); sequences are delimited by `seq_starts`, never padded.
// Conventions: every tensor is a contiguous row-major view; outputs are written, never
// allocated; an "optional" tensor is absent when its `data` is null.
#pragma once

#include <cstdint>

#include "tensor/nf4.h"
#include "tensor/tensor.h"

namespace kto {

// Threads the CPU ops (OpenMP) and OpenBLAS use from now on, process-wide; >= 1. Small
// models (the demo's) run fastest on one: their matrices are too small to split.
void cpu_set_num_threads(int n_threads);

// out[t] = table[tokens[t]]  (HF nn.Embedding).
struct EmbeddingArgs {
  Tensor tokens;  // [T] i32, each in [0, V)
  Tensor table;   // [V, D] f32
  Tensor out;     // [T, D] f32
};
void embedding_forward_cpu(const EmbeddingArgs& args);

// out = x * rsqrt(mean(x^2) + eps) * weight over the last dim (HF LlamaRMSNorm, fp32).
// Per-head q/k norm (Qwen3) uses the same op on a [T*H, Dh] view.
struct RmsNormArgs {
  Tensor x;       // [N, W] f32
  Tensor weight;  // [W] f32
  Tensor out;     // [N, W] f32 (may alias x)
  float eps = 1e-6f;
};
void rms_norm_forward_cpu(const RmsNormArgs& args);

// out = x · weightᵀ (+ bias)  (HF nn.Linear; weight stored [out_features, in_features]).
struct LinearArgs {
  Tensor x;       // [T, K] f32
  Tensor weight;  // [N, K] f32
  Tensor bias;    // [N] f32, optional
  Tensor out;     // [T, N] f32 (must not alias x)
};
void linear_forward_cpu(const LinearArgs& args);

// Rotate-half RoPE in place on every head of x (HF apply_rotary_pos_emb): for each head, with
// a = x[d], b = x[d + Dh/2], angle = positions[t] * inv_freq[d]:
//   x[d] = a cos - b sin,  x[d + Dh/2] = b cos + a sin.
struct RopeArgs {
  Tensor x;          // [T, n_heads * Dh] f32, rotated in place
  Tensor positions;  // [T] i32
  Tensor inv_freq;   // [Dh/2] f32 (model/config rope_inv_freq, scaling already applied)
  int64_t n_heads = 0;
  int64_t head_dim = 0;  // Dh, even
};
void rope_forward_cpu(const RopeArgs& args);

// Variable-length causal grouped-query attention (flash-attn "varlen" convention).
// Sequence s has queries q[q_starts[s] .. q_starts[s+1]) and keys k[k_starts[s] .. k_starts[s+1]);
// queries are aligned to the END of the keys: local query i sits at key index
// qi = k_len - q_len + i, and sees key j when qi - window < j <= qi (window 0 = unlimited).
// A packed forward passes q_starts == k_starts; KV-cache decoding passes the cached keys.
// Query head h reads kv head h / (H / Hkv) (HF repeat_kv). softmax in fp32, scale applied to q·k.
struct AttentionArgs {
  Tensor q;         // [Tq, H * Dh] f32 (after RoPE)
  Tensor k;         // [Tk, Hkv * Dh] f32 (after RoPE)
  Tensor v;         // [Tk, Hkv * Dh] f32
  Tensor q_starts;  // [S+1] i32
  Tensor k_starts;  // [S+1] i32, k_len >= q_len for every sequence
  Tensor out;       // [Tq, H * Dh] f32
  int64_t n_heads = 0;
  int64_t n_heads_kv = 0;
  int64_t head_dim = 0;
  int64_t window = 0;  // sliding window in tokens; 0 = full causal
  float scale = 1.0f;  // usually 1/sqrt(Dh)
};
void attention_forward_cpu(const AttentionArgs& args);

// out = silu(gate) * up  (HF LlamaMLP's act_fn(gate_proj(x)) * up_proj(x)).
struct SwigluArgs {
  Tensor gate;  // [T, F] f32
  Tensor up;    // [T, F] f32
  Tensor out;   // [T, F] f32 (may alias gate or up)
};
void swiglu_forward_cpu(const SwigluArgs& args);

// out = a + b (residual connections).
struct AddArgs {
  Tensor a;    // [N] or [T, D] f32
  Tensor b;    // same shape as a
  Tensor out;  // same shape as a (may alias a or b)
};
void add_forward_cpu(const AddArgs& args);

// Chunked log-prob head: for each selected row r, out[r] = log_softmax(hidden[rows[r]] · weightᵀ)[labels[r]].
// Works on `chunk_rows` rows at a time, so memory is O(chunk_rows · V), never [T, V].
// Optionally also writes each row's log-sum-exp (needed by a backward that recomputes chunks).
struct LogprobHeadArgs {
  Tensor hidden;     // [T, D] f32 (after the final norm)
  Tensor weight;     // [V, D] f32 (lm_head, or the tied embedding)
  Tensor rows;       // [N] i32, indices into hidden
  Tensor labels;     // [N] i32, token ids in [0, V)
  Tensor out;        // [N] f32 log-probabilities
  Tensor logsumexp;  // [N] f32, optional
  Tensor workspace;  // [logprob_head_workspace_floats(chunk_rows, D, V)] f32
  int64_t chunk_rows = 64;
};
int64_t logprob_head_workspace_floats(int64_t chunk_rows, int64_t hidden_size, int64_t vocab_size);
void logprob_head_forward_cpu(const LogprobHeadArgs& args);

// Per-row statistics of the same logits for the trainer's metrics (TRL logs them over the
// completion positions): the vocabulary mean of the logits and the predictive entropy
// -Σ_v p_v log p_v of softmax(logits). Both optional.
struct LogprobHeadStats {
  Tensor mean_logit;  // [N] f32, optional
  Tensor entropy;     // [N] f32, optional
  Tensor argmax;      // [N] i32, optional: the first index of the largest logit (torch.argmax),
                      // for SFT's mean_token_accuracy
};
void logprob_head_forward_cpu(const LogprobHeadArgs& args, const LogprobHeadStats& stats);

// ---------------------------------------------------------------------------------------------
// Backward ops (fp32). Each mirrors the autograd of the PyTorch expression its forward mirrors.
// Unless a field says "accumulated", gradients are written (overwriting). The LoRA ops compute
// nothing for frozen parameters; full fine-tuning adds the parameter gradients at the end.

// How a backward op stores a gradient that several consumers of one input contribute to.
enum class GradStore { Overwrite, Accumulate };

// RMSNorm input gradient, with g = d_out * weight and inv = rsqrt(mean(x^2) + eps):
//   d_x = inv * g - x * inv^3 * mean(g * x).
struct RmsNormBackwardArgs {
  Tensor x;       // [N, W] f32, the forward's input
  Tensor weight;  // [W] f32
  Tensor d_out;   // [N, W] f32
  Tensor d_x;     // [N, W] f32 (may alias d_out when store is Overwrite)
  float eps = 1e-6f;
  GradStore store = GradStore::Overwrite;
};
void rms_norm_backward_cpu(const RmsNormBackwardArgs& args);

// RoPE backward: the transpose of the rotation, i.e. the rotation by -angle, in place on the
// gradient: x holds d_out on entry and d_x on return. Same args as the forward.
void rope_backward_cpu(const RopeArgs& args);

// Attention backward. The softmax is recomputed from q and k (nothing but q, k, v is saved):
// with p = softmax(scale·q·kᵀ) over the visible keys and dp_j = d_out·v_j,
//   d_v_j += p_j d_out,  ds_j = p_j (dp_j - Σ_i p_i dp_i),  d_q = scale Σ_j ds_j k_j,
//   d_k_j += scale ds_j q.  Same masking rules and start conventions as the forward.
struct AttentionBackwardArgs {
  Tensor q;         // [Tq, H * Dh] f32 (after RoPE), as given to the forward
  Tensor k;         // [Tk, Hkv * Dh] f32
  Tensor v;         // [Tk, Hkv * Dh] f32
  Tensor q_starts;  // [S+1] i32
  Tensor k_starts;  // [S+1] i32
  Tensor d_out;     // [Tq, H * Dh] f32
  Tensor d_q;       // [Tq, H * Dh] f32, written
  Tensor d_k;       // [Tk, Hkv * Dh] f32, written
  Tensor d_v;       // [Tk, Hkv * Dh] f32, written
  int64_t n_heads = 0;
  int64_t n_heads_kv = 0;
  int64_t head_dim = 0;
  int64_t window = 0;
  float scale = 1.0f;
};
void attention_backward_cpu(const AttentionBackwardArgs& args);

// SwiGLU backward: with s = sigmoid(gate), d_up = d_out * gate * s and
// d_gate = d_out * up * s * (1 + gate * (1 - s)). Element-wise; d_gate may alias gate or
// d_out, d_up may alias up or d_out.
struct SwigluBackwardArgs {
  Tensor gate;    // [T, F] f32, the forward's input
  Tensor up;      // [T, F] f32
  Tensor d_out;   // [T, F] f32
  Tensor d_gate;  // [T, F] f32
  Tensor d_up;    // [T, F] f32
};
void swiglu_backward_cpu(const SwigluBackwardArgs& args);

// A frozen linear layer with an optional LoRA adapter (PEFT LoraLayer / lora.Linear.forward):
//   out = x · Wᵀ (+ b) + scale · (dropout(x) · Aᵀ) · Bᵀ,
// where dropout(x) = x * dropout_mask (the mask holds 0 or 1/(1-p); absent = identity).
// The forward also writes xa = dropout(x) · Aᵀ, which the backward needs for d_B.
struct LoraLinearArgs {
  Tensor x;             // [T, K] f32
  Tensor weight;        // [N, K] f32, frozen
  Tensor bias;          // [N] f32, optional, frozen
  Tensor lora_a;        // [R, K] f32, optional (absent = plain linear)
  Tensor lora_b;        // [N, R] f32, required with lora_a
  Tensor dropout_mask;  // [T, K] f32, optional
  Tensor xa;            // [T, R] f32, written when lora_a is present
  Tensor out;           // [T, N] f32 (must not alias x)
  float scale = 1.0f;   // alpha / r, or alpha / sqrt(r) with rsLoRA
  Nf4View weight_nf4{}; // optional: the frozen weight [N, K] in NF4 (bitsandbytes Linear4bit); then
                        // `weight` is absent and W is dequantised a tile of rows at a time
};
void lora_linear_forward_cpu(const LoraLinearArgs& args);

// Backward of lora_linear_forward: with g = scale · d_out · B  [T, R],
//   d_x (store) = d_out · W + (g · A) * dropout_mask,
//   d_A += gᵀ · dropout(x),   d_B += scale · d_outᵀ · xa.
// Nothing for W or b (frozen). d_x is optional (absent when the caller does not need it).
struct LoraLinearBackwardArgs {
  Tensor x;             // [T, K] f32, the forward's input
  Tensor weight;        // [N, K] f32
  Tensor lora_a;        // [R, K] f32, optional
  Tensor lora_b;        // [N, R] f32
  Tensor dropout_mask;  // [T, K] f32, optional, the forward's mask
  Tensor xa;            // [T, R] f32, saved by the forward
  Tensor d_out;         // [T, N] f32
  Tensor d_x;           // [T, K] f32, optional; written or accumulated per `store`
  Tensor d_lora_a;      // [R, K] f32, accumulated
  Tensor d_lora_b;      // [N, R] f32, accumulated
  float scale = 1.0f;
  GradStore store = GradStore::Overwrite;
  Nf4View weight_nf4{}; // optional: W in NF4 instead of `weight` (d_x dequantises it tile by tile)
};
void lora_linear_backward_cpu(const LoraLinearBackwardArgs& args);

// Backward of the chunked log-prob head, recomputing each chunk's logits (never [T, V]):
// for selected row r with p = softmax(logits_r), d_logits_r = d_out[r] · (onehot(label_r) - p)
// and d_hidden[rows[r]] += d_logits_r · W. Rows of hidden that are not selected get nothing.
struct LogprobHeadBackwardArgs {
  Tensor hidden;     // [T, D] f32
  Tensor weight;     // [V, D] f32
  Tensor rows;       // [N] i32
  Tensor labels;     // [N] i32
  Tensor logsumexp;  // [N] f32 from the forward; optional (recomputed when absent)
  Tensor d_out;      // [N] f32, ∂loss/∂logp per row
  Tensor d_hidden;   // [T, D] f32, accumulated
  Tensor workspace;  // [logprob_head_workspace_floats(chunk_rows, D, V)] f32
  int64_t chunk_rows = 64;
  Tensor d_weight;   // [V, D] f32, optional, accumulated: Σ_r d_logits_rᵀ · hidden[rows[r]] (full FT)
};
void logprob_head_backward_cpu(const LogprobHeadBackwardArgs& args);

// ---------------------------------------------------------------------------------------------
// Parameter gradients for full fine-tuning (every weight trainable; autograd of the same
// PyTorch expressions). All parameter gradients ACCUMULATE, so several micro-batches (and a
// tied embedding used as head and as input) add into one buffer.

// nn.Linear backward: d_x (store) = d_out · W, d_weight += d_outᵀ · x, d_bias += Σ_t d_out[t].
struct LinearBackwardArgs {
  Tensor x;         // [T, K] f32, the forward's input
  Tensor weight;    // [N, K] f32
  Tensor d_out;     // [T, N] f32
  Tensor d_x;       // [T, K] f32, optional; written or accumulated per `store`
  Tensor d_weight;  // [N, K] f32, optional, accumulated
  Tensor d_bias;    // [N] f32, optional, accumulated
  GradStore store = GradStore::Overwrite;
};
void linear_backward_cpu(const LinearBackwardArgs& args);

// RMSNorm weight gradient: d_weight[i] += Σ_r d_out[r, i] · x[r, i] · inv_r with
// inv_r = rsqrt(mean(x_r^2) + eps). Call it before an in-place input backward overwrites d_out.
struct RmsNormWeightBackwardArgs {
  Tensor x;         // [N, W] f32, the forward's input
  Tensor d_out;     // [N, W] f32
  Tensor d_weight;  // [W] f32, accumulated
  float eps = 1e-6f;
};
void rms_norm_weight_backward_cpu(const RmsNormWeightBackwardArgs& args);

// nn.Embedding backward: d_table[tokens[t]] += d_out[t] (repeated tokens add up).
struct EmbeddingBackwardArgs {
  Tensor tokens;   // [T] i32, each in [0, V)
  Tensor d_out;    // [T, D] f32
  Tensor d_table;  // [V, D] f32, accumulated
};
void embedding_backward_cpu(const EmbeddingBackwardArgs& args);

}  // namespace kto
