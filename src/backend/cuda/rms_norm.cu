// RMSNorm forward and input-gradient backward (HF LlamaRMSNorm and its autograd; per-head q/k
// norm on a [T*H, Dh] view), and the weight gradient of full fine-tuning.
// Threads: a group of G lanes per row (G the fewest lanes, a power of two <= 128, covering the row's
// vectors), 128-thread blocks of 128/G rows. A vector is 8 bf16 moved as one 16-byte access when
// W % 8 == 0 and every base is 16-byte aligned, else one element. Each lane keeps up to 8 of its
// row's vectors in registers, so a row of up to 8192 is read from memory once (wider rows are read
// twice, the second time mostly from L1). Numerics: bf16 in/out, statistics and the output in fp32,
// rounded once; the lane sums combine in a fixed order (deterministic for a shape).
// Aliasing (out = x, d_x = d_out) is safe: a lane reads each of its elements before writing it.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;
using cuda::Bf16Vec;
constexpr int kThreads = 128;

// Rows of `width` elements, `group` lanes per row (a power of two <= kThreads).
struct RowLayout {
  int64_t rows, width;
  int group;
};

// Where a lane's row is; lanes past the last row get no vectors but still join the reductions.
struct RowLane {
  int lane;       // index within the row's group
  int64_t row;    // clamped to a valid row
  int64_t n_vec;  // the row's vectors, 0 past the last row
};

template <int kVec>
__device__ __forceinline__ RowLane row_lane(const RowLayout& l) {
  const int64_t row = blockIdx.x * int64_t{kThreads / l.group} + threadIdx.x / l.group;
  return {static_cast<int>(threadIdx.x % l.group), row < l.rows ? row : 0, row < l.rows ? l.width / kVec : 0};
}

// Sums a and b over the row's group: a butterfly within the warp, then (group > 32) the group's
// warps in order through shared memory. Every thread of the block calls it. Deterministic.
__device__ __forceinline__ void row_sums(float& a, float& b, int group) {
  a = cuda::lane_group_sum(a, group < 32 ? group : 32);
  b = cuda::lane_group_sum(b, group < 32 ? group : 32);
  if (group <= 32) return;
  __shared__ float scratch[2][kThreads / 32];
  const int warp = threadIdx.x / 32, first = warp / (group / 32) * (group / 32);
  if (threadIdx.x % 32 == 0) scratch[0][warp] = a, scratch[1][warp] = b;
  __syncthreads();
  a = b = 0.0f;
  for (int w = first; w < first + group / 32; ++w) a += scratch[0][w], b += scratch[1][w];
}

template <int kVec>
__device__ __forceinline__ float sum_squares(const Bf16Vec<kVec>& x) {
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < kVec; ++j) s += x[j] * x[j];
  return s;
}

// out = w · (x · inv), inv = rsqrt(mean(x²) + eps). With kCache > 0 a lane's vectors
// v = lane + k·G (k < kCache, unrolled: registers) are loaded once, and all its outputs are computed
// before the first store so that the weight loads are not held behind the stores.
template <int kVec, int kCache>
__global__ void __launch_bounds__(kThreads) rms_norm_forward_kernel(const bf16* x, const bf16* w, bf16* out, RowLayout l,
                                                                    float eps) {
  const RowLane r = row_lane<kVec>(l);
  const bf16* xr = x + r.row * l.width;
  bf16* outr = out + r.row * l.width;
  auto normed = [&](int64_t v, const Bf16Vec<kVec>& xv, float inv) {
    const Bf16Vec<kVec> wv = cuda::load_vec<kVec>(w + v * kVec);
    float o[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) o[j] = wv[j] * (xv[j] * inv);
    return cuda::pack_vec(o);
  };
  float sum_sq = 0.0f, unused = 0.0f;
  if constexpr (kCache > 0) {
    Bf16Vec<kVec> xs[kCache];
#pragma unroll
    for (int k = 0; k < kCache; ++k) {
      const int64_t v = r.lane + int64_t{k} * l.group;
      if (v < r.n_vec) xs[k] = cuda::load_vec<kVec>(xr + v * kVec), sum_sq += sum_squares(xs[k]);
    }
    row_sums(sum_sq, unused, l.group);
    const float inv = rsqrtf(sum_sq / static_cast<float>(l.width) + eps);
#pragma unroll
    for (int k = 0; k < kCache; ++k) {
      const int64_t v = r.lane + int64_t{k} * l.group;
      if (v < r.n_vec) xs[k] = normed(v, xs[k], inv);
    }
#pragma unroll
    for (int k = 0; k < kCache; ++k) {
      const int64_t v = r.lane + int64_t{k} * l.group;
      if (v < r.n_vec) cuda::store_vec(outr + v * kVec, xs[k]);
    }
  } else {
    for (int64_t v = r.lane; v < r.n_vec; v += l.group) sum_sq += sum_squares(cuda::load_vec<kVec>(xr + v * kVec));
    row_sums(sum_sq, unused, l.group);
    const float inv = rsqrtf(sum_sq / static_cast<float>(l.width) + eps);
    for (int64_t v = r.lane; v < r.n_vec; v += l.group) {
      cuda::store_vec(outr + v * kVec, normed(v, cuda::load_vec<kVec>(xr + v * kVec), inv));
    }
  }
}

