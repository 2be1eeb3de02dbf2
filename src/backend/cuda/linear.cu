// Dense layer y = x · Wᵀ (+ b), W stored [out_features, in_features] (HF nn.Linear), as one
// cuBLASLt product with the bias as its epilogue: bf16 in, bf16 out (or f32 out without a bias,
// e.g. logits), fp32 accumulation.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/gemm.h"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

// d_bias[o] += Σ_t d_out[t, o] in fp32, one thread per output feature (rows in order).
__global__ void bias_backward_kernel(const cuda::bf16* d_out, float* d_bias, int64_t rows, int64_t out_features) {
  const int64_t o = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (o >= out_features) return;
  float sum = 0.0f;
  for (int64_t r = 0; r < rows; ++r) sum += cuda::to_f32(d_out[r * out_features + o]);
  d_bias[o] += sum;
}

}  // namespace

void linear_forward_cuda(const LinearArgs& args, CudaContext& ctx) {
  const char* op = "linear_forward_cuda";
  const int64_t rows = args.x.shape[0], in = args.x.shape[1], out_features = args.weight.shape[0];
  cuda::check_tensor(args.x, "linear x", DType::BF16, {rows, in});
  cuda::check_tensor(args.weight, "linear weight", DType::BF16, {out_features, in});
  const bool f32_out = args.out.dtype == DType::F32;
  cuda::check_tensor(args.out, "linear out", f32_out ? DType::F32 : DType::BF16, {rows, out_features});
  KTO_ASSERT(!(f32_out && cuda::present(args.bias)), "linear: an f32 output takes no bias");
  KTO_ASSERT(args.out.data != args.x.data, "linear out must not alias x");
  if (cuda::present(args.bias)) cuda::check_tensor(args.bias, "linear bias", DType::BF16, {out_features});
  cuda::Gemm g;
  g.m = rows, g.n = out_features, g.k = in;
  g.a = {args.x.data, in, cuda::Trans::No};
  g.b = {args.weight.data, in, cuda::Trans::Yes};
  g.c = args.out.data, g.ldc = out_features;
  g.c_type = f32_out ? cuda::GemmOut::F32 : cuda::GemmOut::Bf16;
  g.bias = args.bias.data;
  cuda::gemm(g, ctx, op);
}

// Full fine-tuning's nn.Linear backward: d_x = d_out · W (bf16, written or accumulated),
// d_W += d_outᵀ · x and d_b += Σ_t d_out (fp32 gradients, accumulated).
void linear_backward_cuda(const LinearBackwardArgs& args, CudaContext& ctx) {
  const char* op = "linear_backward_cuda";
  const int64_t rows = args.x.shape[0], in = args.x.shape[1], out_features = args.weight.shape[0];
  cuda::check_tensor(args.x, "linear_backward x", DType::BF16, {rows, in});
  cuda::check_tensor(args.weight, "linear_backward weight", DType::BF16, {out_features, in});
  cuda::check_tensor(args.d_out, "linear_backward d_out", DType::BF16, {rows, out_features});
  if (rows == 0) return;
  if (cuda::present(args.d_x)) {
    cuda::check_tensor(args.d_x, "linear_backward d_x", DType::BF16, {rows, in});
    cuda::Gemm g;
    g.m = rows, g.n = in, g.k = out_features;
    g.a = {args.d_out.data, out_features, cuda::Trans::No};
    g.b = {args.weight.data, in, cuda::Trans::No};
    g.c = args.d_x.data, g.ldc = in, g.beta = args.store == GradStore::Accumulate ? 1.0f : 0.0f;
    cuda::gemm(g, ctx, op);
  }
  if (cuda::present(args.d_weight)) {
    cuda::check_tensor(args.d_weight, "linear_backward d_weight", DType::F32, {out_features, in});
    cuda::Gemm g;
    g.m = out_features, g.n = in, g.k = rows;
    g.a = {args.d_out.data, out_features, cuda::Trans::Yes};
    g.b = {args.x.data, in, cuda::Trans::No};
    g.c = args.d_weight.data, g.ldc = in, g.c_type = cuda::GemmOut::F32, g.beta = 1.0f;
    cuda::gemm(g, ctx, op);
  }
  if (cuda::present(args.d_bias)) {
    cuda::check_tensor(args.d_bias, "linear_backward d_bias", DType::F32, {out_features});
    bias_backward_kernel<<<cuda::grid_for(out_features, 128), 128, 0, cuda::stream_of(ctx)>>>(
        args.d_out.as<cuda::bf16>(), args.d_bias.as<float>(), rows, out_features);
    KTO_CUDA_CHECK_LAUNCH(op);
  }
}

}  // namespace kto
