// Backend-internal matrix product on the context's stream, in row-major terms:
//   C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C  (+ bias[n] on every row),
// bf16 operands, fp32 accumulation (CUBLAS_COMPUTE_32F), C bf16 or f32. cuBLASLt picks the
// kernel (bias fused as its epilogue); when its heuristic offers none for these alignments,
// cublasGemmEx runs instead. Row-major is mapped to cuBLAS's column-major as Cᵀ = op(B)ᵀ·op(A)ᵀ.
#pragma once

#include <cstdint>

#include "backend/cuda/context_impl.h"

namespace kto::cuda {

enum class Trans { No, Yes };
enum class GemmOut { Bf16, F32 };

struct GemmOperand {
  const void* data = nullptr;  // bf16, row-major
  int64_t ld = 0;              // row stride in elements of the stored matrix
  Trans trans = Trans::No;     // Yes: stored as [cols of op, rows of op], i.e. op(X) = Xᵀ
};

struct Gemm {
  int64_t m = 0, n = 0, k = 0;
  GemmOperand a, b;
  void* c = nullptr;  // [m, ldc] row-major
  int64_t ldc = 0;
  GemmOut c_type = GemmOut::Bf16;
  float alpha = 1.0f, beta = 0.0f;
  const void* bias = nullptr;  // [n] bf16, optional; only with beta == 0 and a bf16 C
};

void gemm(const Gemm& g, CudaContext& ctx, const char* op);

}  // namespace kto::cuda