// Σ x² and Σ g·w·x over one vector (g = d_out), in the reference's product order.
template <int kVec>
__device__ __forceinline__ void backward_sums(const Bf16Vec<kVec>& xv, const Bf16Vec<kVec>& gv, const bf16* w,
                                              float& sum_sq, float& sum_gx) {
  const Bf16Vec<kVec> wv = cuda::load_vec<kVec>(w);
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const float v = xv[j];
    sum_sq += v * v;
    sum_gx += gv[j] * wv[j] * v;
  }
}

// The row's factors: d_x = inv·g·w − b·x (+ the old d_x when accumulating).
struct BackwardFactors {
  float inv, b;
  GradStore store;
};

template <int kVec>
__device__ __forceinline__ Bf16Vec<kVec> input_grad(const Bf16Vec<kVec>& xv, const Bf16Vec<kVec>& gv, const bf16* w,
                                                    const bf16* d_x, const BackwardFactors& f) {
  const Bf16Vec<kVec> wv = cuda::load_vec<kVec>(w);
  Bf16Vec<kVec> old{};
  if (f.store == GradStore::Accumulate) old = cuda::load_vec<kVec>(d_x);
  float o[kVec];
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    o[j] = f.inv * gv[j] * wv[j] - f.b * xv[j];
    if (f.store == GradStore::Accumulate) o[j] += old[j];
  }
  return cuda::pack_vec(o);
}

// d_x = inv·g·w − x·inv³·mean(g·w·x), with g = d_out; accumulate adds to the old d_x. Register
// caching and load-before-store ordering as in the forward.
template <int kVec, int kCache>
__global__ void __launch_bounds__(kThreads) rms_norm_backward_kernel(const bf16* x, const bf16* w, const bf16* d_out,
                                                                     bf16* d_x, RowLayout l, float eps,
                                                                     GradStore store) {
  const RowLane r = row_lane<kVec>(l);
  const bf16 *xr = x + r.row * l.width, *gr = d_out + r.row * l.width;
  bf16* dr = d_x + r.row * l.width;
  float sum_sq = 0.0f, sum_gx = 0.0f;
  auto factors = [&] {
    row_sums(sum_sq, sum_gx, l.group);
    const float inv = rsqrtf(sum_sq / static_cast<float>(l.width) + eps);
    return BackwardFactors{inv, inv * inv * inv * sum_gx / static_cast<float>(l.width), store};
  };
  if constexpr (kCache > 0) {
    Bf16Vec<kVec> xs[kCache], gs[kCache];
#pragma unroll
    for (int k = 0; k < kCache; ++k) {
      const int64_t v = r.lane + int64_t{k} * l.group;
      if (v < r.n_vec) {
        xs[k] = cuda::load_vec<kVec>(xr + v * kVec), gs[k] = cuda::load_vec<kVec>(gr + v * kVec);
        backward_sums(xs[k], gs[k], w + v * kVec, sum_sq, sum_gx);
      }
    }
    const BackwardFactors f = factors();
#pragma unroll
    for (int k = 0; k < kCache; ++k) {
      const int64_t v = r.lane + int64_t{k} * l.group;
      if (v < r.n_vec) xs[k] = input_grad(xs[k], gs[k], w + v * kVec, dr + v * kVec, f);
    }
#pragma unroll
    for (int k = 0; k < kCache; ++k) {
      const int64_t v = r.lane + int64_t{k} * l.group;
      if (v < r.n_vec) cuda::store_vec(dr + v * kVec, xs[k]);
    }
  } else {
    for (int64_t v = r.lane; v < r.n_vec; v += l.group) {
      backward_sums(cuda::load_vec<kVec>(xr + v * kVec), cuda::load_vec<kVec>(gr + v * kVec), w + v * kVec, sum_sq, sum_gx);
    }
    const BackwardFactors f = factors();
    for (int64_t v = r.lane; v < r.n_vec; v += l.group) {
      const Bf16Vec<kVec> xv = cuda::load_vec<kVec>(xr + v * kVec), gv = cuda::load_vec<kVec>(gr + v * kVec);
      cuda::store_vec(dr + v * kVec, input_grad(xv, gv, w + v * kVec, dr + v * kVec, f));
    }
  }
}

