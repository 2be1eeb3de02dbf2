// Varlen causal GQA attention, forward and backward: the fused CUDA kernels against the fp32 CPU
// reference. Head dims 6, 64, 80, 128; GQA ratios 1, 4, 8; sliding windows; very uneven packs
// (lengths 1, 7, 33, 127, 300); KV-cache style q_len < k_len; one 4097-token sequence.
#include <cmath>

#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

using test::DeviceTensor;

struct AttentionCase {
  int64_t n_heads, n_heads_kv, head_dim, window;
  std::vector<int32_t> q_lens, k_lens;  // k_lens empty = same as q_lens (packed training forward)
};

std::vector<int32_t> starts_of(const std::vector<int32_t>& lens) {
  std::vector<int32_t> starts{0};
  for (int32_t len : lens) starts.push_back(starts.back() + len);
  return starts;
}

std::string describe(const AttentionCase& c) {
  std::string s = str_cat(" H=", c.n_heads, "/", c.n_heads_kv, " Dh=", c.head_dim, " win=", c.window, " lens");
  for (int32_t len : c.q_lens) s += str_cat(" ", len);
  return s;
}

void check_attention(const AttentionCase& c, uint32_t seed) {
  const std::string tag = describe(c);
  std::vector<int32_t> q_starts = starts_of(c.q_lens), k_starts = starts_of(c.k_lens.empty() ? c.q_lens : c.k_lens);
  const int64_t tq = q_starts.back(), tk = k_starts.back();
  const int64_t qw = c.n_heads * c.head_dim, kw = c.n_heads_kv * c.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<float> q = test::random_bf16(tq * qw, seed, 2.0f), k = test::random_bf16(tk * kw, seed + 1, 2.0f);
  std::vector<float> v = test::random_bf16(tk * kw, seed + 2), d_out = test::random_bf16(tq * qw, seed + 3);
  std::vector<float> out(q.size()), d_q(q.size()), d_k(k.size()), d_v(v.size());
  attention_forward_cpu({test::host_view(q, {tq, qw}), test::host_view(k, {tk, kw}), test::host_view(v, {tk, kw}),
                         test::host_view(q_starts), test::host_view(k_starts), test::host_view(out, {tq, qw}),
                         c.n_heads, c.n_heads_kv, c.head_dim, c.window, scale});
  attention_backward_cpu({test::host_view(q, {tq, qw}), test::host_view(k, {tk, kw}), test::host_view(v, {tk, kw}),
                          test::host_view(q_starts), test::host_view(k_starts), test::host_view(d_out, {tq, qw}),
                          test::host_view(d_q, {tq, qw}), test::host_view(d_k, {tk, kw}), test::host_view(d_v, {tk, kw}),
                          c.n_heads, c.n_heads_kv, c.head_dim, c.window, scale});
  DeviceTensor gq(DType::BF16, {tq, qw}, q), gk(DType::BF16, {tk, kw}, k), gv(DType::BF16, {tk, kw}, v);
  DeviceTensor gqs = DeviceTensor::i32(q_starts), gks = DeviceTensor::i32(k_starts);
  DeviceTensor gout(DType::BF16, {tq, qw}), gdout(DType::BF16, {tq, qw}, d_out);
  DeviceTensor gdq(DType::BF16, {tq, qw}), gdk(DType::BF16, {tk, kw}), gdv(DType::BF16, {tk, kw});
  DeviceTensor ws(DType::U8, {attention_backward_workspace_bytes_cuda(tq, c.n_heads)});
  CudaContext& ctx = test::gpu();
  attention_forward_cuda({gq.view(), gk.view(), gv.view(), gqs.view(), gks.view(), gout.view(), c.n_heads, c.n_heads_kv,
                          c.head_dim, c.window, scale}, ctx);
  attention_backward_cuda({gq.view(), gk.view(), gv.view(), gqs.view(), gks.view(), gdout.view(), gdq.view(), gdk.view(),
                           gdv.view(), c.n_heads, c.n_heads_kv, c.head_dim, c.window, scale}, ws.view(), ctx);
  ctx.synchronize("attention parity");
  const test::Tolerance tol = test::tolerance_for(DType::BF16);
  test::expect_close("attention out" + tag, gout.download(), out, tol);
  test::expect_close("attention d_q" + tag, gdq.download(), d_q, tol);
  test::expect_close("attention d_k" + tag, gdk.download(), d_k, tol);
  test::expect_close("attention d_v" + tag, gdv.download(), d_v, tol);
  gout.expect_guards("attention out");
  gdq.expect_guards("attention d_q");
  gdk.expect_guards("attention d_k");
  gdv.expect_guards("attention d_v");
  ws.expect_guards("attention workspace");
}

TEST(ParityAttention, SmallHeadDimUnevenPack) {
  KTO_REQUIRE_GPU();
  check_attention({2, 1, 6, 0, {1, 5, 7}, {}}, 1);
  check_attention({2, 2, 10, 3, {7, 1, 33}, {}}, 2);
}

TEST(ParityAttention, HeadDim64Gqa1) {
  KTO_REQUIRE_GPU();
  check_attention({4, 4, 64, 0, {1, 7, 33, 127}, {}}, 3);
}

TEST(ParityAttention, HeadDim80Gqa4Window) {
  KTO_REQUIRE_GPU();
  check_attention({8, 2, 80, 16, {33, 1, 127, 7}, {}}, 4);
  check_attention({8, 2, 80, 100, {1, 300, 2, 64, 1}, {}}, 5);
}

TEST(ParityAttention, HeadDim128Gqa8) {
  KTO_REQUIRE_GPU();
  check_attention({8, 1, 128, 0, {127, 65, 1}, {}}, 6);
}

TEST(ParityAttention, KvCacheQueriesShorterThanKeys) {
  KTO_REQUIRE_GPU();
  check_attention({4, 2, 64, 0, {1, 3, 70}, {33, 7, 200}}, 7);
  check_attention({4, 2, 64, 20, {1, 3, 70}, {33, 7, 200}}, 8);
}

TEST(ParityAttention, LongSequence4097) {
  KTO_REQUIRE_GPU();
  check_attention({2, 1, 128, 0, {4097}, {}}, 9);
  check_attention({2, 2, 64, 1000, {4097}, {}}, 10);
}

}  // namespace
}  // namespace kto
