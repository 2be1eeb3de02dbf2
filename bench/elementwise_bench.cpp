// kto_elementwise_bench: times the CUDA backend's memory-bound ops one at a time, with CUDA events
// on the context's stream, on the Llama-3.2-1B shapes of one packed pass (T tokens, hidden 2048,
// 32 query / 8 key-value heads of 64, intermediate 8192, vocab 128256, tied embeddings) and the
// log-prob head on 256 rows. Prints per op the µs per call and GB/s against the bytes the op must
// move at least (each input read once, each output written once); compare with the GPU's memory
// bandwidth (H200 about 4800 GB/s, H100 SXM about 3350). The head's row kernels run inside ops
// with cuBLASLt products; they are timed alone by replaying their node of a captured CUDA graph.
//   kto_elementwise_bench [--tokens 4600] [--iters 50] [--device 0]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "backend/cuda/context.h"
#include "backend/cuda/context_impl.h"
#include "backend/cuda/ops_cuda.h"
#include "tensor/dtype.h"
#include "util/error.h"

namespace kto {
namespace {

// The 1B shapes (config.json of meta-llama/Llama-3.2-1B).
constexpr int64_t kHidden = 2048, kHeads = 32, kHeadsKv = 8, kHeadDim = 64, kFfn = 8192, kVocab = 128256;
constexpr int64_t kHeadRows = 256;

struct Options {
  int64_t tokens = 4600;
  int iters = 50;
  int device = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) fail(ErrorKind::InvalidArgument, "flag ", flag, " needs a value");
    const char* value = argv[++i];
    if (flag == "--tokens") {
      o.tokens = std::stoll(value);
    } else if (flag == "--iters") {
      o.iters = std::stoi(value);
    } else if (flag == "--device") {
      o.device = std::stoi(value);
    } else {
      fail(ErrorKind::InvalidArgument, "unknown flag ", flag, ": --tokens N, --iters N, --device N");
    }
  }
  if (o.tokens < 1 || o.iters < 1) fail(ErrorKind::InvalidArgument, "--tokens and --iters must be positive");
  return o;
}

// Deterministic pseudo-random numbers (splitmix64), fast enough for the 262M-element weight.
struct Random {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform(float scale) {  // in [-scale, scale)
    return scale * (static_cast<float>(next() >> 40) * (2.0f / 16777216.0f) - 1.0f);
  }
};

// Device buffers of the bench, each filled once.
class Arena {
 public:
  explicit Arena(CudaContext& ctx) : ctx_(ctx) {}

  Tensor bf16(Shape shape, uint64_t seed, float scale) {
    const Tensor t = take("bf16 " + shape.str(), DType::BF16, shape);
    std::vector<uint16_t> bits(static_cast<size_t>(shape.numel()));
    Random r{seed};
    for (uint16_t& b : bits) b = f32_to_bf16(r.uniform(scale));
    cuda_copy_to_device(ctx_, t, bits.data());
    return t;
  }
  Tensor f32(Shape shape, uint64_t seed, float scale) {
    const Tensor t = take("f32 " + shape.str(), DType::F32, shape);
    std::vector<float> values(static_cast<size_t>(shape.numel()));
    Random r{seed};
    for (float& v : values) v = r.uniform(scale);
    cuda_copy_to_device(ctx_, t, values.data());
    return t;
  }
  Tensor i32(const std::vector<int32_t>& values) {
    const Tensor t = take("i32", DType::I32, Shape{static_cast<int64_t>(values.size())});
    cuda_copy_to_device(ctx_, t, values.data());
    return t;
  }
  Tensor zeros(DType dtype, Shape shape) {
    const Tensor t = take("zeros " + shape.str(), dtype, shape);
    cuda_fill_zero(ctx_, t);
    return t;
  }

 private:
  Tensor take(std::string name, DType dtype, Shape shape) {
    const size_t bytes = (static_cast<size_t>(shape.numel()) * dtype_bits(dtype) + 7) / 8;
    buffers_.emplace_back(ctx_, std::move(name), std::max<size_t>(bytes, 1));
    return buffers_.back().view(dtype, shape);
  }
  CudaContext& ctx_;
  std::vector<DeviceBuffer> buffers_;
};

// µs per call of `op`: the best of kRepeats means over `iters` back-to-back calls, after 3 warm-up
// calls (the minimum damps clock and L2 noise, which matters for the differences of the head rows).
class Timer {
 public:
  static constexpr int kRepeats = 5;