// ---- Weight gradient: d_weight[i] += Σ_r d_out[r, i] · x[r, i] · inv[r] ----
// Three launches, no atomics: inv[r] per row (the forward's row-group layout); per chunk of rows a
// partial column sum (a block is a tile of `tile` column vectors × 256/tile row lanes, each lane
// walking its rows in order, the row lanes then added in order through shared memory); and the
// chunks' partials added in order per column. The chunking depends only on the shape, so results
// are deterministic. Partials live after inv in the workspace, at most kMaxPartials floats.
constexpr int kGradThreads = 256;
constexpr int64_t kMaxPartials = int64_t{1} << 18;
constexpr int64_t kTargetGradBlocks = 512;

template <int kVec>
__global__ void __launch_bounds__(kThreads) rms_norm_inv_kernel(const bf16* x, float* inv, RowLayout l, float eps) {
  const RowLane r = row_lane<kVec>(l);
  const bf16* xr = x + r.row * l.width;
  float sum_sq = 0.0f, unused = 0.0f;
  for (int64_t v = r.lane; v < r.n_vec; v += l.group) sum_sq += sum_squares(cuda::load_vec<kVec>(xr + v * kVec));
  row_sums(sum_sq, unused, l.group);
  if (r.lane == 0 && r.n_vec > 0) inv[r.row] = rsqrtf(sum_sq / static_cast<float>(l.width) + eps);
}

struct GradLayout {
  int64_t rows, width, rows_per_chunk;
  int tile;  // column vectors per block (a power of two <= 32)
};

// partial[chunk, col] = Σ over the chunk's rows of d_out · (x · inv); grid (column tiles, chunks).
template <int kVec>
__global__ void __launch_bounds__(kGradThreads) rms_norm_weight_partial_kernel(const bf16* x, const bf16* d_out,
                                                                               const float* inv, float* partial,
                                                                               GradLayout l) {
  __shared__ float sums[kGradThreads * kVec];
  const int tx = threadIdx.x % l.tile, ty = threadIdx.x / l.tile, row_lanes = kGradThreads / l.tile;
  const int64_t v = blockIdx.x * int64_t{l.tile} + tx;
  const int64_t begin = blockIdx.y * l.rows_per_chunk, end = min(l.rows, begin + l.rows_per_chunk);
  float acc[kVec] = {};
  if (v < l.width / kVec) {
#pragma unroll 4
    for (int64_t r = begin + ty; r < end; r += row_lanes) {
      const Bf16Vec<kVec> xv = cuda::load_vec<kVec>(x + r * l.width + v * kVec);
      const Bf16Vec<kVec> gv = cuda::load_vec<kVec>(d_out + r * l.width + v * kVec);
      const float s = inv[r];
#pragma unroll
      for (int j = 0; j < kVec; ++j) acc[j] += gv[j] * (xv[j] * s);
    }
  }
  const int cols = l.tile * kVec;  // this block's columns
#pragma unroll
  for (int j = 0; j < kVec; ++j) sums[ty * cols + tx * kVec + j] = acc[j];
  __syncthreads();
  for (int c = threadIdx.x; c < cols; c += kGradThreads) {
    const int64_t col = blockIdx.x * int64_t{cols} + c;
    if (col >= l.width) break;
    float s = 0.0f;
    for (int y = 0; y < row_lanes; ++y) s += sums[y * cols + c];
    partial[blockIdx.y * l.width + col] = s;
  }
}

__global__ void rms_norm_weight_sum_kernel(const float* partial, float* d_weight, int64_t n_chunks, int64_t width) {
  const int64_t col = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (col >= width) return;
  float s = 0.0f;
  for (int64_t c = 0; c < n_chunks; ++c) s += partial[c * width + col];
  d_weight[col] += s;
}

