// Backward ops against central finite differences of their own fp32 forwards (the llama.cpp
// test-backend-ops "grad" mode): objective f = Σ w · out with fixed random w in double, analytic
// gradient from the backward with d_out = w, numeric (f(p + h) - f(p - h)) / 2h per element.
// Criterion: max |numeric - analytic| <= kTol · max |analytic| over each gradient tensor, with
// kTol = 2e-4 and h = 1e-2 (observed: <= 4e-5; fp32 rounding of f divided by 2h stays below it).
// Shapes are awkward on purpose: length-1 sequences, windows, GQA 2:1 and 4:1, Dh = 6 and 10.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "backend/ops.h"

namespace kto {
namespace {

constexpr double kStep = 1e-2;
constexpr double kTol = 2e-4;

std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::vector<float> out(static_cast<size_t>(n));
  for (float& v : out) v = scale * (static_cast<float>(rng() % 20001) / 10000.0f - 1.0f);
  return out;
}

Tensor view(std::vector<float>& v, Shape shape) { return Tensor{v.data(), DType::F32, shape}; }
Tensor view(std::vector<int32_t>& v) { return Tensor{v.data(), DType::I32, Shape{static_cast<int64_t>(v.size())}}; }

double dot(const std::vector<float>& a, const std::vector<float>& w) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * w[i];
  return s;
}

struct Param {
  const char* name;
  std::vector<float>* values;
  const std::vector<float>* grad;  // analytic
};

// Perturbs every element of every param in turn and compares with the analytic gradient.
void fd_check(const std::function<double()>& objective, const std::vector<Param>& params) {
  for (const Param& p : params) {
    ASSERT_EQ(p.values->size(), p.grad->size()) << p.name;
    double worst = 0.0, largest = 0.0;
    for (size_t i = 0; i < p.values->size(); ++i) {
      const float saved = (*p.values)[i];
      (*p.values)[i] = static_cast<float>(saved + kStep);
      const double up = objective(), h_up = static_cast<double>((*p.values)[i]) - saved;
      (*p.values)[i] = static_cast<float>(saved - kStep);
      const double down = objective(), h_down = saved - static_cast<double>((*p.values)[i]);
      (*p.values)[i] = saved;
      const double numeric = (up - down) / (h_up + h_down);
      worst = std::max(worst, std::abs(numeric - (*p.grad)[i]));
      largest = std::max(largest, std::abs(static_cast<double>((*p.grad)[i])));
    }
    std::printf("  %-22s max |fd - analytic| / max |grad| = %.2e\n", p.name, largest > 0 ? worst / largest : worst);
    EXPECT_GT(largest, 0.0) << p.name << ": gradient is all zero";
    EXPECT_LE(worst, kTol * largest) << p.name << ": max |fd - analytic| " << worst << " vs max |grad| " << largest;
  }
}

TEST(OpsBackward, RmsNormMatchesFiniteDifferences) {
  for (const int64_t width : {2, 7, 24}) {
    const int64_t rows = 3;
    std::vector<float> x = random_values(rows * width, 1, 2.0f), w = random_values(width, 2);
    for (float& v : w) v += 1.5f;
    const std::vector<float> d_out = random_values(rows * width, 3);
    std::vector<float> out(x.size()), d_x(x.size(), 0.5f);
    auto objective = [&] {
      rms_norm_forward_cpu({view(x, {rows, width}), view(w, {width}), view(out, {rows, width}), 1e-5f});
      return dot(out, d_out);
    };
    std::vector<float> d_out_copy = d_out;
    rms_norm_backward_cpu({view(x, {rows, width}), view(w, {width}), view(d_out_copy, {rows, width}),
                           view(d_x, {rows, width}), 1e-5f, GradStore::Overwrite});
    fd_check(objective, {{"rms_norm d_x", &x, &d_x}});
    std::vector<float> acc(x.size(), 0.25f);
    rms_norm_backward_cpu({view(x, {rows, width}), view(w, {width}), view(d_out_copy, {rows, width}),
                           view(acc, {rows, width}), 1e-5f, GradStore::Accumulate});
    for (size_t i = 0; i < acc.size(); ++i) EXPECT_FLOAT_EQ(acc[i], d_x[i] + 0.25f);
  }
}

