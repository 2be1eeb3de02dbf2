// The backend's one matrix-product helper (gemm.h): cuBLASLt with a cublasGemmEx fallback.
// Descriptors are built per call (a few microseconds of host time; cached plans can come later).
#include <algorithm>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/gemm.h"

namespace kto::cuda {
namespace {

// C[r, c] = bias[c] for every row, before a beta = 1 product (the fallback's bias). One thread per element.
__global__ void broadcast_rows_kernel(const bf16* bias, bf16* c, int64_t rows, int64_t cols, int64_t ldc) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * cols; i += int64_t{gridDim.x} * blockDim.x) {
    c[(i / cols) * ldc + i % cols] = bias[i % cols];
  }
}

// Largest power of two (<= 256) dividing the address: what cuBLASLt's alignment preferences want.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && address % a != 0) a /= 2;
  return a;
}

struct LtObjects {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtObjects() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// Column-major view of the product: D[mc, nc] = op(A')·op(B') with A' = B (row-major), B' = A.
struct ColMajor {
  int64_t mc, nc, k;
  const GemmOperand* a;  // the row-major B
  const GemmOperand* b;  // the row-major A
};

cublasOperation_t op_of(Trans t) { return t == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

// Tries cuBLASLt; false when its heuristic has no algorithm for this problem.
bool gemm_lt(const Gemm& g, const ColMajor& cm, CudaContext& ctx, const char* op) {
  CudaContext::Impl& s = ctx.impl();
  const cudaDataType c_type = g.c_type == GemmOut::Bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasOperation_t ta = op_of(cm.a->trans), tb = op_of(cm.b->trans);
  LtObjects o;
  KTO_CUBLAS_CHECK(cublasLtMatmulDescCreate(&o.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), op);
  KTO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(o.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), op);
  KTO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(o.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), op);
  if (g.bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    KTO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(o.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), op);
    KTO_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(o.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias), op);
  }
  // Stored (column-major) shapes: op N keeps [rows, cols] of the operand as used, op T swaps them.
  const bool a_t = cm.a->trans == Trans::Yes, b_t = cm.b->trans == Trans::Yes;
  KTO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&o.la, CUDA_R_16BF, static_cast<uint64_t>(a_t ? cm.k : cm.mc),
                                              static_cast<uint64_t>(a_t ? cm.mc : cm.k), cm.a->ld), op);
  KTO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&o.lb, CUDA_R_16BF, static_cast<uint64_t>(b_t ? cm.nc : cm.k),
                                              static_cast<uint64_t>(b_t ? cm.k : cm.nc), cm.b->ld), op);
  KTO_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&o.lc, c_type, static_cast<uint64_t>(cm.mc), static_cast<uint64_t>(cm.nc),
                                              g.ldc), op);
  KTO_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&o.pref), op);
  const size_t ws_bytes = s.gemm_workspace.bytes();
  KTO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                        sizeof ws_bytes), op);
  const uint32_t align_a = alignment_of(cm.a->data), align_b = alignment_of(cm.b->data), align_c = alignment_of(g.c);
  KTO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                        sizeof align_a), op);
  KTO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                        sizeof align_b), op);
  KTO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                        sizeof align_c), op);
  KTO_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                                        sizeof align_c), op);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(s.lt, o.desc, o.la, o.lb, o.lc, o.lc, o.pref, 1, &heuristic, &found);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || found == 0) return false;
  KTO_CUBLAS_CHECK(st, op);
  KTO_CUBLAS_CHECK(cublasLtMatmul(s.lt, o.desc, &g.alpha, cm.a->data, o.la, cm.b->data, o.lb, &g.beta, g.c, o.lc, g.c,
                                  o.lc, &heuristic.algo, s.gemm_workspace.data(), ws_bytes, s.stream), op);
  return true;
}

void gemm_fallback(const Gemm& g, const ColMajor& cm, CudaContext& ctx, const char* op) {
  CudaContext::Impl& s = ctx.impl();
  float beta = g.beta;
  if (g.bias) {
    broadcast_rows_kernel<<<grid_for(g.m * g.n, 256), 256, 0, s.stream>>>(static_cast<const bf16*>(g.bias),
                                                                          static_cast<bf16*>(g.c), g.m, g.n, g.ldc);
    KTO_CUDA_CHECK_LAUNCH(op);
    beta = 1.0f;
  }
  const cudaDataType c_type = g.c_type == GemmOut::Bf16 ? CUDA_R_16BF : CUDA_R_32F;
  KTO_CUBLAS_CHECK(cublasGemmEx(s.blas, op_of(cm.a->trans), op_of(cm.b->trans), static_cast<int>(cm.mc),
                                static_cast<int>(cm.nc), static_cast<int>(cm.k), &g.alpha, cm.a->data, CUDA_R_16BF,
                                static_cast<int>(cm.a->ld), cm.b->data, CUDA_R_16BF, static_cast<int>(cm.b->ld), &beta,
                                g.c, c_type, static_cast<int>(g.ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   op);
}

}  // namespace

void gemm(const Gemm& g, CudaContext& ctx, const char* op) {
  KTO_ASSERT(!g.bias || (g.beta == 0.0f && g.c_type == GemmOut::Bf16), op, ": gemm bias needs beta 0 and a bf16 C");
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {
    KTO_ASSERT(g.beta == 1.0f && !g.bias, op, ": gemm with k = 0 must accumulate");
    return;
  }
  const int64_t limit = int64_t{1} << 31;
  if (g.m >= limit || g.n >= limit || g.k >= limit) {
    fail(ErrorKind::Unsupported, op, ": matrix product of ", g.m, "x", g.k, "x", g.n, " exceeds 32-bit sizes");
  }
  const ColMajor cm{g.n, g.m, g.k, &g.b, &g.a};
  if (!gemm_lt(g, cm, ctx, op)) gemm_fallback(g, cm, ctx, op);
}

}  // namespace kto::cuda