// Chunks of rows such that column tiles × chunks is about kTargetGradBlocks, each row lane walks at
// least 4 rows, and the partials fit.
GradLayout plan_weight_grad(int64_t rows, int64_t width, bool vec, int64_t& n_chunks) {
  const int64_t n_vec = vec ? width / 8 : width;
  GradLayout g{rows, width, rows, cuda::lanes_for(n_vec)};
  const int64_t col_tiles = (n_vec + g.tile - 1) / g.tile, row_lanes = kGradThreads / g.tile;
  int64_t chunks = (kTargetGradBlocks + col_tiles - 1) / col_tiles;
  chunks = std::min({chunks, rows / (4 * row_lanes), kMaxPartials / width, int64_t{65535}});
  chunks = std::max<int64_t>(chunks, 1);
  g.rows_per_chunk = (rows + chunks - 1) / chunks;
  n_chunks = (rows + g.rows_per_chunk - 1) / g.rows_per_chunk;
  return g;
}

// How a [rows, width] launch runs: 16-byte vectors or elements, registers cached per lane.
struct RowPlan {
  bool vec;
  int cache;  // 0: the row is re-read (more than 8 vectors per lane)
  RowLayout layout;
  unsigned blocks;
};

// max_lanes: kThreads for the cached kernels (a wide row spread over the block's warps measured
// fastest); 32 for the single-pass inverse-RMS kernel, which then needs no shared-memory step.
RowPlan plan_rows(int64_t rows, int64_t width, bool aligned, int max_lanes = kThreads) {
  RowPlan p{};
  p.vec = aligned && width % 8 == 0;
  const int64_t n_vec = p.vec ? width / 8 : width;
  p.layout = {rows, width, cuda::lanes_for(n_vec, max_lanes)};
  p.cache = 0;
  if (p.vec) {
    for (const int cache : {1, 2, 4, 8}) {
      if (n_vec <= int64_t{p.layout.group} * cache) {
        p.cache = cache;
        break;
      }
    }
  }
  const int64_t rows_per_block = kThreads / p.layout.group;
  KTO_ASSERT(rows / rows_per_block < (int64_t{1} << 31), "rms_norm: too many rows for one launch");
  p.blocks = static_cast<unsigned>((rows + rows_per_block - 1) / rows_per_block);
  return p;
}

// Calls launch(vec, cache) with std::integral_constant arguments for the plan's instantiation.
template <typename Launch>
void with_plan(const RowPlan& p, Launch&& launch) {
  using One = std::integral_constant<int, 1>;
  using Eight = std::integral_constant<int, 8>;
  if (!p.vec) return launch(One{}, std::integral_constant<int, 0>{});
  switch (p.cache) {
    case 1: return launch(Eight{}, std::integral_constant<int, 1>{});
    case 2: return launch(Eight{}, std::integral_constant<int, 2>{});
    case 4: return launch(Eight{}, std::integral_constant<int, 4>{});
    case 8: return launch(Eight{}, std::integral_constant<int, 8>{});
    default: return launch(Eight{}, std::integral_constant<int, 0>{});
  }
}

}  // namespace

void rms_norm_forward_cuda(const RmsNormArgs& args, CudaContext& ctx) {
  const int64_t rows = args.x.shape[0], width = args.x.shape[1];
  cuda::check_tensor(args.x, "rms_norm x", DType::BF16, {rows, width});
  cuda::check_tensor(args.weight, "rms_norm weight", DType::BF16, {width});
  cuda::check_tensor(args.out, "rms_norm out", DType::BF16, {rows, width});
  if (rows == 0) return;
  const bf16 *x = args.x.as<bf16>(), *w = args.weight.as<bf16>();
  bf16* out = args.out.as<bf16>();
  const RowPlan p = plan_rows(rows, width, cuda::aligned16(x, w, out));
  with_plan(p, [&](auto vec, auto cache) {
    rms_norm_forward_kernel<decltype(vec)::value, decltype(cache)::value>
        <<<p.blocks, kThreads, 0, cuda::stream_of(ctx)>>>(x, w, out, p.layout, args.eps);
  });
  KTO_CUDA_CHECK_LAUNCH("rms_norm_forward_cuda");
}

