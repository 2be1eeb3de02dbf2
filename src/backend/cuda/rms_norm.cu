// RMSNorm forward and input-gradient backward (HF LlamaRMSNorm and its autograd; per-head q/k
// norm on a [T*H, Dh] view). Threads: one warp per row, 8 rows per 256-thread block; lanes stride
// over the row. Numerics: bf16 in/out, statistics and the output in fp32, rounded once.
// Aliasing (out = x, d_x = d_out) is safe: a lane reads each element before writing it.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;
constexpr int kRowsPerBlock = 8;

__global__ void rms_norm_forward_kernel(const bf16* x, const bf16* w, bf16* out, int64_t rows, int64_t width, float eps) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const bf16* xr = x + row * width;
  float sum_sq = 0.0f;
  for (int64_t i = lane; i < width; i += 32) {
    const float v = cuda::to_f32(xr[i]);
    sum_sq += v * v;
  }
  sum_sq = cuda::group_sum(sum_sq);
  const float inv = rsqrtf(sum_sq / static_cast<float>(width) + eps);
  bf16* outr = out + row * width;
  for (int64_t i = lane; i < width; i += 32) outr[i] = cuda::to_bf16(cuda::to_f32(w[i]) * (cuda::to_f32(xr[i]) * inv));
}

// d_x = inv·g·w − x·inv³·mean(g·w·x), with g = d_out; accumulate adds to the old d_x.
__global__ void rms_norm_backward_kernel(const bf16* x, const bf16* w, const bf16* d_out, bf16* d_x, int64_t rows,
                                         int64_t width, float eps, GradStore store) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const bf16* xr = x + row * width;
  const bf16* gr = d_out + row * width;
  float sum_sq = 0.0f, sum_gx = 0.0f;
  for (int64_t i = lane; i < width; i += 32) {
    const float v = cuda::to_f32(xr[i]);
    sum_sq += v * v;
    sum_gx += cuda::to_f32(gr[i]) * cuda::to_f32(w[i]) * v;
  }
  sum_sq = cuda::group_sum(sum_sq);
  sum_gx = cuda::group_sum(sum_gx);
  const float inv = rsqrtf(sum_sq / static_cast<float>(width) + eps);
  const float b = inv * inv * inv * sum_gx / static_cast<float>(width);
  bf16* dr = d_x + row * width;
  for (int64_t i = lane; i < width; i += 32) {
    float value = inv * cuda::to_f32(gr[i]) * cuda::to_f32(w[i]) - b * cuda::to_f32(xr[i]);
    if (store == GradStore::Accumulate) value += cuda::to_f32(dr[i]);
    dr[i] = cuda::to_bf16(value);
  }
}

// inv[r] = rsqrt(mean(x_r²) + eps), one warp per row (the weight gradient's first pass).
__global__ void rms_norm_inv_kernel(const bf16* x, float* inv, int64_t rows, int64_t width, float eps) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  float sum_sq = 0.0f;
  for (int64_t i = lane; i < width; i += 32) {
    const float v = cuda::to_f32(x[row * width + i]);
    sum_sq += v * v;
  }
  sum_sq = cuda::group_sum(sum_sq);
  if (lane == 0) inv[row] = rsqrtf(sum_sq / static_cast<float>(width) + eps);
}

// d_weight[i] += Σ_r d_out[r, i] · x[r, i] · inv[r], one thread per column, rows in order.
__global__ void rms_norm_weight_grad_kernel(const bf16* x, const bf16* d_out, const float* inv, float* d_weight,
                                            int64_t rows, int64_t width) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= width) return;
  float sum = 0.0f;
  for (int64_t r = 0; r < rows; ++r) sum += cuda::to_f32(d_out[r * width + i]) * (cuda::to_f32(x[r * width + i]) * inv[r]);
  d_weight[i] += sum;
}

unsigned blocks_for(int64_t rows) {
  KTO_ASSERT(rows / kRowsPerBlock < (int64_t{1} << 31), "rms_norm: too many rows for one launch");
  return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
}

}  // namespace

void rms_norm_forward_cuda(const RmsNormArgs& args, CudaContext& ctx) {
  const int64_t rows = args.x.shape[0], width = args.x.shape[1];
  cuda::check_tensor(args.x, "rms_norm x", DType::BF16, {rows, width});
  cuda::check_tensor(args.weight, "rms_norm weight", DType::BF16, {width});
  cuda::check_tensor(args.out, "rms_norm out", DType::BF16, {rows, width});
  if (rows == 0) return;
  rms_norm_forward_kernel<<<blocks_for(rows), 32 * kRowsPerBlock, 0, cuda::stream_of(ctx)>>>(
      args.x.as<bf16>(), args.weight.as<bf16>(), args.out.as<bf16>(), rows, width, args.eps);
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
  rms_norm_backward_kernel<<<blocks_for(rows), 32 * kRowsPerBlock, 0, cuda::stream_of(ctx)>>>(
      args.x.as<bf16>(), args.weight.as<bf16>(), args.d_out.as<bf16>(), args.d_x.as<bf16>(), rows, width, args.eps,
      args.store);
  KTO_CUDA_CHECK_LAUNCH("rms_norm_backward_cuda");
}

int64_t rms_norm_weight_backward_workspace_bytes_cuda(int64_t rows) { return cuda::align_bytes(rows * 4); }

void rms_norm_weight_backward_cuda(const RmsNormWeightBackwardArgs& args, const Tensor& workspace, CudaContext& ctx) {
  const char* op = "rms_norm_weight_backward_cuda";
  const int64_t rows = args.x.shape[0], width = args.x.shape[1];
  cuda::check_tensor(args.x, "rms_norm_weight_backward x", DType::BF16, {rows, width});
  cuda::check_tensor(args.d_out, "rms_norm_weight_backward d_out", DType::BF16, {rows, width});
  cuda::check_tensor(args.d_weight, "rms_norm_weight_backward d_weight", DType::F32, {width});
  cuda::check_workspace(workspace, op, rms_norm_weight_backward_workspace_bytes_cuda(rows));
  if (rows == 0) return;
  float* inv = workspace.as<float>();
  rms_norm_inv_kernel<<<blocks_for(rows), 32 * kRowsPerBlock, 0, cuda::stream_of(ctx)>>>(args.x.as<bf16>(), inv, rows,
                                                                                      width, args.eps);
  KTO_CUDA_CHECK_LAUNCH(op);
  rms_norm_weight_grad_kernel<<<cuda::grid_for(width, 128), 128, 0, cuda::stream_of(ctx)>>>(
      args.x.as<bf16>(), args.d_out.as<bf16>(), inv, args.d_weight.as<float>(), rows, width);
  KTO_CUDA_CHECK_LAUNCH(op);
}

}  // namespace kto
