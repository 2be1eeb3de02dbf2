// Variable-length causal grouped-query attention with an optional sliding window, fp32.
// Mirrors HF eager_attention_forward (softmax(q·kᵀ·scale + causal/sliding mask) · v, repeat_kv
// for GQA) as used by LlamaAttention / MistralAttention / Qwen2Attention / Qwen3Attention,
// without materialising any [T, T] mask or score matrix: one query row at a time.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {
namespace {

struct RowTask {
  const float* q;      // [Dh] one query head
  const float* k;      // [k_len, Hkv*Dh] keys of the sequence, kv head offset applied
  const float* v;      // [k_len, Hkv*Dh] values of the sequence, kv head offset applied
  float* out;          // [Dh]
  int64_t key_begin;   // first visible key (sequence-local)
  int64_t key_end;     // one past the last visible key
  int64_t kv_stride;   // Hkv * Dh
  int64_t head_dim;
  float scale;
};

// Softmax-weighted sum for one (query, head) pair; `scores` is scratch of at least key_end floats.
void attend_row(const RowTask& task, float* scores) {
  const int64_t dh = task.head_dim;
  float max_score = -INFINITY;
  for (int64_t j = task.key_begin; j < task.key_end; ++j) {
    const float* kj = task.k + j * task.kv_stride;
    float dot = 0.0f;
    for (int64_t d = 0; d < dh; ++d) dot += task.q[d] * kj[d];
    scores[j] = dot * task.scale;
    max_score = std::max(max_score, scores[j]);
  }
  double denom = 0.0;
  for (int64_t j = task.key_begin; j < task.key_end; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    denom += scores[j];
  }
  const float inv = static_cast<float>(1.0 / denom);
  for (int64_t d = 0; d < dh; ++d) task.out[d] = 0.0f;
  for (int64_t j = task.key_begin; j < task.key_end; ++j) {
    const float p = scores[j] * inv;
    const float* vj = task.v + j * task.kv_stride;
    for (int64_t d = 0; d < dh; ++d) task.out[d] += p * vj[d];
  }
}

void check_attention_args(const AttentionArgs& a, int64_t n_seqs) {
  const int64_t tq = a.q.shape[0], tk = a.k.shape[0];
  KTO_ASSERT(a.n_heads > 0 && a.n_heads_kv > 0 && a.n_heads % a.n_heads_kv == 0, "attention heads ", a.n_heads,
             " not a multiple of kv heads ", a.n_heads_kv);
  KTO_ASSERT(a.window >= 0, "attention window must be >= 0, got ", a.window);
  cpu::check_tensor(a.q, "attention q", DType::F32, {tq, a.n_heads * a.head_dim});
  cpu::check_tensor(a.k, "attention k", DType::F32, {tk, a.n_heads_kv * a.head_dim});
  cpu::check_tensor(a.v, "attention v", DType::F32, {tk, a.n_heads_kv * a.head_dim});
  cpu::check_tensor(a.out, "attention out", DType::F32, {tq, a.n_heads * a.head_dim});
  cpu::check_tensor(a.q_starts, "attention q_starts", DType::I32, {n_seqs + 1});
  cpu::check_tensor(a.k_starts, "attention k_starts", DType::I32, {n_seqs + 1});
  const int32_t* qs = a.q_starts.as<int32_t>();
  const int32_t* ks = a.k_starts.as<int32_t>();
  KTO_ASSERT(qs[0] == 0 && ks[0] == 0 && qs[n_seqs] == tq && ks[n_seqs] == tk, "attention starts do not cover q/k");
  for (int64_t s = 0; s < n_seqs; ++s) {
    KTO_ASSERT(qs[s + 1] >= qs[s] && ks[s + 1] - ks[s] >= qs[s + 1] - qs[s], "sequence ", s,
               ": fewer keys than queries or decreasing starts");
  }
}

}  // namespace

// Threads map to (query row, head) pairs of one sequence at a time; each thread owns a score
// buffer as long as the longest key range. Numerics: fp32 dot products and weighted sums,
// max-subtracted exp, the normaliser summed in double.
void attention_forward_cpu(const AttentionArgs& args) {
  const int64_t n_seqs = args.q_starts.shape[0] - 1;
  check_attention_args(args, n_seqs);
  const int32_t* qs = args.q_starts.as<int32_t>();
  const int32_t* ks = args.k_starts.as<int32_t>();
  const int64_t dh = args.head_dim, n_heads = args.n_heads;
  const int64_t group = n_heads / args.n_heads_kv;
  const int64_t q_stride = n_heads * dh, kv_stride = args.n_heads_kv * dh;
  int64_t max_keys = 0, work = 0;
  for (int64_t s = 0; s < n_seqs; ++s) {
    max_keys = std::max<int64_t>(max_keys, ks[s + 1] - ks[s]);
    work += int64_t{qs[s + 1] - qs[s]} * (ks[s + 1] - ks[s]) * n_heads * dh;
  }
#pragma omp parallel if (work >= cpu::kParallelMinWork)
  {
    std::vector<float> scores(static_cast<size_t>(max_keys));
    for (int64_t s = 0; s < n_seqs; ++s) {
      const int64_t q_len = qs[s + 1] - qs[s], k_len = ks[s + 1] - ks[s];
#pragma omp for schedule(static)
      for (int64_t item = 0; item < q_len * n_heads; ++item) {
        const int64_t i = item / n_heads, h = item % n_heads;
        const int64_t qi = k_len - q_len + i;  // key index of this query (bottom-right aligned)
        const int64_t kv_head = h / group;
        RowTask task;
        task.q = args.q.f32() + (qs[s] + i) * q_stride + h * dh;
        task.k = args.k.f32() + ks[s] * kv_stride + kv_head * dh;
        task.v = args.v.f32() + ks[s] * kv_stride + kv_head * dh;
        task.out = args.out.f32() + (qs[s] + i) * q_stride + h * dh;
        task.key_begin = args.window > 0 ? std::max<int64_t>(0, qi - args.window + 1) : 0;
        task.key_end = qi + 1;
        task.kv_stride = kv_stride;
        task.head_dim = dh;
        task.scale = args.scale;
        attend_row(task, scores.data());
      }
    }
  }
}

}  // namespace kto
