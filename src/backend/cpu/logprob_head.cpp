// Chunked LM head + log-softmax + gather: the log-probability of each label token, computed
// `chunk_rows` rows at a time so [T, V] logits never exist. Mirrors what TRL's KTO trainer does
// with HF logits: log_softmax(lm_head(h)) gathered at the labels, in fp32.
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

}  // namespace

// Per chunk: gather the selected hidden rows (threads over rows), one sgemm for the chunk's
// logits, then one thread per row for log-sum-exp and the gather.
void logprob_head_forward_cpu(const LogprobHeadArgs& args) {
  const int64_t n_tokens = args.hidden.shape[0], dim = args.hidden.shape[1];
  const int64_t vocab = args.weight.shape[0], n = args.rows.shape[0];
  const int64_t chunk = args.chunk_rows;
  KTO_ASSERT(chunk > 0, "logprob head chunk_rows must be positive");
  cpu::check_tensor(args.hidden, "logprob_head hidden", DType::F32, {n_tokens, dim});
  cpu::check_tensor(args.weight, "logprob_head weight", DType::F32, {vocab, dim});
  cpu::check_tensor(args.rows, "logprob_head rows", DType::I32, {n});
  cpu::check_tensor(args.labels, "logprob_head labels", DType::I32, {n});
  cpu::check_tensor(args.out, "logprob_head out", DType::F32, {n});
  if (cpu::present(args.logsumexp)) cpu::check_tensor(args.logsumexp, "logprob_head logsumexp", DType::F32, {n});
  cpu::check_tensor(args.workspace, "logprob_head workspace", DType::F32,
                    {logprob_head_workspace_floats(chunk, dim, vocab)});
  const int32_t* rows = args.rows.as<int32_t>();
  const int32_t* labels = args.labels.as<int32_t>();
  for (int64_t r = 0; r < n; ++r) {
    KTO_ASSERT(rows[r] >= 0 && rows[r] < n_tokens, "logprob_head row ", rows[r], " outside [0, ", n_tokens, ")");
    KTO_ASSERT(labels[r] >= 0 && labels[r] < vocab, "logprob_head label ", labels[r], " outside [0, ", vocab, ")");
  }
  float* gathered = args.workspace.f32();       // [chunk, D]
  float* logits = gathered + chunk * dim;       // [chunk, V]
  const float* hidden = args.hidden.f32();
  float* out = args.out.f32();
  float* lse_out = cpu::present(args.logsumexp) ? args.logsumexp.f32() : nullptr;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t m = std::min(chunk, n - begin);
#pragma omp parallel for schedule(static) if (m * dim >= cpu::kParallelMinWork)
    for (int64_t r = 0; r < m; ++r) {
      std::memcpy(gathered + r * dim, hidden + rows[begin + r] * dim, static_cast<size_t>(dim) * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(vocab),
                static_cast<blasint>(dim), 1.0f, gathered, static_cast<blasint>(dim), args.weight.f32(),
                static_cast<blasint>(dim), 0.0f, logits, static_cast<blasint>(vocab));
#pragma omp parallel for schedule(static) if (m * vocab >= cpu::kParallelMinWork)
    for (int64_t r = 0; r < m; ++r) {
      const float* row = logits + r * vocab;
      const float lse = row_logsumexp(row, vocab);
      out[begin + r] = row[labels[begin + r]] - lse;
      if (lse_out) lse_out[begin + r] = lse;
    }
  }
}

}  // namespace kto