TEST(OpsBackward, RopeMatchesFiniteDifferences) {
  const int64_t n_tokens = 4, n_heads = 3, head_dim = 6;
  std::vector<int32_t> positions{0, 5, 17, 200};
  std::vector<float> inv_freq{1.0f, 0.1f, 0.01f};
  std::vector<float> x = random_values(n_tokens * n_heads * head_dim, 4);
  const std::vector<float> d_out = random_values(x.size(), 5);
  std::vector<float> work(x.size());
  const Shape shape{n_tokens, n_heads * head_dim};
  auto objective = [&] {
    work = x;
    rope_forward_cpu({view(work, shape), view(positions), view(inv_freq, {3}), n_heads, head_dim});
    return dot(work, d_out);
  };
  std::vector<float> d_x = d_out;
  rope_backward_cpu({view(d_x, shape), view(positions), view(inv_freq, {3}), n_heads, head_dim});
  fd_check(objective, {{"rope d_x", &x, &d_x}});
}

struct AttentionCase {
  int64_t n_heads, n_heads_kv, head_dim, window;
  std::vector<int32_t> q_starts, k_starts;
};

void check_attention_backward(AttentionCase c, uint32_t seed) {
  const int64_t tq = c.q_starts.back(), tk = c.k_starts.back();
  const int64_t q_width = c.n_heads * c.head_dim, kv_width = c.n_heads_kv * c.head_dim;
  const int64_t n_seqs = static_cast<int64_t>(c.q_starts.size()) - 1;
  std::vector<float> q = random_values(tq * q_width, seed, 1.5f), k = random_values(tk * kv_width, seed + 1, 1.5f);
  std::vector<float> v = random_values(tk * kv_width, seed + 2);
  const std::vector<float> d_out = random_values(tq * q_width, seed + 3);
  std::vector<float> out(d_out.size()), d_q(q.size(), NAN), d_k(k.size(), NAN), d_v(v.size(), NAN);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  auto objective = [&] {
    attention_forward_cpu({view(q, {tq, q_width}), view(k, {tk, kv_width}), view(v, {tk, kv_width}),
                           view(c.q_starts), view(c.k_starts), view(out, {tq, q_width}), c.n_heads, c.n_heads_kv,
                           c.head_dim, c.window, scale});
    return dot(out, d_out);
  };
  std::vector<float> d_out_copy = d_out;
  attention_backward_cpu({view(q, {tq, q_width}), view(k, {tk, kv_width}), view(v, {tk, kv_width}), view(c.q_starts),
                          view(c.k_starts), view(d_out_copy, {tq, q_width}), view(d_q, {tq, q_width}),
                          view(d_k, {tk, kv_width}), view(d_v, {tk, kv_width}), c.n_heads, c.n_heads_kv, c.head_dim,
                          c.window, scale});
  (void)n_seqs;
  fd_check(objective, {{"attention d_q", &q, &d_q}, {"attention d_k", &k, &d_k}, {"attention d_v", &v, &d_v}});
}

TEST(OpsBackward, AttentionGqa2to1MatchesFiniteDifferences) {
  check_attention_backward({2, 1, 6, 0, {0, 1, 6, 13}, {0, 1, 6, 13}}, 10);
}

TEST(OpsBackward, AttentionGqa4to1WindowMatchesFiniteDifferences) {
  check_attention_backward({4, 1, 10, 3, {0, 6, 7, 16}, {0, 6, 7, 16}}, 20);
}

TEST(OpsBackward, AttentionQueriesAfterCachedKeysMatchFiniteDifferences) {
  check_attention_backward({4, 2, 6, 4, {0, 2, 3}, {0, 7, 9}}, 30);  // q_len < k_len, window hides old keys
}

TEST(OpsBackward, SwigluMatchesFiniteDifferences) {
  const Shape shape{3, 5};
  std::vector<float> gate = random_values(15, 40, 4.0f), up = random_values(15, 41);
  const std::vector<float> d_out = random_values(15, 42);
  std::vector<float> out(15), d_gate(15), d_up(15);
  auto objective = [&] {
    swiglu_forward_cpu({view(gate, shape), view(up, shape), view(out, shape)});
    return dot(out, d_out);
  };
  std::vector<float> d_out_copy = d_out;
  swiglu_backward_cpu({view(gate, shape), view(up, shape), view(d_out_copy, shape), view(d_gate, shape),
                       view(d_up, shape)});
  fd_check(objective, {{"swiglu d_gate", &gate, &d_gate}, {"swiglu d_up", &up, &d_up}});
}

