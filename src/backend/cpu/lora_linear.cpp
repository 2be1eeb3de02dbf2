// A frozen linear layer plus a LoRA adapter, forward and backward, fp32; mirrors PEFT's
// lora.Linear.forward (base_layer(x) + lora_B(lora_A(dropout(x))) * scaling) and the autograd
// of that expression with the base weight frozen (no gradient for W or b). Every product is an
// OpenBLAS sgemm on the row-major operands, transposes expressed in the call.
#include <cblas.h>

#include <vector>

#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {
namespace {

// C[m, n] = alpha · op(A) · op(B) + beta · C, row-major, leading dimensions from the shapes.
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          const float* b, float beta, float* c) {
  if (m == 0 || n == 0) return;
  const int64_t lda = ta == CblasNoTrans ? k : m;
  const int64_t ldb = tb == CblasNoTrans ? n : k;
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha,
              a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(n));
}

// x * mask into `out` (the dropped-out LoRA input), or x itself when there is no mask.
const float* lora_input(const Tensor& x, const Tensor& mask, std::vector<float>& out) {
  if (!cpu::present(mask)) return x.f32();
  cpu::check_tensor(mask, "lora dropout_mask", DType::F32, {x.shape[0], x.shape[1]});
  out.resize(static_cast<size_t>(x.numel()));
  const float* xs = x.f32();
  const float* ms = mask.f32();
  for (int64_t i = 0; i < x.numel(); ++i) out[static_cast<size_t>(i)] = xs[i] * ms[i];
  return out.data();
}

void check_lora(const Tensor& a, const Tensor& b, int64_t in, int64_t out_features) {
  const int64_t rank = a.shape[0];
  cpu::check_tensor(a, "lora A", DType::F32, {rank, in});
  cpu::check_tensor(b, "lora B", DType::F32, {out_features, rank});
}

}  // namespace

void lora_linear_forward_cpu(const LoraLinearArgs& args) {
  linear_forward_cpu({args.x, args.weight, args.bias, args.out});
  if (!cpu::present(args.lora_a)) return;
  const int64_t rows = args.x.shape[0], in = args.x.shape[1], out_features = args.weight.shape[0];
  const int64_t rank = args.lora_a.shape[0];
  check_lora(args.lora_a, args.lora_b, in, out_features);
  cpu::check_tensor(args.xa, "lora xa", DType::F32, {rows, rank});
  std::vector<float> dropped;
  const float* x_in = lora_input(args.x, args.dropout_mask, dropped);
  gemm(CblasNoTrans, CblasTrans, rows, rank, in, 1.0f, x_in, args.lora_a.f32(), 0.0f, args.xa.f32());
  gemm(CblasNoTrans, CblasTrans, rows, out_features, rank, args.scale, args.xa.f32(), args.lora_b.f32(), 1.0f,
       args.out.f32());
}

// d_x through W (and the LoRA path), then d_A and d_B; g = scale · d_out · B is [T, R] scratch.
void lora_linear_backward_cpu(const LoraLinearBackwardArgs& args) {
  const int64_t rows = args.x.shape[0], in = args.x.shape[1], out_features = args.weight.shape[0];
  cpu::check_tensor(args.x, "lora_linear_backward x", DType::F32, {rows, in});
  cpu::check_tensor(args.weight, "lora_linear_backward weight", DType::F32, {out_features, in});
  cpu::check_tensor(args.d_out, "lora_linear_backward d_out", DType::F32, {rows, out_features});
  const bool want_dx = cpu::present(args.d_x);
  if (want_dx) cpu::check_tensor(args.d_x, "lora_linear_backward d_x", DType::F32, {rows, in});
  const float beta = args.store == GradStore::Accumulate ? 1.0f : 0.0f;
  if (want_dx) {
    gemm(CblasNoTrans, CblasNoTrans, rows, in, out_features, 1.0f, args.d_out.f32(), args.weight.f32(), beta,
         args.d_x.f32());
  }
  if (!cpu::present(args.lora_a) || rows == 0) return;
  const int64_t rank = args.lora_a.shape[0];
  check_lora(args.lora_a, args.lora_b, in, out_features);
  cpu::check_tensor(args.xa, "lora_linear_backward xa", DType::F32, {rows, rank});
  cpu::check_tensor(args.d_lora_a, "lora_linear_backward d_lora_a", DType::F32, {rank, in});
  cpu::check_tensor(args.d_lora_b, "lora_linear_backward d_lora_b", DType::F32, {out_features, rank});
  std::vector<float> g(static_cast<size_t>(rows * rank));  // [T, R]
  gemm(CblasNoTrans, CblasNoTrans, rows, rank, out_features, args.scale, args.d_out.f32(), args.lora_b.f32(), 0.0f,
       g.data());
  std::vector<float> dropped;
  const float* x_in = lora_input(args.x, args.dropout_mask, dropped);
  gemm(CblasTrans, CblasNoTrans, rank, in, rows, 1.0f, g.data(), x_in, 1.0f, args.d_lora_a.f32());
  gemm(CblasTrans, CblasNoTrans, out_features, rank, rows, args.scale, args.d_out.f32(), args.xa.f32(), 1.0f,
       args.d_lora_b.f32());
  if (!want_dx) return;
  if (!cpu::present(args.dropout_mask)) {
    gemm(CblasNoTrans, CblasNoTrans, rows, in, rank, 1.0f, g.data(), args.lora_a.f32(), 1.0f, args.d_x.f32());
    return;
  }
  std::vector<float> d_in(static_cast<size_t>(rows * in));  // [T, K] gradient of dropout(x)
  gemm(CblasNoTrans, CblasNoTrans, rows, in, rank, 1.0f, g.data(), args.lora_a.f32(), 0.0f, d_in.data());
  const float* mask = args.dropout_mask.f32();
  float* d_x = args.d_x.f32();
  for (int64_t i = 0; i < rows * in; ++i) d_x[i] += d_in[static_cast<size_t>(i)] * mask[i];
}

}  // namespace kto
