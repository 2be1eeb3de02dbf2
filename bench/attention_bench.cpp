// kto_attention_bench: times the CUDA attention forward and backward (ops_cuda.h) with CUDA events
// on the shapes of the models we train: a pack of 8 sequences with lengths uniform in [128, 1024]
// (fixed seed), full causal, for Llama 3.1 8B (H 32 / Hkv 8 / Dh 128), Llama 3.2 1B (32 / 8 / 64)
// and Qwen 2.5 0.5B (14 / 2 / 64). FLOPs count only visible (query, key) pairs: 4·Dh per pair and
// head forward (q·k and p·v), 2.5x that backward (the flash-attention convention; our backward
// also recomputes the forward's statistics, which the count leaves out).
//   kto_attention_bench [--reps 20] [--seed 1234]
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/context.h"
#include "backend/cuda/context_impl.h"
#include "backend/cuda/ops_cuda.h"
#include "tensor/dtype.h"
#include "util/error.h"

namespace kto {
namespace {

struct Shape3 {
  const char* name;
  int64_t n_heads, n_heads_kv, head_dim;
};

struct Timing {
  double forward_ms, backward_ms;
};

// Mean milliseconds per call of `fn` over `reps` calls after two warm-up calls.
template <typename Fn>
double time_ms(CudaContext& ctx, int reps, Fn&& fn) {
  const char* op = "attention bench";
  cudaStream_t stream = ctx.impl().stream;
  cudaEvent_t start = nullptr, stop = nullptr;
  KTO_CUDA_CHECK(cudaEventCreate(&start), op);
  KTO_CUDA_CHECK(cudaEventCreate(&stop), op);
  fn();
  fn();
  KTO_CUDA_CHECK(cudaEventRecord(start, stream), op);
  for (int i = 0; i < reps; ++i) fn();
  KTO_CUDA_CHECK(cudaEventRecord(stop, stream), op);
  KTO_CUDA_CHECK(cudaEventSynchronize(stop), op);
  float ms = 0.0f;
  KTO_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), op);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  ctx.synchronize(op);
  return static_cast<double>(ms) / reps;
}

DeviceBuffer random_bf16_buffer(CudaContext& ctx, const char* name, int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<uint16_t> host(static_cast<size_t>(n));
  for (uint16_t& x : host) x = f32_to_bf16(dist(rng));
  DeviceBuffer buffer(ctx, name, host.size() * sizeof(uint16_t));
  cuda_copy_to_device(ctx, buffer.view(DType::BF16, Shape({n})), host.data());
  return buffer;
}

Timing bench_shape(CudaContext& ctx, const Shape3& s, const std::vector<int32_t>& starts, int reps, uint32_t seed) {
  const int64_t n_seqs = static_cast<int64_t>(starts.size()) - 1, t = starts.back();
  const int64_t qw = s.n_heads * s.head_dim, kw = s.n_heads_kv * s.head_dim;
  std::mt19937 rng(seed);
  DeviceBuffer q = random_bf16_buffer(ctx, "q", t * qw, rng), k = random_bf16_buffer(ctx, "k", t * kw, rng);
  DeviceBuffer v = random_bf16_buffer(ctx, "v", t * kw, rng), d_out = random_bf16_buffer(ctx, "d_out", t * qw, rng);
  DeviceBuffer out(ctx, "out", static_cast<size_t>(t * qw) * 2), d_q(ctx, "d_q", static_cast<size_t>(t * qw) * 2);
  DeviceBuffer d_k(ctx, "d_k", static_cast<size_t>(t * kw) * 2), d_v(ctx, "d_v", static_cast<size_t>(t * kw) * 2);
  DeviceBuffer starts_dev(ctx, "starts", starts.size() * sizeof(int32_t));
  const Tensor starts_view = starts_dev.view(DType::I32, Shape({n_seqs + 1}));
  cuda_copy_to_device(ctx, starts_view, starts.data());
  const int64_t ws_bytes = attention_backward_workspace_bytes_cuda(t, s.n_heads);
  DeviceBuffer workspace(ctx, "workspace", static_cast<size_t>(ws_bytes));
  const Tensor qv = q.view(DType::BF16, Shape({t, qw})), kv = k.view(DType::BF16, Shape({t, kw}));
  const Tensor vv = v.view(DType::BF16, Shape({t, kw}));
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const AttentionArgs fwd{qv, kv, vv, starts_view, starts_view, out.view(DType::BF16, Shape({t, qw})),
                          s.n_heads, s.n_heads_kv, s.head_dim, 0, scale};
  const AttentionBackwardArgs bwd{qv, kv, vv, starts_view, starts_view, d_out.view(DType::BF16, Shape({t, qw})),
                                  d_q.view(DType::BF16, Shape({t, qw})), d_k.view(DType::BF16, Shape({t, kw})),
                                  d_v.view(DType::BF16, Shape({t, kw})), s.n_heads, s.n_heads_kv, s.head_dim, 0, scale};
  const Tensor ws_view = workspace.view(DType::U8, Shape({ws_bytes}));
  Timing timing{};
  timing.forward_ms = time_ms(ctx, reps, [&] { attention_forward_cuda(fwd, ctx); });
  timing.backward_ms = time_ms(ctx, reps, [&] { attention_backward_cuda(bwd, ws_view, ctx); });
  return timing;
}

int run(int argc, char** argv) {
  int reps = 20;
  uint32_t seed = 1234;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--seed") == 0) seed = static_cast<uint32_t>(std::atoll(argv[i + 1]));
    else fail(ErrorKind::InvalidArgument, "kto_attention_bench: unknown option ", argv[i], " (--reps N, --seed N)");
  }
  CudaContext ctx(0);
  std::mt19937 rng(seed);
  std::vector<int32_t> starts{0};
  double pairs = 0.0;  // visible (query, key) pairs of the pack, per head
  std::string lens;
  for (int s = 0; s < 8; ++s) {
    const int32_t len = 128 + static_cast<int32_t>(rng() % 897);  // [128, 1024]
    starts.push_back(starts.back() + len);
    pairs += 0.5 * len * (len + 1.0);
    lens += ' ';
    lens += std::to_string(len);
  }
  std::printf("device %s, %d reps, pack of 8 sequences (%d tokens):%s\n", ctx.device_name().c_str(), reps,
              starts.back(), lens.c_str());
  std::printf("%-10s %4s %4s %4s | %9s %9s | %9s %9s\n", "shape", "H", "Hkv", "Dh", "fwd ms", "fwd TF/s", "bwd ms",
              "bwd TF/s");
  const Shape3 shapes[] = {{"llama-8b", 32, 8, 128}, {"llama-1b", 32, 8, 64}, {"qwen-0.5b", 14, 2, 64}};
  for (const Shape3& s : shapes) {
    const Timing t = bench_shape(ctx, s, starts, reps, seed + 1);
    const double fwd_flops = 4.0 * static_cast<double>(s.head_dim) * pairs * static_cast<double>(s.n_heads);
    std::printf("%-10s %4lld %4lld %4lld | %9.3f %9.1f | %9.3f %9.1f\n", s.name, static_cast<long long>(s.n_heads),
                static_cast<long long>(s.n_heads_kv), static_cast<long long>(s.head_dim), t.forward_ms,
                fwd_flops / (t.forward_ms * 1e9), t.backward_ms, 2.5 * fwd_flops / (t.backward_ms * 1e9));
  }
  return 0;
}

}  // namespace
}  // namespace kto

int main(int argc, char** argv) {
  try {
    return kto::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kto_attention_bench: %s\n", e.what());
    return 1;
  }
}
