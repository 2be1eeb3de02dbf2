// Variable-length causal grouped-query attention with an optional sliding window, fp32.
// Mirrors HF eager_attention_forward (softmax(q·kᵀ·scale + causal/sliding mask) · v, repeat_kv
// for GQA) as used by LlamaAttention / MistralAttention / Qwen2Attention / Qwen3Attention,
// without materialising any [T, T] mask or score matrix: one query row at a time. The backward
// (autograd of the same expression) recomputes each row's softmax from q and k instead of
// saving probabilities or log-sum-exps: attention is a small part of a LoRA step's FLOPs.
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

namespace {

struct BackwardItem {
  const AttentionBackwardArgs* args;
  int64_t q_begin, q_len;  // packed rows of this sequence's queries
  int64_t k_begin, k_len;  // packed rows of its keys
  int64_t kv_head;
};

// One (query, head) row: recomputes p over the visible keys into `p`, then writes d_q and adds
// into d_k / d_v. `p` and `dp` are scratch of at least k_len floats.
void attend_row_backward(const BackwardItem& item, int64_t i, int64_t h, float* p, float* dp) {
  const AttentionBackwardArgs& a = *item.args;
  const int64_t dh = a.head_dim, q_stride = a.n_heads * dh, kv_stride = a.n_heads_kv * dh;
  const int64_t qi = item.k_len - item.q_len + i;
  const int64_t begin = a.window > 0 ? std::max<int64_t>(0, qi - a.window + 1) : 0, end = qi + 1;
  const float* q = a.q.f32() + (item.q_begin + i) * q_stride + h * dh;
  const float* d_o = a.d_out.f32() + (item.q_begin + i) * q_stride + h * dh;
  const int64_t kv_off = item.k_begin * kv_stride + item.kv_head * dh;
  const float* k = a.k.f32() + kv_off;
  const float* v = a.v.f32() + kv_off;
  float max_score = -INFINITY;
  for (int64_t j = begin; j < end; ++j) {
    float dot = 0.0f;
    for (int64_t d = 0; d < dh; ++d) dot += q[d] * k[j * kv_stride + d];
    p[j] = dot * a.scale;
    max_score = std::max(max_score, p[j]);
  }
  double denom = 0.0;
  for (int64_t j = begin; j < end; ++j) denom += (p[j] = std::exp(p[j] - max_score));
  double p_dot_dp = 0.0;
  for (int64_t j = begin; j < end; ++j) {
    p[j] = static_cast<float>(p[j] / denom);
    float dot = 0.0f;
    for (int64_t d = 0; d < dh; ++d) dot += d_o[d] * v[j * kv_stride + d];
    dp[j] = dot;
    p_dot_dp += static_cast<double>(p[j]) * dot;
  }
  float* d_q = a.d_q.f32() + (item.q_begin + i) * q_stride + h * dh;
  float* d_k = a.d_k.f32() + kv_off;
  float* d_v = a.d_v.f32() + kv_off;
  for (int64_t d = 0; d < dh; ++d) d_q[d] = 0.0f;
  for (int64_t j = begin; j < end; ++j) {
    const float ds = p[j] * (dp[j] - static_cast<float>(p_dot_dp)) * a.scale;
    for (int64_t d = 0; d < dh; ++d) {
      d_q[d] += ds * k[j * kv_stride + d];
      d_k[j * kv_stride + d] += ds * q[d];
      d_v[j * kv_stride + d] += p[j] * d_o[d];
    }
  }
}

}  // namespace

// Threads map to (sequence, kv head) pairs: a pair owns the d_k / d_v rows of its head and
// the d_q rows of the query heads that read it, so no two threads write the same float.
// Numerics as the forward (fp32 products, normaliser and Σ p·dp in double).
void attention_backward_cpu(const AttentionBackwardArgs& args) {
  const int64_t n_seqs = args.q_starts.shape[0] - 1;
  check_attention_args({args.q, args.k, args.v, args.q_starts, args.k_starts, args.d_out, args.n_heads,
                        args.n_heads_kv, args.head_dim, args.window, args.scale},
                       n_seqs);
  cpu::check_tensor(args.d_q, "attention d_q", DType::F32, {args.q.shape[0], args.n_heads * args.head_dim});
  cpu::check_tensor(args.d_k, "attention d_k", DType::F32, {args.k.shape[0], args.n_heads_kv * args.head_dim});
  cpu::check_tensor(args.d_v, "attention d_v", DType::F32, {args.k.shape[0], args.n_heads_kv * args.head_dim});
  const int32_t* qs = args.q_starts.as<int32_t>();
  const int32_t* ks = args.k_starts.as<int32_t>();
  const int64_t group = args.n_heads / args.n_heads_kv, dh = args.head_dim;
  const int64_t kv_stride = args.n_heads_kv * dh, n_items = n_seqs * args.n_heads_kv;
  int64_t max_keys = 0, work = 0;
  for (int64_t s = 0; s < n_seqs; ++s) {
    max_keys = std::max<int64_t>(max_keys, ks[s + 1] - ks[s]);
    work += int64_t{qs[s + 1] - qs[s]} * (ks[s + 1] - ks[s]) * args.n_heads * dh;
  }
#pragma omp parallel if (work >= cpu::kParallelMinWork)
  {
    std::vector<float> p(static_cast<size_t>(max_keys)), dp(static_cast<size_t>(max_keys));
#pragma omp for schedule(dynamic)
    for (int64_t it = 0; it < n_items; ++it) {
      const int64_t s = it / args.n_heads_kv;
      const BackwardItem item{&args, qs[s], qs[s + 1] - qs[s], ks[s], ks[s + 1] - ks[s], it % args.n_heads_kv};
      for (int64_t j = 0; j < item.k_len; ++j) {
        for (int64_t d = 0; d < dh; ++d) {
          args.d_k.f32()[(item.k_begin + j) * kv_stride + item.kv_head * dh + d] = 0.0f;
          args.d_v.f32()[(item.k_begin + j) * kv_stride + item.kv_head * dh + d] = 0.0f;
        }
      }
      for (int64_t h = item.kv_head * group; h < (item.kv_head + 1) * group; ++h) {
        for (int64_t i = 0; i < item.q_len; ++i) attend_row_backward(item, i, h, p.data(), dp.data());
      }
    }
  }
}

}  // namespace kto
