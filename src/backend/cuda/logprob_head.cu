// Chunked LM head + log-softmax + gather (as logprob_head_forward_cpu, TRL's log_softmax(lm_head(h))
// gathered at the labels) and its backward, never [T, V]: per chunk of rows, gather the selected
// hidden rows (bf16), one cuBLASLt product into an fp32 [chunk, V] buffer, then one 512-thread block
// per row for the fused statistics in a single pass of float4 loads (online max, Σ e^(x−max),
// Σ e^(x−max)·x, Σ x and the argmax together). The backward recomputes the chunk, writes
// d_logits = d·(onehot − p) in bf16 (16-byte stores), multiplies by W into fp32 and adds into
// d_hidden with bf16 atomics (a row may be selected twice).
#include <cmath>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/gemm.h"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;
constexpr int kRowThreads = 512;

struct HeadScratch {
  bf16* gathered;     // [chunk, D]
  float* logits;      // [chunk, V]
  bf16* d_logits;     // [chunk, V]
  float* d_gathered;  // [chunk, D]
};

HeadScratch carve(const Tensor& workspace, int64_t chunk, int64_t dim, int64_t vocab) {
  char* p = static_cast<char*>(workspace.data);
  HeadScratch s{};
  s.gathered = reinterpret_cast<bf16*>(p);
  p += cuda::align_bytes(chunk * dim * 2);
  s.logits = reinterpret_cast<float*>(p);
  p += cuda::align_bytes(chunk * vocab * 4);
  s.d_logits = reinterpret_cast<bf16*>(p);
  p += cuda::align_bytes(chunk * vocab * 2);
  s.d_gathered = reinterpret_cast<float*>(p);
  return s;
}

// A thread's running statistics of the logits it has seen, visited in ascending index order: max m,
// Σ e^(x−m), Σ e^(x−m)·x, Σ x and the first index of the max (torch.argmax; NaN never wins).
struct RowStats {
  float max, sum, dot, total;
  int32_t argmax;
};

__device__ __forceinline__ RowStats combine(const RowStats& a, const RowStats& b) {
  const float m = fmaxf(a.max, b.max);
  const int32_t arg = b.max > a.max || (b.max == a.max && b.argmax < a.argmax) ? b.argmax : a.argmax;
  if (m == -INFINITY) return {m, 0.0f, 0.0f, a.total + b.total, arg};
  const float ea = expf(a.max - m), eb = expf(b.max - m);
  return {m, a.sum * ea + b.sum * eb, a.dot * ea + b.dot * eb, a.total + b.total, arg};
}

// Adds the kN logits x at indices first, first + 1, ... (all after every index seen so far): one
// rescale when their max is a new maximum, then one expf per logit.
template <int kN>
__device__ __forceinline__ void accumulate(RowStats& st, const float (&x)[kN], int64_t first) {
  float vmax = -INFINITY;
  int vidx = 0;
#pragma unroll
  for (int j = 0; j < kN; ++j) {
    if (x[j] > vmax) vmax = x[j], vidx = j;
    st.total += x[j];
  }
  if (vmax > st.max) {
    const float scale = expf(st.max - vmax);
    st.sum *= scale, st.dot *= scale, st.max = vmax, st.argmax = static_cast<int32_t>(first + vidx);
  }
  if (st.max == -INFINITY) return;  // only −inf so far: nothing to add
#pragma unroll
  for (int j = 0; j < kN; ++j) {
    const float e = expf(x[j] - st.max);
    st.sum += e, st.dot += e * x[j];
  }
}