void rms_norm_backward_cuda(const RmsNormBackwardArgs& args, CudaContext& ctx) {
  const int64_t rows = args.x.shape[0], width = args.x.shape[1];
  cuda::check_tensor(args.x, "rms_norm_backward x", DType::BF16, {rows, width});
  cuda::check_tensor(args.weight, "rms_norm_backward weight", DType::BF16, {width});
  cuda::check_tensor(args.d_out, "rms_norm_backward d_out", DType::BF16, {rows, width});
  cuda::check_tensor(args.d_x, "rms_norm_backward d_x", DType::BF16, {rows, width});
  const bool accumulate = args.store == GradStore::Accumulate;
  KTO_ASSERT(!accumulate || args.d_x.data != args.d_out.data,
             "rms_norm_backward: an accumulated d_x must not alias d_out");
  if (rows == 0) return;
  const bf16 *x = args.x.as<bf16>(), *w = args.weight.as<bf16>(), *d_out = args.d_out.as<bf16>();
  bf16* d_x = args.d_x.as<bf16>();
  const RowPlan p = plan_rows(rows, width, cuda::aligned16(x, w, d_out, d_x));
  with_plan(p, [&](auto vec, auto cache) {
    rms_norm_backward_kernel<decltype(vec)::value, decltype(cache)::value>
        <<<p.blocks, kThreads, 0, cuda::stream_of(ctx)>>>(x, w, d_out, d_x, p.layout, args.eps, args.store);
  });
  KTO_CUDA_CHECK_LAUNCH("rms_norm_backward_cuda");
}

int64_t rms_norm_weight_backward_workspace_bytes_cuda(int64_t rows) {
  return cuda::align_bytes(rows * 4) + cuda::align_bytes(kMaxPartials * 4);
}

void rms_norm_weight_backward_cuda(const RmsNormWeightBackwardArgs& args, const Tensor& workspace, CudaContext& ctx) {
  const char* op = "rms_norm_weight_backward_cuda";
  const int64_t rows = args.x.shape[0], width = args.x.shape[1];
  cuda::check_tensor(args.x, "rms_norm_weight_backward x", DType::BF16, {rows, width});
  cuda::check_tensor(args.d_out, "rms_norm_weight_backward d_out", DType::BF16, {rows, width});
  cuda::check_tensor(args.d_weight, "rms_norm_weight_backward d_weight", DType::F32, {width});
  cuda::check_workspace(workspace, op, rms_norm_weight_backward_workspace_bytes_cuda(rows));
  KTO_ASSERT(width <= kMaxPartials, op, ": width ", width, " is wider than ", kMaxPartials);
  if (rows == 0) return;
  const bf16 *x = args.x.as<bf16>(), *d_out = args.d_out.as<bf16>();
  float* inv = workspace.as<float>();
  float* partial = reinterpret_cast<float*>(static_cast<char*>(workspace.data) + cuda::align_bytes(rows * 4));
  const bool vec = width % 8 == 0 && cuda::aligned16(x, d_out);
  const RowPlan p = plan_rows(rows, width, vec, 32);
  cudaStream_t stream = cuda::stream_of(ctx);
  if (vec) {
    rms_norm_inv_kernel<8><<<p.blocks, kThreads, 0, stream>>>(x, inv, p.layout, args.eps);
  } else {
    rms_norm_inv_kernel<1><<<p.blocks, kThreads, 0, stream>>>(x, inv, p.layout, args.eps);
  }
  KTO_CUDA_CHECK_LAUNCH(op);
  int64_t n_chunks = 0;
  const GradLayout g = plan_weight_grad(rows, width, vec, n_chunks);
  const int64_t n_vec = vec ? width / 8 : width;
  const dim3 grid(static_cast<unsigned>((n_vec + g.tile - 1) / g.tile), static_cast<unsigned>(n_chunks));
  if (vec) {
    rms_norm_weight_partial_kernel<8><<<grid, kGradThreads, 0, stream>>>(x, d_out, inv, partial, g);
  } else {
    rms_norm_weight_partial_kernel<1><<<grid, kGradThreads, 0, stream>>>(x, d_out, inv, partial, g);
  }
  KTO_CUDA_CHECK_LAUNCH(op);
  rms_norm_weight_sum_kernel<<<cuda::grid_for(width, 256), 256, 0, stream>>>(partial, args.d_weight.as<float>(),
                                                                              n_chunks, width);
  KTO_CUDA_CHECK_LAUNCH(op);
}

}  // namespace kto
