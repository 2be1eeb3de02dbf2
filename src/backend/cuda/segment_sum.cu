// Per-sequence sums of per-row values (the summed completion log-probs TRL's KTO loss takes) and
// the backward broadcast. Threads: one 256-thread block per segment, striding over its rows;
// the sum is a fixed-order block reduction in fp32 (deterministic). The objective itself runs on
// the host (train/kto_loss.cpp) on the [S] sums.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

__global__ void segment_sum_kernel(const float* values, const int32_t* starts, float* out) {
  __shared__ float scratch[32];
  const int s = blockIdx.x;
  float sum = 0.0f;
  for (int r = starts[s] + threadIdx.x; r < starts[s + 1]; r += blockDim.x) sum += values[r];
  sum = cuda::block_sum(sum, scratch);
  if (threadIdx.x == 0) out[s] = sum;
}

__global__ void segment_broadcast_kernel(const float* d_out, const int32_t* starts, float* d_values) {
  const int s = blockIdx.x;
  for (int r = starts[s] + threadIdx.x; r < starts[s + 1]; r += blockDim.x) d_values[r] = d_out[s];
}

}  // namespace

void segment_sum_forward_cuda(const SegmentSumArgs& args, CudaContext& ctx) {
  const int64_t n = args.values.shape[0], n_segments = args.out.shape[0];
  cuda::check_tensor(args.values, "segment_sum values", DType::F32, {n});
  cuda::check_tensor(args.starts, "segment_sum starts", DType::I32, {n_segments + 1});
  cuda::check_tensor(args.out, "segment_sum out", DType::F32, {n_segments});
  if (n_segments == 0) return;
  segment_sum_kernel<<<static_cast<unsigned>(n_segments), 256, 0, cuda::stream_of(ctx)>>>(
      args.values.as<float>(), args.starts.as<int32_t>(), args.out.as<float>());
  KTO_CUDA_CHECK_LAUNCH("segment_sum_forward_cuda");
}

void segment_sum_backward_cuda(const SegmentSumBackwardArgs& args, CudaContext& ctx) {
  const int64_t n = args.d_values.shape[0], n_segments = args.d_out.shape[0];
  cuda::check_tensor(args.d_out, "segment_sum d_out", DType::F32, {n_segments});
  cuda::check_tensor(args.starts, "segment_sum starts", DType::I32, {n_segments + 1});
  cuda::check_tensor(args.d_values, "segment_sum d_values", DType::F32, {n});
  if (n_segments == 0) return;
  segment_broadcast_kernel<<<static_cast<unsigned>(n_segments), 256, 0, cuda::stream_of(ctx)>>>(
      args.d_out.as<float>(), args.starts.as<int32_t>(), args.d_values.as<float>());
  KTO_CUDA_CHECK_LAUNCH("segment_sum_backward_cuda");
}

}  // namespace kto