// Block-wide statistics of logits[0, vocab) in one pass; every thread gets the result. Each thread
// visits its logits in ascending index order: one of the (< 4) logits before the first 16-byte
// boundary, float4 vectors i, i + kRowThreads, ... (four loads in flight), then the tail. The
// combination order is fixed: deterministic.
__device__ RowStats row_stats(const float* row, int64_t vocab) {
  __shared__ RowStats partial[kRowThreads / 32];
  RowStats st{-INFINITY, 0.0f, 0.0f, 0.0f, 0x7fffffff};
  const int64_t head = min(vocab, static_cast<int64_t>((16 - reinterpret_cast<uintptr_t>(row) % 16) % 16 / 4));
  if (threadIdx.x < head) accumulate<1>(st, {row[threadIdx.x]}, threadIdx.x);
  const auto* body = reinterpret_cast<const float4*>(row + head);
  const int64_t n4 = (vocab - head) / 4;
  constexpr int kLoads = 4;  // float4 loads in flight per thread
  int64_t i = threadIdx.x;
  for (; i + (kLoads - 1) * kRowThreads < n4; i += kLoads * kRowThreads) {
    float4 a[kLoads];
#pragma unroll
    for (int k = 0; k < kLoads; ++k) a[k] = body[i + k * kRowThreads];
#pragma unroll
    for (int k = 0; k < kLoads; ++k) accumulate<4>(st, {a[k].x, a[k].y, a[k].z, a[k].w}, head + 4 * (i + k * kRowThreads));
  }
  for (; i < n4; i += kRowThreads) {
    const float4 a = body[i];
    accumulate<4>(st, {a.x, a.y, a.z, a.w}, head + 4 * i);
  }
  for (int64_t v = head + 4 * n4 + threadIdx.x; v < vocab; v += kRowThreads) accumulate<1>(st, {row[v]}, v);
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    RowStats other;
    other.max = __shfl_xor_sync(0xffffffffu, st.max, offset);
    other.sum = __shfl_xor_sync(0xffffffffu, st.sum, offset);
    other.dot = __shfl_xor_sync(0xffffffffu, st.dot, offset);
    other.total = __shfl_xor_sync(0xffffffffu, st.total, offset);
    other.argmax = __shfl_xor_sync(0xffffffffu, st.argmax, offset);
    st = combine(st, other);
  }
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = st;
  __syncthreads();
  RowStats all = partial[0];
  for (int w = 1; w < kRowThreads / 32; ++w) all = combine(all, partial[w]);
  __syncthreads();
  return all;
}

__global__ void gather_rows_kernel(const bf16* hidden, const int32_t* rows, bf16* out, int64_t dim) {
  const bf16* src = hidden + int64_t{rows[blockIdx.x]} * dim;
  bf16* dst = out + int64_t{blockIdx.x} * dim;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = src[d];
}

struct HeadOutputs {
  float* out;
  float* lse;
  float* mean_logit;
  float* entropy;
  int32_t* argmax;
};

// One block per chunk row r: out[r] = logits[label] − lse, plus the optional statistics, from one
// pass over the row.
__global__ void __launch_bounds__(kRowThreads) head_forward_kernel(const float* logits, const int32_t* labels,
                                                                   int64_t vocab, HeadOutputs o) {
  const int64_t r = blockIdx.x;
  const float* row = logits + r * vocab;
  const RowStats st = row_stats(row, vocab);
  if (threadIdx.x != 0) return;
  if (o.argmax) o.argmax[r] = st.argmax;
  const float lse = st.max + logf(st.sum);
  const int32_t label = labels[r];
  o.out[r] = label >= 0 && label < vocab ? row[label] - lse : NAN;
  if (o.lse) o.lse[r] = lse;
  if (o.mean_logit) o.mean_logit[r] = st.total / static_cast<float>(vocab);
  if (o.entropy) o.entropy[r] = lse - st.dot / st.sum;
}

// One block per chunk row: d_logits = d·(onehot(label) − exp(logit − lse)), lse recomputed (one
// more pass) if absent. Eight logits (two float4) become one 16-byte bf16 store when the rows'
// alignments allow it (after a scalar head up to the output's 16-byte boundary), else scalars.
__global__ void __launch_bounds__(kRowThreads) head_backward_kernel(const float* logits, const int32_t* labels,
                                                                    const float* lse_in, const float* d_out,
                                                                    bf16* d_logits, int64_t vocab) {
  const int64_t r = blockIdx.x;
  const float* row = logits + r * vocab;
  bf16* out = d_logits + r * vocab;
  float lse;
  if (lse_in) {
    lse = lse_in[r];
  } else {
    const RowStats st = row_stats(row, vocab);
    lse = st.max + logf(st.sum);
  }
  const float d = d_out[r];
  const int32_t label = labels[r];
  auto grad = [&](float x, int64_t v) { return d * ((v == label ? 1.0f : 0.0f) - expf(x - lse)); };
  int64_t head = min(vocab, static_cast<int64_t>((16 - reinterpret_cast<uintptr_t>(out) % 16) % 16 / 2));
  if (!cuda::aligned16(row + head)) head = vocab;  // the two rows never align together: all scalar
  for (int64_t v = threadIdx.x; v < head; v += kRowThreads) out[v] = cuda::to_bf16(grad(row[v], v));
  const int64_t n8 = (vocab - head) / 8;
  const auto* body = reinterpret_cast<const float4*>(row + head);
  auto grads = [&](const float4& a, const float4& b, int64_t v) {
    const float g[8] = {grad(a.x, v),     grad(a.y, v + 1), grad(a.z, v + 2), grad(a.w, v + 3),
                        grad(b.x, v + 4), grad(b.y, v + 5), grad(b.z, v + 6), grad(b.w, v + 7)};
    return cuda::pack_vec(g);
  };
  int64_t i = threadIdx.x;
  for (; i + kRowThreads < n8; i += 2 * kRowThreads) {  // both groups' loads before the first store
    const int64_t j = i + kRowThreads;
    const float4 a0 = body[2 * i], b0 = body[2 * i + 1], a1 = body[2 * j], b1 = body[2 * j + 1];
    const cuda::Bf16Vec<8> g0 = grads(a0, b0, head + 8 * i), g1 = grads(a1, b1, head + 8 * j);
    cuda::store_vec(out + head + 8 * i, g0);
    cuda::store_vec(out + head + 8 * j, g1);
  }
  if (i < n8) cuda::store_vec(out + head + 8 * i, grads(body[2 * i], body[2 * i + 1], head + 8 * i));
  for (int64_t v = head + 8 * n8 + threadIdx.x; v < vocab; v += kRowThreads) out[v] = cuda::to_bf16(grad(row[v], v));
}

