// Dense layer y = x · Wᵀ (+ b), W stored [out_features, in_features] (HF nn.Linear), as one
// cuBLASLt product with the bias as its epilogue: bf16 in and out, fp32 accumulation.
#include "backend/cuda/gemm.h"
#include "backend/cuda/ops_cuda.h"

namespace kto {

void linear_forward_cuda(const LinearArgs& args, CudaContext& ctx) {
  const char* op = "linear_forward_cuda";
  const int64_t rows = args.x.shape[0], in = args.x.shape[1], out_features = args.weight.shape[0];
  cuda::check_tensor(args.x, "linear x", DType::BF16, {rows, in});
  cuda::check_tensor(args.weight, "linear weight", DType::BF16, {out_features, in});
  cuda::check_tensor(args.out, "linear out", DType::BF16, {rows, out_features});
  KTO_ASSERT(args.out.data != args.x.data, "linear out must not alias x");
  if (cuda::present(args.bias)) cuda::check_tensor(args.bias, "linear bias", DType::BF16, {out_features});
  cuda::Gemm g;
  g.m = rows, g.n = out_features, g.k = in;
  g.a = {args.x.data, in, cuda::Trans::No};
  g.b = {args.weight.data, in, cuda::Trans::Yes};
  g.c = args.out.data, g.ldc = out_features;
  g.bias = args.bias.data;
  cuda::gemm(g, ctx, op);
}

}  // namespace kto
