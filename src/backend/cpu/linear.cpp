// Dense layer y = x · Wᵀ + b with W stored [out_features, in_features]; mirrors HF nn.Linear.
// The matmul is one OpenBLAS sgemm (row-major, W transposed in the call, never copied).
#include <cblas.h>

#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {

void linear_forward_cpu(const LinearArgs& args) {
  const int64_t rows = args.x.shape[0];
  const int64_t in = args.x.shape[1];
  const int64_t out_features = args.weight.shape[0];
  cpu::check_tensor(args.x, "linear x", DType::F32, {rows, in});
  cpu::check_tensor(args.weight, "linear weight", DType::F32, {out_features, in});
  cpu::check_tensor(args.out, "linear out", DType::F32, {rows, out_features});
  KTO_ASSERT(args.out.data != args.x.data, "linear out must not alias x");
  if (rows == 0) return;
  float* out = args.out.f32();
  float beta = 0.0f;
  if (cpu::present(args.bias)) {
    cpu::check_tensor(args.bias, "linear bias", DType::F32, {out_features});
    const float* bias = args.bias.f32();
#pragma omp parallel for schedule(static) if (rows * out_features >= cpu::kParallelMinWork)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t o = 0; o < out_features; ++o) out[r * out_features + o] = bias[o];
    }
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows), static_cast<blasint>(out_features),
              static_cast<blasint>(in), 1.0f, args.x.f32(), static_cast<blasint>(in), args.weight.f32(),
              static_cast<blasint>(in), beta, out, static_cast<blasint>(out_features));
}

}  // namespace kto
