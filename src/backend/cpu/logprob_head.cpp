// Chunked LM head + log-softmax + gather: the log-probability of each label token, computed
// `chunk_rows` rows at a time so [T, V] logits never exist. Mirrors what TRL's KTO trainer does
// with HF logits: log_softmax(lm_head(h)) gathered at the labels, in fp32, plus the per-row
// metric statistics TRL logs (vocabulary-mean logit, predictive entropy). The backward is the
// autograd of the same expression w.r.t. h (and, for full fine-tuning, W), recomputing each
// chunk's logits.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {

int64_t logprob_head_workspace_floats(int64_t chunk_rows, int64_t hidden_size, int64_t vocab_size) {
  return chunk_rows * (hidden_size + vocab_size);
}

namespace {

// Max-subtracted log-sum-exp of one logits row, summed in double.
float row_logsumexp(const float* logits, int64_t vocab) {
  float max_logit = -INFINITY;
  for (int64_t v = 0; v < vocab; ++v) max_logit = std::max(max_logit, logits[v]);
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v] - max_logit));
  return static_cast<float>(max_logit + std::log(sum));
}

struct RowStats {
  float* mean_logit;  // [N] or nullptr
  float* entropy;     // [N] or nullptr
  int32_t* argmax;    // [N] or nullptr
};

// Vocabulary-mean logit and entropy H = lse - Σ p·logit of one row, in double.
void row_stats(const float* logits, int64_t vocab, float lse, const RowStats& stats, int64_t index) {
  double sum = 0.0, expected = 0.0;
  for (int64_t v = 0; v < vocab; ++v) {
    sum += logits[v];
    expected += std::exp(static_cast<double>(logits[v]) - lse) * logits[v];
  }
  if (stats.mean_logit) stats.mean_logit[index] = static_cast<float>(sum / static_cast<double>(vocab));
  if (stats.entropy) stats.entropy[index] = static_cast<float>(lse - expected);
  if (stats.argmax) {
    int64_t best = 0;
    for (int64_t v = 1; v < vocab; ++v) best = logits[v] > logits[best] ? v : best;  // first of ties
    stats.argmax[index] = static_cast<int32_t>(best);
  }
}

void check_head(const Tensor& hidden, const Tensor& weight, const Tensor& rows, const Tensor& labels,
                const Tensor& workspace, int64_t chunk) {
  const int64_t n_tokens = hidden.shape[0], dim = hidden.shape[1];
  const int64_t vocab = weight.shape[0], n = rows.shape[0];
  KTO_ASSERT(chunk > 0, "logprob head chunk_rows must be positive");
  cpu::check_tensor(hidden, "logprob_head hidden", DType::F32, {n_tokens, dim});
  cpu::check_tensor(weight, "logprob_head weight", DType::F32, {vocab, dim});
  cpu::check_tensor(rows, "logprob_head rows", DType::I32, {n});
  cpu::check_tensor(labels, "logprob_head labels", DType::I32, {n});
  cpu::check_tensor(workspace, "logprob_head workspace", DType::F32, {logprob_head_workspace_floats(chunk, dim, vocab)});
  for (int64_t r = 0; r < n; ++r) {
    const int32_t row = rows.as<int32_t>()[r], label = labels.as<int32_t>()[r];
    KTO_ASSERT(row >= 0 && row < n_tokens, "logprob_head row ", row, " outside [0, ", n_tokens, ")");
    KTO_ASSERT(label >= 0 && label < vocab, "logprob_head label ", label, " outside [0, ", vocab, ")");
  }
}

// logits[m, V] = hidden[rows[begin .. begin+m)] · Wᵀ, through the gathered rows [m, D].
void chunk_logits(const Tensor& hidden, const Tensor& weight, const int32_t* rows, int64_t m, float* gathered,
                  float* logits) {
  const int64_t dim = hidden.shape[1], vocab = weight.shape[0];
#pragma omp parallel for schedule(static) if (m * dim >= cpu::kParallelMinWork)
  for (int64_t r = 0; r < m; ++r) {
    std::memcpy(gathered + r * dim, hidden.f32() + rows[r] * dim, static_cast<size_t>(dim) * sizeof(float));
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(vocab),
              static_cast<blasint>(dim), 1.0f, gathered, static_cast<blasint>(dim), weight.f32(),
              static_cast<blasint>(dim), 0.0f, logits, static_cast<blasint>(vocab));
}

}  // namespace

// Per chunk: gather the selected hidden rows (threads over rows), one sgemm for the chunk's
// logits, then one thread per row for log-sum-exp and the gather.
void logprob_head_forward_cpu(const LogprobHeadArgs& args) { logprob_head_forward_cpu(args, LogprobHeadStats{}); }

