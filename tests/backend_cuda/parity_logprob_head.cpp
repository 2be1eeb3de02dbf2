// Chunked log-prob head, forward (log-probs, log-sum-exp, mean logit, entropy, argmax) and backward
// (d_hidden accumulated, with and without the saved log-sum-exp), against the fp32 CPU reference;
// uneven last chunks, repeated rows, V = 1000 and 32000. Also the per-sequence segment sum.
#include <numeric>

#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

using test::DeviceTensor;

struct HeadCase {
  int64_t n_tokens, dim, vocab, n_rows, chunk;
};

void check_head(const HeadCase& c, uint32_t seed) {
  const std::string tag = str_cat(" T=", c.n_tokens, " D=", c.dim, " V=", c.vocab, " N=", c.n_rows, " chunk=", c.chunk);
  const int64_t t = c.n_tokens, d = c.dim, v = c.vocab, n = c.n_rows;
  std::vector<float> hidden = test::random_bf16(t * d, seed, 2.0f), weight = test::random_bf16(v * d, seed + 1, 0.5f);
  std::vector<int32_t> rows = test::random_ints(n, seed + 2, 0, static_cast<int32_t>(t));
  std::vector<int32_t> labels = test::random_ints(n, seed + 3, 0, static_cast<int32_t>(v));
  if (n > 2) rows[1] = rows[0];  // a repeated row: its d_hidden gets both contributions
  std::vector<float> out(static_cast<size_t>(n)), lse(out.size()), mean(out.size()), entropy(out.size());
  std::vector<float> d_out = test::random_bf16(n, seed + 4), d_hidden = test::random_bf16(t * d, seed + 5, 0.1f);
  const std::vector<float> d_hidden0 = d_hidden;
  std::vector<float> cpu_ws(static_cast<size_t>(logprob_head_workspace_floats(c.chunk, d, v)));
  const Tensor ws_cpu = test::host_view(cpu_ws, {static_cast<int64_t>(cpu_ws.size())});
  // Fields are set by name: the structs grow optional members (e.g. for full fine-tuning).
  LogprobHeadArgs fwd;
  fwd.hidden = test::host_view(hidden, {t, d}), fwd.weight = test::host_view(weight, {v, d});
  fwd.rows = test::host_view(rows), fwd.labels = test::host_view(labels);
  fwd.out = test::host_view(out, {n}), fwd.logsumexp = test::host_view(lse, {n});
  fwd.workspace = ws_cpu, fwd.chunk_rows = c.chunk;
  std::vector<int32_t> argmax(static_cast<size_t>(n));
  LogprobHeadStats stats;
  stats.mean_logit = test::host_view(mean, {n}), stats.entropy = test::host_view(entropy, {n});
  stats.argmax = test::host_view(argmax);
  logprob_head_forward_cpu(fwd, stats);
  LogprobHeadBackwardArgs bwd;
  bwd.hidden = fwd.hidden, bwd.weight = fwd.weight, bwd.rows = fwd.rows, bwd.labels = fwd.labels;
  bwd.logsumexp = fwd.logsumexp, bwd.d_out = test::host_view(d_out, {n});
  bwd.d_hidden = test::host_view(d_hidden, {t, d}), bwd.workspace = ws_cpu, bwd.chunk_rows = c.chunk;
  std::vector<float> d_weight = test::random_bf16(v * d, seed + 6, 0.1f);
  const std::vector<float> d_weight0 = d_weight;
  bwd.d_weight = test::host_view(d_weight, {v, d});
  logprob_head_backward_cpu(bwd);
  DeviceTensor gh(DType::BF16, {t, d}, hidden), gw(DType::BF16, {v, d}, weight);
  DeviceTensor grows = DeviceTensor::i32(rows), glabels = DeviceTensor::i32(labels);
  DeviceTensor gout(DType::F32, {n}), glse(DType::F32, {n}), gmean(DType::F32, {n}), gent(DType::F32, {n});
  DeviceTensor gargmax = DeviceTensor::i32(std::vector<int32_t>(static_cast<size_t>(n), -1));
  DeviceTensor gdout(DType::F32, {n}, d_out), gdh(DType::BF16, {t, d}, d_hidden0), gdh2(DType::BF16, {t, d}, d_hidden0);
  DeviceTensor ws(DType::U8, {logprob_head_workspace_bytes_cuda(c.chunk, d, v)});
  CudaContext& ctx = test::gpu();
  fwd.hidden = gh.view(), fwd.weight = gw.view(), fwd.rows = grows.view(), fwd.labels = glabels.view();
  fwd.out = gout.view(), fwd.logsumexp = glse.view(), fwd.workspace = ws.view();
  stats.mean_logit = gmean.view(), stats.entropy = gent.view(), stats.argmax = gargmax.view();
  logprob_head_forward_cuda(fwd, stats, ctx);
  bwd.hidden = gh.view(), bwd.weight = gw.view(), bwd.rows = grows.view(), bwd.labels = glabels.view();
  bwd.logsumexp = glse.view(), bwd.d_out = gdout.view(), bwd.d_hidden = gdh.view(), bwd.workspace = ws.view();
  DeviceTensor gdw(DType::F32, {v, d}, d_weight0);
  bwd.d_weight = gdw.view();
  logprob_head_backward_cuda(bwd, ctx);
  bwd.logsumexp = Tensor{}, bwd.d_hidden = gdh2.view(), bwd.d_weight = Tensor{};
  logprob_head_backward_cuda(bwd, ctx);
  const test::Tolerance f32 = test::tolerance_for(DType::F32);
  test::expect_close("head logprob" + tag, gout.download(), out, test::scaled(f32, 10.0));
  test::expect_close("head logsumexp" + tag, glse.download(), lse, test::scaled(f32, 10.0));
  test::expect_close("head mean_logit" + tag, gmean.download(), mean, test::scaled(f32, 10.0));
  test::expect_close("head entropy" + tag, gent.download(), entropy, test::scaled(f32, 10.0));
  // The argmax of the same bf16 products in fp32: equal unless two logits tie within rounding.
  std::vector<int32_t> got_argmax(static_cast<size_t>(n));
  cuda_copy_to_host(ctx, got_argmax.data(), gargmax.view());
  int64_t argmax_differs = 0;
  for (size_t i = 0; i < got_argmax.size(); ++i) argmax_differs += got_argmax[i] != argmax[i];
  EXPECT_LE(argmax_differs, n / 50) << "head argmax" << tag;
  // d_logits are rounded to bf16 before the product with W, and d_hidden is bf16: a repeated row
  // (rows[1] == rows[0]) adds twice in bf16, each add rounding at the size of the partial sum,
  // which can exceed the final value when contributions cancel (the trainer's rows are unique).
  const test::Tolerance grad = test::scaled(test::tolerance_for(DType::BF16), 4.0);
  test::expect_close("head d_hidden" + tag, gdh.download(), d_hidden, grad);
  test::expect_close("head d_hidden (lse recomputed)" + tag, gdh2.download(), d_hidden, grad);
  // d_W sums N products of bf16-rounded d_logits with bf16 hidden rows (fp32 accumulation).
  test::expect_close("head d_weight" + tag, gdw.download(), d_weight, grad);
  gdw.expect_guards("head d_weight" + tag);
  for (const DeviceTensor* g : {&gout, &glse, &gmean, &gent, &gargmax, &gdh, &gdh2, &ws}) g->expect_guards("head" + tag);
}