enum class Dropout { Off, On };

void check_lora_linear(Dropout dropout) {
  const int64_t rows = 5, in = 7, out_features = 6, rank = 3;
  const float scale = 1.7f;
  std::vector<float> x = random_values(rows * in, 50), w = random_values(out_features * in, 51);
  std::vector<float> bias = random_values(out_features, 52), a = random_values(rank * in, 53);
  std::vector<float> b = random_values(out_features * rank, 54);
  std::vector<float> mask;
  if (dropout == Dropout::On) {
    mask = random_values(rows * in, 55);
    for (float& m : mask) m = m > -0.3f ? 1.0f / 0.65f : 0.0f;  // p ≈ 0.35
  }
  const std::vector<float> d_out = random_values(rows * out_features, 56);
  std::vector<float> out(d_out.size()), xa(static_cast<size_t>(rows * rank));
  const Tensor mask_view = mask.empty() ? Tensor{} : view(mask, {rows, in});
  auto forward = [&] {
    lora_linear_forward_cpu({view(x, {rows, in}), view(w, {out_features, in}), view(bias, {out_features}),
                             view(a, {rank, in}), view(b, {out_features, rank}), mask_view, view(xa, {rows, rank}),
                             view(out, {rows, out_features}), scale});
  };
  auto objective = [&] {
    forward();
    return dot(out, d_out);
  };
  forward();
  std::vector<float> d_out_copy = d_out, d_x(x.size(), 0.5f), d_a(a.size(), 0.0f), d_b(b.size(), 0.0f);
  LoraLinearBackwardArgs args{view(x, {rows, in}), view(w, {out_features, in}), view(a, {rank, in}),
                              view(b, {out_features, rank}), mask_view, view(xa, {rows, rank}),
                              view(d_out_copy, {rows, out_features}), view(d_x, {rows, in}), view(d_a, {rank, in}),
                              view(d_b, {out_features, rank}), scale, GradStore::Overwrite};
  lora_linear_backward_cpu(args);
  fd_check(objective, {{"lora_linear d_x", &x, &d_x}, {"lora_linear d_A", &a, &d_a}, {"lora_linear d_B", &b, &d_b}});
  // A second call accumulates d_A and d_B and (with Accumulate) d_x.
  std::vector<float> d_x2 = d_x, d_a2 = d_a, d_b2 = d_b;
  args.d_x = view(d_x2, {rows, in}), args.d_lora_a = view(d_a2, {rank, in}), args.d_lora_b = view(d_b2, {out_features, rank});
  args.store = GradStore::Accumulate;
  lora_linear_backward_cpu(args);
  for (size_t i = 0; i < d_x.size(); ++i) EXPECT_NEAR(d_x2[i], 2 * d_x[i], 1e-5);
  for (size_t i = 0; i < d_a.size(); ++i) EXPECT_NEAR(d_a2[i], 2 * d_a[i], 1e-5);
  for (size_t i = 0; i < d_b.size(); ++i) EXPECT_NEAR(d_b2[i], 2 * d_b[i], 1e-5);
}

TEST(OpsBackward, LoraLinearMatchesFiniteDifferences) { check_lora_linear(Dropout::Off); }
TEST(OpsBackward, LoraLinearWithDropoutMatchesFiniteDifferences) { check_lora_linear(Dropout::On); }

