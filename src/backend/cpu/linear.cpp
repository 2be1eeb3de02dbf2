// Dense layer y = x · Wᵀ + b with W stored [out_features, in_features]; mirrors HF nn.Linear
// and, for full fine-tuning, its autograd (d_x, d_W, d_b). Each matmul is one OpenBLAS sgemm
// (row-major, transposes expressed in the call, never copied).
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

// d_x = d_out · W ([T, N] · [N, K]); d_W += d_outᵀ · x ([N, T] · [T, K]); d_b += column sums of
// d_out, one thread per block of output features (each owns its sums: no reduction races).
void linear_backward_cpu(const LinearBackwardArgs& args) {
  const int64_t rows = args.x.shape[0], in = args.x.shape[1], out_features = args.weight.shape[0];
  cpu::check_tensor(args.x, "linear_backward x", DType::F32, {rows, in});
  cpu::check_tensor(args.weight, "linear_backward weight", DType::F32, {out_features, in});
  cpu::check_tensor(args.d_out, "linear_backward d_out", DType::F32, {rows, out_features});
  if (rows == 0) return;
  const blasint m = static_cast<blasint>(rows), n = static_cast<blasint>(out_features), k = static_cast<blasint>(in);
  if (cpu::present(args.d_x)) {
    cpu::check_tensor(args.d_x, "linear_backward d_x", DType::F32, {rows, in});
    const float beta = args.store == GradStore::Accumulate ? 1.0f : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, args.d_out.f32(), n, args.weight.f32(), k,
                beta, args.d_x.f32(), k);
  }
  if (cpu::present(args.d_weight)) {
    cpu::check_tensor(args.d_weight, "linear_backward d_weight", DType::F32, {out_features, in});
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, args.d_out.f32(), n, args.x.f32(), k, 1.0f,
                args.d_weight.f32(), k);
  }
  if (cpu::present(args.d_bias)) {
    cpu::check_tensor(args.d_bias, "linear_backward d_bias", DType::F32, {out_features});
    const float* d_out = args.d_out.f32();
    float* d_bias = args.d_bias.f32();
#pragma omp parallel for schedule(static) if (rows * out_features >= cpu::kParallelMinWork)
    for (int64_t o = 0; o < out_features; ++o) {
      double sum = 0.0;
      for (int64_t r = 0; r < rows; ++r) sum += d_out[r * out_features + o];
      d_bias[o] += static_cast<float>(sum);
    }
  }
}

}  // namespace kto