  Timer(CudaContext& ctx, int iters) : ctx_(ctx), iters_(iters) {
    KTO_CUDA_CHECK(cudaEventCreate(&start_), "bench");
    KTO_CUDA_CHECK(cudaEventCreate(&stop_), "bench");
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  double us(const std::function<void()>& op) {
    for (int i = 0; i < 3; ++i) op();
    ctx_.synchronize("bench warm-up");
    const cudaStream_t stream = cuda::stream_of(ctx_);
    double best = 0.0;
    for (int repeat = 0; repeat < kRepeats; ++repeat) {
      KTO_CUDA_CHECK(cudaEventRecord(start_, stream), "bench");
      for (int i = 0; i < iters_; ++i) op();
      KTO_CUDA_CHECK(cudaEventRecord(stop_, stream), "bench");
      KTO_CUDA_CHECK(cudaEventSynchronize(stop_), "bench");
      float ms = 0.0f;
      KTO_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_), "bench");
      const double us = 1000.0 * static_cast<double>(ms) / iters_;
      best = repeat == 0 ? us : std::min(best, us);
    }
    ctx_.synchronize("bench");
    return best;
  }

 private:
  CudaContext& ctx_;
  int iters_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

void report(const char* op, const std::string& shape, double us, double bytes) {
  std::printf("%-34s %-22s %10.1f us %8.0f GB/s  (%.1f MB)\n", op, shape.c_str(), us, bytes / (us * 1e3), bytes / 1e6);
}

std::string dims(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + "]"; }

void bench_norms(CudaContext& ctx, Arena& a, Timer& timer, int64_t t) {
  const double td2 = static_cast<double>(t * kHidden) * 2.0;
  const Tensor x = a.bf16({t, kHidden}, 1, 3.0f), w = a.bf16({kHidden}, 2, 1.0f), g = a.bf16({t, kHidden}, 3, 1.0f);
  const Tensor out = a.zeros(DType::BF16, {t, kHidden}), d_x = a.zeros(DType::BF16, {t, kHidden});
  const Tensor d_w = a.zeros(DType::F32, {kHidden});
  const Tensor ws = a.zeros(DType::U8, {rms_norm_weight_backward_workspace_bytes_cuda(t * kHeads)});
  report("rms_norm_forward", dims(t, kHidden), timer.us([&] { rms_norm_forward_cuda({x, w, out, 1e-5f}, ctx); }), 2 * td2);
  report("rms_norm_backward (overwrite)", dims(t, kHidden),
         timer.us([&] { rms_norm_backward_cuda({x, w, g, d_x, 1e-5f, GradStore::Overwrite}, ctx); }), 3 * td2);
  report("rms_norm_backward (accumulate)", dims(t, kHidden),
         timer.us([&] { rms_norm_backward_cuda({x, w, g, d_x, 1e-5f, GradStore::Accumulate}, ctx); }), 4 * td2);
  report("rms_norm_weight_backward", dims(t, kHidden),
         timer.us([&] { rms_norm_weight_backward_cuda({x, g, d_w, 1e-5f}, ws, ctx); }), 2 * td2);
  // Per-head q/k norm (Qwen3) on the query heads' [T*H, Dh] view: the narrow-row path.
  const Tensor xh{x.data, DType::BF16, Shape{t * kHidden / kHeadDim, kHeadDim}, Device::Cuda};
  const Tensor oh{out.data, DType::BF16, Shape{t * kHidden / kHeadDim, kHeadDim}, Device::Cuda};
  const Tensor wh{w.data, DType::BF16, Shape{kHeadDim}, Device::Cuda};
  report("rms_norm_forward (per head)", dims(t * kHidden / kHeadDim, kHeadDim),
         timer.us([&] { rms_norm_forward_cuda({xh, wh, oh, 1e-6f}, ctx); }), 2 * td2);
  report("add", dims(t, kHidden), timer.us([&] { add_forward_cuda({x, g, out}, ctx); }), 3 * td2);
}

void bench_mlp(CudaContext& ctx, Arena& a, Timer& timer, int64_t t) {
  const double tf2 = static_cast<double>(t * kFfn) * 2.0;
  const Tensor gate = a.bf16({t, kFfn}, 11, 6.0f), up = a.bf16({t, kFfn}, 12, 2.0f), d_out = a.bf16({t, kFfn}, 13, 1.0f);
  const Tensor act = a.zeros(DType::BF16, {t, kFfn}), d_up = a.zeros(DType::BF16, {t, kFfn});
  report("swiglu_forward", dims(t, kFfn), timer.us([&] { swiglu_forward_cuda({gate, up, act}, ctx); }), 3 * tf2);
  // d_gate into its own buffer (the layer backward writes it over d_out: the same bytes moved).
  report("swiglu_backward", dims(t, kFfn), timer.us([&] { swiglu_backward_cuda({gate, up, d_out, act, d_up}, ctx); }),
         5 * tf2);
}