void logprob_head_forward_cpu(const LogprobHeadArgs& args, const LogprobHeadStats& out_stats) {
  check_head(args.hidden, args.weight, args.rows, args.labels, args.workspace, args.chunk_rows);
  const int64_t dim = args.hidden.shape[1], vocab = args.weight.shape[0], n = args.rows.shape[0];
  const int64_t chunk = args.chunk_rows;
  cpu::check_tensor(args.out, "logprob_head out", DType::F32, {n});
  if (cpu::present(args.logsumexp)) cpu::check_tensor(args.logsumexp, "logprob_head logsumexp", DType::F32, {n});
  const Tensor& mean_logit = out_stats.mean_logit;
  const Tensor& entropy = out_stats.entropy;
  if (cpu::present(mean_logit)) cpu::check_tensor(mean_logit, "logprob_head mean_logit", DType::F32, {n});
  if (cpu::present(entropy)) cpu::check_tensor(entropy, "logprob_head entropy", DType::F32, {n});
  if (cpu::present(out_stats.argmax)) cpu::check_tensor(out_stats.argmax, "logprob_head argmax", DType::I32, {n});
  const RowStats stats{cpu::present(mean_logit) ? mean_logit.f32() : nullptr,
                       cpu::present(entropy) ? entropy.f32() : nullptr,
                       cpu::present(out_stats.argmax) ? out_stats.argmax.as<int32_t>() : nullptr};
  const int32_t* rows = args.rows.as<int32_t>();
  const int32_t* labels = args.labels.as<int32_t>();
  float* gathered = args.workspace.f32();  // [chunk, D]
  float* logits = gathered + chunk * dim;  // [chunk, V]
  float* out = args.out.f32();
  float* lse_out = cpu::present(args.logsumexp) ? args.logsumexp.f32() : nullptr;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t m = std::min(chunk, n - begin);
    chunk_logits(args.hidden, args.weight, rows + begin, m, gathered, logits);
#pragma omp parallel for schedule(static) if (m * vocab >= cpu::kParallelMinWork)
    for (int64_t r = 0; r < m; ++r) {
      const float* row = logits + r * vocab;
      const float lse = row_logsumexp(row, vocab);
      out[begin + r] = row[labels[begin + r]] - lse;
      if (lse_out) lse_out[begin + r] = lse;
      if (stats.mean_logit || stats.entropy || stats.argmax) row_stats(row, vocab, lse, stats, begin + r);
    }
  }
}

// Per chunk: recompute the logits (as the forward), turn each row into its logit gradient in
// place (one thread per row), d_gathered = d_logits · W with one sgemm, then scatter-add into
// d_hidden on the calling thread (rows may repeat).
void logprob_head_backward_cpu(const LogprobHeadBackwardArgs& args) {
  check_head(args.hidden, args.weight, args.rows, args.labels, args.workspace, args.chunk_rows);
  const int64_t dim = args.hidden.shape[1], vocab = args.weight.shape[0], n = args.rows.shape[0];
  const int64_t chunk = args.chunk_rows;
  cpu::check_tensor(args.d_out, "logprob_head d_out", DType::F32, {n});
  cpu::check_tensor(args.d_hidden, "logprob_head d_hidden", DType::F32, {args.hidden.shape[0], dim});
  const bool saved_lse = cpu::present(args.logsumexp);
  if (saved_lse) cpu::check_tensor(args.logsumexp, "logprob_head logsumexp", DType::F32, {n});
  const bool want_dw = cpu::present(args.d_weight);
  if (want_dw) cpu::check_tensor(args.d_weight, "logprob_head d_weight", DType::F32, {vocab, dim});
  const int32_t* rows = args.rows.as<int32_t>();
  const int32_t* labels = args.labels.as<int32_t>();
  float* gathered = args.workspace.f32();  // [chunk, D], then d_gathered
  float* logits = gathered + chunk * dim;  // [chunk, V], then d_logits
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t m = std::min(chunk, n - begin);
    chunk_logits(args.hidden, args.weight, rows + begin, m, gathered, logits);
#pragma omp parallel for schedule(static) if (m * vocab >= cpu::kParallelMinWork)
    for (int64_t r = 0; r < m; ++r) {
      float* row = logits + r * vocab;
      const float lse = saved_lse ? args.logsumexp.f32()[begin + r] : row_logsumexp(row, vocab);
      const float d = args.d_out.f32()[begin + r];
      for (int64_t v = 0; v < vocab; ++v) row[v] = -d * std::exp(row[v] - lse);
      row[labels[begin + r]] += d;
    }
    if (want_dw) {  // d_W += d_logitsᵀ · gathered, before gathered is overwritten
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(vocab), static_cast<blasint>(dim),
                  static_cast<blasint>(m), 1.0f, logits, static_cast<blasint>(vocab), gathered,
                  static_cast<blasint>(dim), 1.0f, args.d_weight.f32(), static_cast<blasint>(dim));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(dim),
                static_cast<blasint>(vocab), 1.0f, logits, static_cast<blasint>(vocab), args.weight.f32(),
                static_cast<blasint>(dim), 0.0f, gathered, static_cast<blasint>(dim));
    for (int64_t r = 0; r < m; ++r) {
      float* dst = args.d_hidden.f32() + rows[begin + r] * dim;
      for (int64_t d = 0; d < dim; ++d) dst[d] += gathered[r * dim + d];
    }
  }
}

}  // namespace kto