__global__ void scatter_add_rows_kernel(const float* src, const int32_t* rows, bf16* d_hidden, int64_t dim) {
  bf16* dst = d_hidden + int64_t{rows[blockIdx.x]} * dim;
  const float* s = src + int64_t{blockIdx.x} * dim;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) atomicAdd(dst + d, cuda::to_bf16(s[d]));
}

void check_head(const Tensor& hidden, const Tensor& weight, const Tensor& rows, const Tensor& labels,
                const Tensor& workspace, int64_t chunk, const char* op) {
  const int64_t n_tokens = hidden.shape[0], dim = hidden.shape[1], vocab = weight.shape[0], n = rows.shape[0];
  KTO_ASSERT(chunk > 0 && chunk < (int64_t{1} << 31), "logprob head chunk_rows must be positive");
  cuda::check_tensor(hidden, "logprob_head hidden", DType::BF16, {n_tokens, dim});
  cuda::check_tensor(weight, "logprob_head weight", DType::BF16, {vocab, dim});
  cuda::check_tensor(rows, "logprob_head rows", DType::I32, {n});
  cuda::check_tensor(labels, "logprob_head labels", DType::I32, {n});
  cuda::check_workspace(workspace, op, logprob_head_workspace_bytes_cuda(chunk, dim, vocab));
}

// logits[m, V] (fp32) = hidden[rows] · Wᵀ for the m rows of one chunk.
void chunk_logits(const Tensor& hidden, const Tensor& weight, const int32_t* rows, int64_t m, const HeadScratch& s,
                  CudaContext& ctx, const char* op) {
  const int64_t dim = hidden.shape[1], vocab = weight.shape[0];
  gather_rows_kernel<<<static_cast<unsigned>(m), 128, 0, cuda::stream_of(ctx)>>>(hidden.as<bf16>(), rows, s.gathered, dim);
  KTO_CUDA_CHECK_LAUNCH(op);
  cuda::Gemm g;
  g.m = m, g.n = vocab, g.k = dim;
  g.a = {s.gathered, dim, cuda::Trans::No};
  g.b = {weight.data, dim, cuda::Trans::Yes};
  g.c = s.logits, g.ldc = vocab, g.c_type = cuda::GemmOut::F32;
  cuda::gemm(g, ctx, op);
}

float* optional_f32(const Tensor& t, const char* name, int64_t n) {
  if (!cuda::present(t)) return nullptr;
  cuda::check_tensor(t, name, DType::F32, {n});
  return t.as<float>();
}

}  // namespace

int64_t logprob_head_workspace_bytes_cuda(int64_t chunk_rows, int64_t hidden_size, int64_t vocab_size) {
  return cuda::align_bytes(chunk_rows * hidden_size * 2) + cuda::align_bytes(chunk_rows * vocab_size * 4) +
         cuda::align_bytes(chunk_rows * vocab_size * 2) + cuda::align_bytes(chunk_rows * hidden_size * 4);
}

