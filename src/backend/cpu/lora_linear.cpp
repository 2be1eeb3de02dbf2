// A frozen linear layer plus a LoRA adapter, forward and backward, fp32; mirrors PEFT's
// lora.Linear.forward (base_layer(x) + lora_B(lora_A(dropout(x))) * scaling) and the autograd
// of that expression with the base weight frozen (no gradient for W or b). Every product is an
// OpenBLAS sgemm on the row-major operands, transposes expressed in the call. An NF4 weight
// (bitsandbytes Linear4bit: dequantize_4bit then the same products) is dequantised a tile of
// rows at a time into a small buffer, never as a whole dense matrix.
#include <cblas.h>

#include <algorithm>
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

// Floats of dequantised weight held at once by the NF4 path (256 KiB): whole rows, at least one.
constexpr int64_t kNf4TileFloats = int64_t{1} << 16;

int64_t nf4_tile_rows(const Nf4View& w) { return std::max<int64_t>(1, std::min(w.rows, kNf4TileFloats / w.cols)); }

void check_nf4(const Nf4View& w, int64_t in) {
  KTO_ASSERT(w.packed.device == Device::Cpu && w.cols == in && w.rows > 0, "NF4 weight [", w.rows, ", ", w.cols,
             "] does not fit an input of width ", in);
}

// out [T, N] = x [T, K] · Wᵀ (+ bias) with W in NF4, one tile of rows of W at a time.
void nf4_linear_forward(const Tensor& x, const Nf4View& w, const Tensor& bias, const Tensor& out) {
  const int64_t rows = x.shape[0], in = x.shape[1], n = w.rows;
  check_nf4(w, in);
  cpu::check_tensor(out, "lora_linear out", DType::F32, {rows, n});
  const int64_t tile_rows = nf4_tile_rows(w);
  std::vector<float> tile(static_cast<size_t>(tile_rows * in));  // [tile_rows, K]
  for (int64_t n0 = 0; n0 < n && rows > 0; n0 += tile_rows) {
    const int64_t nr = std::min(tile_rows, n - n0);
    nf4_dequantize(w, n0 * in, nr * in, tile.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows), static_cast<blasint>(nr),
                static_cast<blasint>(in), 1.0f, x.f32(), static_cast<blasint>(in), tile.data(),
                static_cast<blasint>(in), 0.0f, out.f32() + n0, static_cast<blasint>(n));
  }
  if (!cpu::present(bias)) return;
  cpu::check_tensor(bias, "lora_linear bias", DType::F32, {n});
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t j = 0; j < n; ++j) out.f32()[t * n + j] += bias.f32()[j];
  }
}

// d_x [T, K] (= or +=) d_out [T, N] · W with W in NF4, tile by tile.
void nf4_linear_backward(const Tensor& d_out, const Nf4View& w, const Tensor& d_x, float beta) {
  const int64_t rows = d_out.shape[0], in = w.cols, n = w.rows;
  const int64_t tile_rows = nf4_tile_rows(w);
  std::vector<float> tile(static_cast<size_t>(tile_rows * in));
  for (int64_t n0 = 0; n0 < n && rows > 0; n0 += tile_rows) {
    const int64_t nr = std::min(tile_rows, n - n0);
    nf4_dequantize(w, n0 * in, nr * in, tile.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows), static_cast<blasint>(in),
                static_cast<blasint>(nr), 1.0f, d_out.f32() + n0, static_cast<blasint>(n), tile.data(),
                static_cast<blasint>(in), n0 == 0 ? beta : 1.0f, d_x.f32(), static_cast<blasint>(in));
  }
}

void check_lora(const Tensor& a, const Tensor& b, int64_t in, int64_t out_features) {
  const int64_t rank = a.shape[0];
  cpu::check_tensor(a, "lora A", DType::F32, {rank, in});
  cpu::check_tensor(b, "lora B", DType::F32, {out_features, rank});
}

}  // namespace

void lora_linear_forward_cpu(const LoraLinearArgs& args) {
  const bool nf4 = args.weight_nf4.present();
  if (nf4) {
    nf4_linear_forward(args.x, args.weight_nf4, args.bias, args.out);
  } else {
    linear_forward_cpu({args.x, args.weight, args.bias, args.out});
  }
  if (!cpu::present(args.lora_a)) return;
  const int64_t rows = args.x.shape[0], in = args.x.shape[1];
  const int64_t out_features = nf4 ? args.weight_nf4.rows : args.weight.shape[0];
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
  const bool nf4 = args.weight_nf4.present();
  const int64_t rows = args.x.shape[0], in = args.x.shape[1];
  const int64_t out_features = nf4 ? args.weight_nf4.rows : args.weight.shape[0];
  cpu::check_tensor(args.x, "lora_linear_backward x", DType::F32, {rows, in});
  if (nf4) {
    check_nf4(args.weight_nf4, in);
  } else {
    cpu::check_tensor(args.weight, "lora_linear_backward weight", DType::F32, {out_features, in});
  }
  cpu::check_tensor(args.d_out, "lora_linear_backward d_out", DType::F32, {rows, out_features});
  const bool want_dx = cpu::present(args.d_x);
  if (want_dx) cpu::check_tensor(args.d_x, "lora_linear_backward d_x", DType::F32, {rows, in});
  const float beta = args.store == GradStore::Accumulate ? 1.0f : 0.0f;
  if (want_dx && nf4) nf4_linear_backward(args.d_out, args.weight_nf4, args.d_x, beta);
  if (want_dx && !nf4) {
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