void bench_rope(CudaContext& ctx, Arena& a, Timer& timer, int64_t t) {
  std::vector<int32_t> positions(static_cast<size_t>(t));
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int32_t>(i % 577);  // packed sequences
  const Tensor pos = a.i32(positions), inv_freq = a.f32({kHeadDim / 2}, 21, 0.5f);
  const Tensor q = a.bf16({t, kHeads * kHeadDim}, 22, 2.0f), k = a.bf16({t, kHeadsKv * kHeadDim}, 23, 2.0f);
  const double q_bytes = static_cast<double>(t * kHeads * kHeadDim) * 2.0 * 2.0;
  const double k_bytes = static_cast<double>(t * kHeadsKv * kHeadDim) * 2.0 * 2.0;
  report("rope_forward (q)", dims(t, kHeads * kHeadDim),
         timer.us([&] { rope_forward_cuda({q, pos, inv_freq, kHeads, kHeadDim}, ctx); }), q_bytes);
  report("rope_forward (k)", dims(t, kHeadsKv * kHeadDim),
         timer.us([&] { rope_forward_cuda({k, pos, inv_freq, kHeadsKv, kHeadDim}, ctx); }), k_bytes);
  report("rope_backward (q)", dims(t, kHeads * kHeadDim),
         timer.us([&] { rope_backward_cuda({q, pos, inv_freq, kHeads, kHeadDim}, ctx); }), q_bytes);
}

void bench_embedding(CudaContext& ctx, Arena& a, Timer& timer, int64_t t, const Tensor& table) {
  std::vector<int32_t> ids(static_cast<size_t>(t));
  Random r{31};
  for (int32_t& id : ids) id = static_cast<int32_t>(r.next() % static_cast<uint64_t>(kVocab));
  const auto unique = static_cast<double>(std::unordered_set<int32_t>(ids.begin(), ids.end()).size());
  const Tensor tokens = a.i32(ids), out = a.zeros(DType::BF16, {t, kHidden}), d_out = a.bf16({t, kHidden}, 32, 1.0f);
  const Tensor d_table = a.zeros(DType::F32, {kVocab, kHidden});
  const double td2 = static_cast<double>(t * kHidden) * 2.0;
  report("embedding_forward", dims(t, kHidden), timer.us([&] { embedding_forward_cuda({tokens, table, out}, ctx); }),
         2 * td2);
  report("embedding_backward", dims(t, kHidden),
         timer.us([&] { embedding_backward_cuda({tokens, d_out, d_table}, ctx); }),
         td2 + unique * static_cast<double>(kHidden) * 8.0);
}

// One kernel of a composite op, relaunched alone: one call of the op is captured into a CUDA graph,
// the kernel node whose function name contains `name` is copied into a graph of its own (same
// arguments), and launch() replays just that node. Its inputs are what the op's last real call
// left in the workspace, so run the op once before.
class KernelOnly {
 public:
  KernelOnly(CudaContext& ctx, const std::function<void()>& op, const char* name) : stream_(cuda::stream_of(ctx)) {
    cudaGraph_t captured = nullptr;
    KTO_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "bench capture");
    op();
    KTO_CUDA_CHECK(cudaStreamEndCapture(stream_, &captured), "bench capture");
    size_t n = 0;
    KTO_CUDA_CHECK(cudaGraphGetNodes(captured, nullptr, &n), "bench capture");
    std::vector<cudaGraphNode_t> nodes(n);
    KTO_CUDA_CHECK(cudaGraphGetNodes(captured, nodes.data(), &n), "bench capture");
    KTO_CUDA_CHECK(cudaGraphCreate(&single_, 0), "bench capture");
    bool found = false;
    for (cudaGraphNode_t node : nodes) {
      cudaGraphNodeType type{};
      cudaKernelNodeParams params{};
      const char* fn = nullptr;
      if (cudaGraphNodeGetType(node, &type) != cudaSuccess || type != cudaGraphNodeTypeKernel ||
          cudaGraphKernelNodeGetParams(node, &params) != cudaSuccess || cudaFuncGetName(&fn, params.func) != cudaSuccess ||
          fn == nullptr || std::strstr(fn, name) == nullptr) {
        (void)cudaGetLastError();  // library kernels (cuBLASLt) may not answer: not the one wanted
        continue;
      }
      cudaGraphNode_t added = nullptr;
      KTO_CUDA_CHECK(cudaGraphAddKernelNode(&added, single_, nullptr, 0, &params), "bench capture");
      found = true;
      break;
    }
    cudaGraphDestroy(captured);
    if (!found) fail(ErrorKind::NotFound, "bench: no kernel named like '", name, "' in the captured op");
    KTO_CUDA_CHECK(cudaGraphInstantiate(&exec_, single_, 0), "bench capture");
  }
  ~KernelOnly() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (single_) cudaGraphDestroy(single_);
  }
  KernelOnly(const KernelOnly&) = delete;
  KernelOnly& operator=(const KernelOnly&) = delete;

  void launch() { KTO_CUDA_CHECK(cudaGraphLaunch(exec_, stream_), "bench"); }

 private:
  cudaStream_t stream_;
  cudaGraph_t single_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// The head on kHeadRows rows in one chunk: the ops whole, and their row kernels alone (KernelOnly)
