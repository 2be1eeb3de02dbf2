// CPU ops against transformers' own functions on small random inputs (fixtures written by
// tools/reference/make_models.py into tests/fixtures/models/ops/ops.json): apply_rotary_pos_emb,
// eager_attention_forward (causal and sliding-window masks, GQA), LlamaRMSNorm, silu·up, and
// log_softmax-gather for the chunked head. Outputs are poisoned with NaN before each call.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/ops.h"
#include "test_util.h"

namespace kto {
namespace {

using nlohmann::json;

const json& ops_fixture() {
  static const json data = [] {
    std::ifstream in(test::fixture("models/ops/ops.json"));
    EXPECT_TRUE(in.good()) << "missing models/ops/ops.json; run tools/reference/make_models.py";
    return json::parse(in);
  }();
  return data;
}

// A host tensor filled from a JSON number list (or NaN when `values` is null).
HostTensor make_f32(Shape shape, const json& values = nullptr) {
  HostTensor t(DType::F32, shape);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = values.is_null() ? std::numeric_limits<float>::quiet_NaN() : values.at(static_cast<size_t>(i)).get<float>();
  }
  if (!values.is_null()) {
    EXPECT_EQ(values.size(), static_cast<size_t>(t.numel()));
  }
  return t;
}

HostTensor make_i32(const std::vector<int32_t>& values) {
  HostTensor t(DType::I32, Shape{static_cast<int64_t>(values.size())});
  for (size_t i = 0; i < values.size(); ++i) t.view().as<int32_t>()[i] = values[i];
  return t;
}

// Element-wise |got - want| <= tol * max(1, |want|); reports the first failures.
void expect_close(const float* got, const json& want, int64_t offset, int64_t count, double tol) {
  int failures = 0;
  for (int64_t i = 0; i < count && failures < 5; ++i) {
    const double w = want.at(static_cast<size_t>(offset + i)).get<double>();
    const double g = got[i];
    if (!(std::abs(g - w) <= tol * std::max(1.0, std::abs(w)))) {
      ADD_FAILURE() << "element " << i << ": got " << g << ", want " << w;
      ++failures;
    }
  }
}

TEST(OpsReference, RopeMatchesApplyRotaryPosEmb) {
  const json& f = ops_fixture()["rope"];
  const auto positions = f["positions"].get<std::vector<int32_t>>();
  const int64_t n_tokens = static_cast<int64_t>(positions.size());
  const int64_t n_heads = f["n_heads"], head_dim = f["head_dim"];
  HostTensor x = make_f32({n_tokens, n_heads * head_dim}, f["x"]);
  HostTensor pos = make_i32(positions);
  HostTensor inv_freq = make_f32({head_dim / 2}, f["inv_freq"]);
  rope_forward_cpu({x.view(), pos.view(), inv_freq.view(), n_heads, head_dim});
  expect_close(x.f32(), f["expected"], 0, x.numel(), 2e-5);
}

// Runs the packed attention over every fixture sequence, then a decode-shaped call (the last
// sequence's final 3 queries against all its keys) that must give the same rows.
void check_attention(const json& f) {
  const auto lengths = f["lengths"].get<std::vector<int32_t>>();
  const int64_t n_heads = f["n_heads"], n_kv = f["n_heads_kv"], head_dim = f["head_dim"];
  std::vector<int32_t> starts{0};
  for (int32_t n : lengths) starts.push_back(starts.back() + n);
  const int64_t n_tokens = starts.back();
  HostTensor q = make_f32({n_tokens, n_heads * head_dim}, f["q"]);
  HostTensor k = make_f32({n_tokens, n_kv * head_dim}, f["k"]);
  HostTensor v = make_f32({n_tokens, n_kv * head_dim}, f["v"]);
  HostTensor out = make_f32({n_tokens, n_heads * head_dim});
  HostTensor seq = make_i32(starts);
  AttentionArgs args{q.view(), k.view(), v.view(), seq.view(), seq.view(), out.view(), n_heads, n_kv, head_dim,
                     f["window"].get<int64_t>(), 1.0f / std::sqrt(static_cast<float>(head_dim))};
  attention_forward_cpu(args);
  expect_close(out.f32(), f["expected"], 0, out.numel(), 1e-5);

  const int32_t last = static_cast<int32_t>(lengths.size()) - 1, n_q = 3, k_len = lengths.back();
  const int64_t width = n_heads * head_dim;
  Tensor q_tail{q.f32() + (starts[last + 1] - n_q) * width, DType::F32, Shape{n_q, width}};
  Tensor k_seq{k.f32() + starts[last] * n_kv * head_dim, DType::F32, Shape{k_len, n_kv * head_dim}};
  Tensor v_seq{v.f32() + starts[last] * n_kv * head_dim, DType::F32, Shape{k_len, n_kv * head_dim}};
  HostTensor tail_out = make_f32({n_q, width});
  HostTensor q_starts = make_i32({0, n_q}), k_starts = make_i32({0, k_len});
  args.q = q_tail, args.k = k_seq, args.v = v_seq, args.out = tail_out.view();
  args.q_starts = q_starts.view(), args.k_starts = k_starts.view();
  attention_forward_cpu(args);
  expect_close(tail_out.f32(), f["expected"], (starts[last + 1] - n_q) * width, n_q * width, 1e-5);
}

TEST(OpsReference, AttentionCausalMatchesEager) { check_attention(ops_fixture()["attention"][0]); }

TEST(OpsReference, AttentionSlidingWindowMatchesEager) {
  const json& f = ops_fixture()["attention"][1];
  ASSERT_GT(f["window"].get<int>(), 0);
  check_attention(f);
}

TEST(OpsReference, RmsNormMatchesLlamaRmsNorm) {
  const json& f = ops_fixture()["rms_norm"];
  HostTensor x = make_f32({5, 24}, f["x"]), w = make_f32({24}, f["weight"]), out = make_f32({5, 24});
  rms_norm_forward_cpu({x.view(), w.view(), out.view(), f["eps"].get<float>()});
  expect_close(out.f32(), f["expected"], 0, out.numel(), 1e-5);
}

TEST(OpsReference, SwigluMatchesSiluTimesUp) {
  const json& f = ops_fixture()["swiglu"];
  HostTensor gate = make_f32({4, 10}, f["gate"]), up = make_f32({4, 10}, f["up"]), out = make_f32({4, 10});
  swiglu_forward_cpu({gate.view(), up.view(), out.view()});
  expect_close(out.f32(), f["expected"], 0, out.numel(), 1e-5);
}

TEST(OpsReference, LogprobHeadMatchesLogSoftmaxGather) {
  const json& f = ops_fixture()["logprob_head"];
  HostTensor hidden = make_f32({6, 16}, f["hidden"]), weight = make_f32({50, 16}, f["weight"]);
  HostTensor rows = make_i32(f["rows"].get<std::vector<int32_t>>());
  HostTensor labels = make_i32(f["labels"].get<std::vector<int32_t>>());
  const int64_t n = rows.numel(), chunk = 2;  // chunks of 2 rows: 2 + 2 + 1
  HostTensor out = make_f32({n}), lse = make_f32({n});
  HostTensor workspace = make_f32({logprob_head_workspace_floats(chunk, 16, 50)});
  logprob_head_forward_cpu(
      {hidden.view(), weight.view(), rows.view(), labels.view(), out.view(), lse.view(), workspace.view(), chunk});
  expect_close(out.f32(), f["expected"], 0, n, 1e-5);
  for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(std::isfinite(lse.f32()[i]));
}

}  // namespace
}  // namespace kto
