// The op interface: one args struct per op, one entry point per backend. The CPU backend
// (backend/cpu/, fp32, OpenMP + OpenBLAS) is the reference; a CUDA backend implements the same
// structs later. Activations are packed [T, width] rows over all tokens of a micro-batch
// (DESIGN.md §3); sequences are delimited by `seq_starts`, never padded.
// Conventions: every tensor is a contiguous row-major view; outputs are written, never
// allocated; an "optional" tensor is absent when its `data` is null.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace kto {

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

}  // namespace kto