void logprob_head_forward_cuda(const LogprobHeadArgs& args, const LogprobHeadStats& stats, CudaContext& ctx) {
  const char* op = "logprob_head_forward_cuda";
  check_head(args.hidden, args.weight, args.rows, args.labels, args.workspace, args.chunk_rows, op);
  const int64_t dim = args.hidden.shape[1], vocab = args.weight.shape[0], n = args.rows.shape[0];
  cuda::check_tensor(args.out, "logprob_head out", DType::F32, {n});
  HeadOutputs all{args.out.as<float>(), optional_f32(args.logsumexp, "logprob_head logsumexp", n),
                        optional_f32(stats.mean_logit, "logprob_head mean_logit", n),
                        optional_f32(stats.entropy, "logprob_head entropy", n), nullptr};
  if (cuda::present(stats.argmax)) {
    cuda::check_tensor(stats.argmax, "logprob_head argmax", DType::I32, {n});
    all.argmax = stats.argmax.as<int32_t>();
  }
  const HeadScratch s = carve(args.workspace, args.chunk_rows, dim, vocab);
  for (int64_t begin = 0; begin < n; begin += args.chunk_rows) {
    const int64_t m = std::min(args.chunk_rows, n - begin);
    chunk_logits(args.hidden, args.weight, args.rows.as<int32_t>() + begin, m, s, ctx, op);
    const HeadOutputs o{all.out + begin, all.lse ? all.lse + begin : nullptr,
                        all.mean_logit ? all.mean_logit + begin : nullptr, all.entropy ? all.entropy + begin : nullptr,
                        all.argmax ? all.argmax + begin : nullptr};
    head_forward_kernel<<<static_cast<unsigned>(m), kRowThreads, 0, cuda::stream_of(ctx)>>>(
        s.logits, args.labels.as<int32_t>() + begin, vocab, o);
    KTO_CUDA_CHECK_LAUNCH(op);
  }
}

void logprob_head_backward_cuda(const LogprobHeadBackwardArgs& args, CudaContext& ctx) {
  const char* op = "logprob_head_backward_cuda";
  check_head(args.hidden, args.weight, args.rows, args.labels, args.workspace, args.chunk_rows, op);
  const int64_t dim = args.hidden.shape[1], vocab = args.weight.shape[0], n = args.rows.shape[0];
  cuda::check_tensor(args.d_out, "logprob_head d_out", DType::F32, {n});
  cuda::check_tensor(args.d_hidden, "logprob_head d_hidden", DType::BF16, {args.hidden.shape[0], dim});
  const float* lse = optional_f32(args.logsumexp, "logprob_head logsumexp", n);
  if (cuda::present(args.d_weight)) cuda::check_tensor(args.d_weight, "logprob_head d_weight", DType::F32, {vocab, dim});
  const HeadScratch s = carve(args.workspace, args.chunk_rows, dim, vocab);
  for (int64_t begin = 0; begin < n; begin += args.chunk_rows) {
    const int64_t m = std::min(args.chunk_rows, n - begin);
    const int32_t* rows = args.rows.as<int32_t>() + begin;
    chunk_logits(args.hidden, args.weight, rows, m, s, ctx, op);
    head_backward_kernel<<<static_cast<unsigned>(m), kRowThreads, 0, cuda::stream_of(ctx)>>>(
        s.logits, args.labels.as<int32_t>() + begin, lse ? lse + begin : nullptr, args.d_out.as<float>() + begin,
        s.d_logits, vocab);
    KTO_CUDA_CHECK_LAUNCH(op);
    cuda::Gemm g;
    g.m = m, g.n = dim, g.k = vocab;
    g.a = {s.d_logits, vocab, cuda::Trans::No};
    g.b = {args.weight.data, dim, cuda::Trans::No};
    g.c = s.d_gathered, g.ldc = dim, g.c_type = cuda::GemmOut::F32;
    cuda::gemm(g, ctx, op);
    if (cuda::present(args.d_weight)) {  // full fine-tuning: d_W [V, D] += d_logitsᵀ · gathered rows
      cuda::Gemm w;
      w.m = vocab, w.n = dim, w.k = m;
      w.a = {s.d_logits, vocab, cuda::Trans::Yes};
      w.b = {s.gathered, dim, cuda::Trans::No};
      w.c = args.d_weight.data, w.ldc = dim, w.c_type = cuda::GemmOut::F32, w.beta = 1.0f;
      cuda::gemm(w, ctx, op);
    }
    scatter_add_rows_kernel<<<static_cast<unsigned>(m), 128, 0, cuda::stream_of(ctx)>>>(s.d_gathered, rows,
                                                                                      args.d_hidden.as<bf16>(), dim);
    KTO_CUDA_CHECK_LAUNCH(op);
  }
}

}  // namespace kto