TEST(OpsBackward, LoraLinearWithoutAdapterIsPlainLinear) {
  const int64_t rows = 4, in = 5, out_features = 3;
  std::vector<float> x = random_values(rows * in, 60), w = random_values(out_features * in, 61);
  std::vector<float> out(static_cast<size_t>(rows * out_features)), plain(out.size());
  lora_linear_forward_cpu({view(x, {rows, in}), view(w, {out_features, in}), Tensor{}, Tensor{}, Tensor{}, Tensor{},
                           Tensor{}, view(out, {rows, out_features}), 1.0f});
  linear_forward_cpu({view(x, {rows, in}), view(w, {out_features, in}), Tensor{}, view(plain, {rows, out_features})});
  EXPECT_EQ(out, plain);
  const std::vector<float> d_out = random_values(rows * out_features, 62);
  std::vector<float> d_out_copy = d_out, d_x(x.size());
  lora_linear_backward_cpu({view(x, {rows, in}), view(w, {out_features, in}), Tensor{}, Tensor{}, Tensor{}, Tensor{},
                            view(d_out_copy, {rows, out_features}), view(d_x, {rows, in}), Tensor{}, Tensor{}, 1.0f,
                            GradStore::Overwrite});
  auto objective = [&] {
    linear_forward_cpu({view(x, {rows, in}), view(w, {out_features, in}), Tensor{}, view(out, {rows, out_features})});
    return dot(out, d_out);
  };
  fd_check(objective, {{"linear d_x", &x, &d_x}});
}

TEST(OpsBackward, LogprobHeadMatchesFiniteDifferencesAndStatistics) {
  const int64_t n_tokens = 6, dim = 5, vocab = 11, chunk = 2;
  std::vector<float> hidden = random_values(n_tokens * dim, 70, 2.0f), weight = random_values(vocab * dim, 71);
  std::vector<int32_t> rows{5, 0, 3, 3, 1}, labels{7, 10, 0, 4, 3};
  const int64_t n = static_cast<int64_t>(rows.size());
  const std::vector<float> d_out = random_values(n, 72);
  std::vector<float> out(rows.size()), lse(rows.size()), mean_logit(rows.size()), entropy(rows.size());
  std::vector<float> workspace(static_cast<size_t>(logprob_head_workspace_floats(chunk, dim, vocab)));
  auto objective = [&] {
    logprob_head_forward_cpu({view(hidden, {n_tokens, dim}), view(weight, {vocab, dim}), view(rows), view(labels),
                              view(out, {n}), view(lse, {n}), view(workspace, {static_cast<int64_t>(workspace.size())}),
                              chunk},
                             {view(mean_logit, {n}), view(entropy, {n}), Tensor{}});
    return dot(out, d_out);
  };
  objective();
  for (int64_t r = 0; r < n; ++r) {  // statistics against a direct double computation
    std::vector<double> logits(static_cast<size_t>(vocab));
    double mx = -INFINITY, sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) {
      double s = 0.0;
      for (int64_t d = 0; d < dim; ++d) s += double{hidden[static_cast<size_t>(rows[static_cast<size_t>(r)] * dim + d)]} * weight[static_cast<size_t>(v * dim + d)];
      logits[static_cast<size_t>(v)] = s, mx = std::max(mx, s), sum += s;
    }
    double z = 0.0, ent = 0.0;
    for (double l : logits) z += std::exp(l - mx);
    for (double l : logits) ent -= std::exp(l - mx) / z * (l - mx - std::log(z));
    EXPECT_NEAR(mean_logit[static_cast<size_t>(r)], sum / static_cast<double>(vocab), 1e-5);
    EXPECT_NEAR(entropy[static_cast<size_t>(r)], ent, 1e-5);
  }
  std::vector<float> d_out_copy = d_out, d_hidden(hidden.size(), 0.0f), d_hidden_recomputed(hidden.size(), 0.0f);
  LogprobHeadBackwardArgs args{view(hidden, {n_tokens, dim}), view(weight, {vocab, dim}), view(rows), view(labels),
                               view(lse, {n}), view(d_out_copy, {n}), view(d_hidden, {n_tokens, dim}),
                               view(workspace, {static_cast<int64_t>(workspace.size())}), chunk, Tensor{}};
  logprob_head_backward_cpu(args);
  args.logsumexp = Tensor{}, args.d_hidden = view(d_hidden_recomputed, {n_tokens, dim});
  logprob_head_backward_cpu(args);
  for (size_t i = 0; i < d_hidden.size(); ++i) EXPECT_NEAR(d_hidden[i], d_hidden_recomputed[i], 1e-6);
  for (int64_t d = 0; d < dim; ++d) EXPECT_EQ(d_hidden[static_cast<size_t>(2 * dim + d)], 0.0f);  // row 2 unscored
  fd_check(objective, {{"logprob_head d_hidden", &hidden, &d_hidden}});
}

}  // namespace
}  // namespace kto
