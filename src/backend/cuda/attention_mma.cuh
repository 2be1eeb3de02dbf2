// Tensor-core building blocks of the attention kernels for head_dim 64 and 128
// (attention_forward_mma.cu, attention_backward_mma.cu), written from the PTX ISA: bf16
// mma.sync.m16n8k16 with fp32 accumulators, ldmatrix fragment loads from shared memory and
// cp.async tile copies. Fragments, for lane = 4·g + t (g = lane / 4, t = lane % 4):
//   A 16x16 (4 regs, 2 bf16 each): a0 (row g, cols 2t, 2t+1), a1 (row g+8, same cols),
//                                  a2 (row g, cols 2t+8, 2t+9), a3 (row g+8, cols 2t+8, 2t+9)
//   B 16x8  (2 regs): b0 (rows k = 2t, 2t+1, col n = g), b1 (rows k = 2t+8, 2t+9, col g)
//   C 16x8  (4 fp32): c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, same cols)
// so the C fragments of two adjacent 8-column tiles, rounded to bf16, are the A fragment of one
// 16-column k-step: softmax probabilities go from the score accumulators into the next product
// without shared memory. Shared tiles are bf16 [rows][Dh + 8]: the 16-byte pad moves each row 4
// banks on, so the 8 row addresses of every ldmatrix phase hit distinct banks.
#pragma once

#include "backend/cuda/attention_common.cuh"

namespace kto::cuda {

constexpr int kMmaThreads = 128;  // 4 warps (a warp group), 16 rows of the block's tile each
constexpr float kLog2e = 1.4426950408889634f;

template <int kDh>
constexpr int kMmaLd = kDh + 8;  // shared-memory row pitch in bf16 elements

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// c += a · b (16x16 by 16x8, bf16 in, fp32 accumulate).
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 bf16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i receives it.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// A fragment of the 16x16 block at (row0, col0) of a row-major tile, or — the same addresses with
// .trans — the B fragments of two 8-column tiles (cols col0 and col0 + 8; regs 0-1 and 2-3) of a
// tile stored [k][n] (rows k0 = row0 .. row0 + 15).
template <int kDh>
__device__ __forceinline__ uint32_t frag_a_addr(const bf16* tile, int row0, int col0) {
  const int lane = threadIdx.x % 32;
  return smem_u32(tile + (row0 + lane % 16) * kMmaLd<kDh> + col0 + (lane / 16) * 8);
}
// B fragments of two 8-column tiles (n0 and n0 + 8; regs 0-1 and 2-3) at k-step k0 of a tile
// stored [n][k] (row n, k contiguous), for ldmatrix without .trans.
template <int kDh>
__device__ __forceinline__ uint32_t frag_b_addr(const bf16* tile, int n0, int k0) {
  const int lane = threadIdx.x % 32;
  return smem_u32(tile + (n0 + lane % 8 + (lane / 16) * 8) * kMmaLd<kDh> + k0 + ((lane / 8) % 2) * 8);
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// 2^x on the special-function unit (2^-inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// 16-byte global -> shared copy; zero-fills the destination (reads nothing) when !valid.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
// 4-byte global -> shared copy, zero-filled when !valid.
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Starts copying rows [0, kRows) of a [rows, stride] bf16 matrix (kDh columns from `src`) into a
// [kRows][kMmaLd] shared tile; rows >= n_rows become zeros. Threads tid = 0 .. kThreads - 1 (all of
// the block or of one warp group) take part.
template <int kRows, int kDh, int kThreads = kMmaThreads>
__device__ __forceinline__ void load_tile_async(bf16* dst, const bf16* src, int64_t stride, int n_rows,
                                                int tid = threadIdx.x) {
  constexpr int kChunks = kDh / 8, kTotal = kRows * kChunks;
  static_assert(kTotal % kThreads == 0, "tile copy must divide evenly over the threads");
#pragma unroll
  for (int i = 0; i < kTotal / kThreads; ++i) {
    const int idx = tid + i * kThreads, r = idx / kChunks, c = (idx % kChunks) * 8;
    const bool valid = r < n_rows;
    cp_async_16(dst + r * kMmaLd<kDh> + c, valid ? src + r * stride + c : src, valid);
  }
}

// Barrier kId (1..15; 0 is __syncthreads) over the kThreads threads (a multiple of 32) that use it.
template <int kId, int kThreads>
__device__ __forceinline__ void named_barrier() {
  asm volatile("bar.sync %0, %1;\n" ::"n"(kId), "n"(kThreads) : "memory");
}

// Every (query, key) pair of the tile is visible: no mask needed. Queries at key index
// [first_qi, last_qi], keys [j0, j_last].
__device__ __forceinline__ bool attn_tile_unmasked(int first_qi, int last_qi, int j0, int j_last, int window) {
  return j_last <= first_qi && (window == 0 || j0 > last_qi - window);
}

}  // namespace kto::cuda