// on the fp32 [256, V] logits the ops left in the workspace.
void bench_head(CudaContext& ctx, Arena& a, Timer& timer, const Tensor& weight) {
  const int64_t n = kHeadRows;
  std::vector<int32_t> rows(static_cast<size_t>(n)), labels(rows.size());
  Random r{41};
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i] = static_cast<int32_t>(i), labels[i] = static_cast<int32_t>(r.next() % static_cast<uint64_t>(kVocab));
  }
  const Tensor hidden = a.bf16({n, kHidden}, 42, 1.0f), g_rows = a.i32(rows), g_labels = a.i32(labels);
  const Tensor logp = a.zeros(DType::F32, {n}), lse = a.zeros(DType::F32, {n}), mean = a.zeros(DType::F32, {n});
  const Tensor entropy = a.zeros(DType::F32, {n}), argmax = a.zeros(DType::I32, {n}), d_out = a.f32({n}, 43, 1.0f);
  const Tensor d_hidden = a.zeros(DType::BF16, {n, kHidden});
  const Tensor ws = a.zeros(DType::U8, {logprob_head_workspace_bytes_cuda(n, kHidden, kVocab)});
  const LogprobHeadArgs fwd{hidden, weight, g_rows, g_labels, logp, lse, ws, n};
  const LogprobHeadStats stats{mean, entropy, argmax};
  LogprobHeadBackwardArgs bwd{hidden, weight, g_rows, g_labels, lse, d_out, d_hidden, ws, n, Tensor{}};
  const double logits = static_cast<double>(n * kVocab) * 4.0;
  const std::string shape = dims(n, kVocab) + " f32";
  const auto forward = [&] { logprob_head_forward_cuda(fwd, stats, ctx); };
  const auto backward = [&] { logprob_head_backward_cuda(bwd, ctx); };
  std::printf("%-34s %-22s %10.1f us   (gather, GEMM, row kernel)\n", "logprob_head_forward (op)", shape.c_str(),
              timer.us(forward));
  std::printf("%-34s %-22s %10.1f us   (gather, 2 GEMMs, row kernel, scatter)\n", "logprob_head_backward (op)",
              shape.c_str(), timer.us(backward));
  forward();
  KernelOnly head_forward(ctx, forward, "head_forward_kernel");
  report("head_forward_kernel (all stats)", shape, timer.us([&] { head_forward.launch(); }), logits);
  KernelOnly head_backward(ctx, backward, "head_backward_kernel");
  report("head_backward_kernel (lse given)", shape, timer.us([&] { head_backward.launch(); }), logits * 1.5);
  bwd.logsumexp = Tensor{};
  KernelOnly head_backward_lse(ctx, backward, "head_backward_kernel");
  report("head_backward_kernel (lse again)", shape, timer.us([&] { head_backward_lse.launch(); }), logits * 1.5);
}

int run(const Options& o) {
  CudaContext ctx(o.device);
  std::printf("kto_elementwise_bench on %s: T=%lld tokens, %d iterations per op\n", ctx.device_name().c_str(),
              static_cast<long long>(o.tokens), o.iters);
  Arena arena(ctx);
  Timer timer(ctx, o.iters);
  const Tensor table = arena.bf16({kVocab, kHidden}, 51, 0.05f);  // the tied embedding / lm-head weight
  bench_norms(ctx, arena, timer, o.tokens);
  bench_mlp(ctx, arena, timer, o.tokens);
  bench_rope(ctx, arena, timer, o.tokens);
  bench_embedding(ctx, arena, timer, o.tokens, table);
  bench_head(ctx, arena, timer, table);
  return 0;
}

}  // namespace
}  // namespace kto

int main(int argc, char** argv) {
  try {
    return kto::run(kto::parse(argc, argv));
  } catch (const kto::Error& e) {
    std::fprintf(stderr, "kto_elementwise_bench: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {  // std::stoll on a malformed number
    std::fprintf(stderr, "kto_elementwise_bench: %s\n", e.what());
    return 1;
  }
}