TEST(ParityLogprobHead, ForwardAndBackwardMatchCpu) {
  KTO_REQUIRE_GPU();
  check_head({1, 64, 1000, 1, 64}, 1);
  check_head({127, 64, 1000, 50, 16}, 2);
  check_head({33, 128, 32000, 33, 7}, 3);
  check_head({300, 80, 5003, 200, 64}, 4);
}

TEST(ParitySegmentSum, ForwardAndBackward) {
  KTO_REQUIRE_GPU();
  std::vector<int32_t> starts{0, 1, 1, 8, 41, 1041};
  const int64_t n = starts.back(), s = static_cast<int64_t>(starts.size()) - 1;
  const std::vector<float> values = test::random_bf16(n, 1, 5.0f), d_out = test::random_bf16(s, 2);
  std::vector<float> sums(static_cast<size_t>(s), 0.0f), d_values(static_cast<size_t>(n));
  for (int64_t i = 0; i < s; ++i) {
    double sum = 0.0;
    for (int32_t r = starts[static_cast<size_t>(i)]; r < starts[static_cast<size_t>(i) + 1]; ++r) {
      sum += values[static_cast<size_t>(r)];
      d_values[static_cast<size_t>(r)] = d_out[static_cast<size_t>(i)];
    }
    sums[static_cast<size_t>(i)] = static_cast<float>(sum);
  }
  DeviceTensor gv(DType::F32, {n}, values), gs = DeviceTensor::i32(starts), gout(DType::F32, {s});
  DeviceTensor gd(DType::F32, {s}, d_out), gdv(DType::F32, {n});
  segment_sum_forward_cuda({gv.view(), gs.view(), gout.view()}, test::gpu());
  segment_sum_backward_cuda({gd.view(), gs.view(), gdv.view()}, test::gpu());
  test::expect_close("segment_sum", gout.download(), sums, test::tolerance_for(DType::F32));
  test::expect_close("segment_sum backward", gdv.download(), d_values, {0.0, 0.0});
  gout.expect_guards("segment_sum out");
  gdv.expect_guards("segment_sum d_values");
}

}  // namespace
}  // namespace kto
