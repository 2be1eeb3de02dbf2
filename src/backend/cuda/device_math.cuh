// Device helpers shared by the kernels: bf16 <-> fp32 conversions and warp/block reductions.
// Reductions combine in a fixed tree order, so results are deterministic for a launch shape.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "backend/cuda/context_impl.h"

namespace kto::cuda {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 to_bf16(float x) { return __float2bfloat16_rn(x); }

// Sum over the `width` consecutive lanes of a group (width a power of two <= 32).
template <int kWidth = 32>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int offset = kWidth / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset, kWidth);
  return v;
}

template <int kWidth = 32>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
  for (int offset = kWidth / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset, kWidth));
  return v;
}

// Block-wide sum for blockDim.x a multiple of 32 (<= 1024); every thread gets the result.
// `scratch` holds 32 floats of shared memory; the call ends with a barrier so it can be reused.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  v = group_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : 0.0f;
  v = group_sum(v);
  __syncthreads();
  return v;
}

__device__ __forceinline__ double block_sum_f64(double v, double* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : 0.0;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  __syncthreads();
  return v;
}

// Blocks for a grid-stride loop over n elements with `threads` per block (capped, at least 1).
inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 65535) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned>(blocks);
}

// ---- Vectorised bf16 access for the memory-bound kernels ----

// kN consecutive bf16 (kN = 8 or 1) as raw bits, moved as one memory access: kN = 8 is one 16-byte
// load or store (the address must be 16-byte aligned), kN = 1 the scalar path (widths not a
// multiple of 8, unaligned bases). v[j] is element j in fp32 (exact); pack_vec rounds fp32 values
// to nearest even, as to_bf16, two per cvt. Global memory only (the store is st.global).
template <int kN>
struct Bf16Vec {
  static_assert(kN == 1 || kN == 8, "Bf16Vec holds 1 or 8 elements");
  std::conditional_t<kN == 8, uint4, bf16> raw;

  __device__ __forceinline__ float operator[](int j) const {
    if constexpr (kN == 8) {
      const int i = j / 2;
      const uint32_t w = i == 0 ? raw.x : i == 1 ? raw.y : i == 2 ? raw.z : raw.w;
      return __uint_as_float(j % 2 == 0 ? w << 16 : w & 0xffff0000u);
    } else {
      return to_f32(raw);
    }
  }
};

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  __builtin_memcpy(&bits, &h, sizeof(bits));
  return bits;
}

template <int kN>
__device__ __forceinline__ Bf16Vec<kN> pack_vec(const float (&f)[kN]) {
  Bf16Vec<kN> v;
  if constexpr (kN == 8) {
    v.raw = make_uint4(pack_bf16x2(f[0], f[1]), pack_bf16x2(f[2], f[3]), pack_bf16x2(f[4], f[5]),
                       pack_bf16x2(f[6], f[7]));
  } else {
    v.raw = to_bf16(f[0]);
  }
  return v;
}

template <int kN>
__device__ __forceinline__ Bf16Vec<kN> load_vec(const bf16* p) {
  Bf16Vec<kN> v;
  if constexpr (kN == 8) {
    v.raw = *reinterpret_cast<const uint4*>(p);
  } else {
    v.raw = *p;
  }
  return v;
}

template <int kN>
__device__ __forceinline__ void store_vec(bf16* p, const Bf16Vec<kN>& v) {
  if constexpr (kN == 8) {
    __stwb(reinterpret_cast<uint4*>(p), v.raw);  // a plain store may be split into four 32-bit ones
  } else {
    *p = v.raw;
  }
}

// Whether every pointer is 16-byte aligned (with a width that is a multiple of 8, the precondition
// of the 16-byte paths).
template <typename... P>
__host__ __device__ inline bool aligned16(const P*... p) {
  return ((reinterpret_cast<uintptr_t>(p) % 16 == 0) && ...);
}

// The fewest lanes, a power of two <= max_lanes, that cover n items.
inline int lanes_for(int64_t n, int max_lanes = 32) {
  int lanes = 1;
  while (lanes < max_lanes && lanes < n) lanes *= 2;
  return lanes;
}

// Sum over the aligned groups of `group` consecutive lanes (a power of two <= 32, the same on every
// lane); every lane of the warp must call it. Fixed butterfly order: deterministic.
__device__ __forceinline__ float lane_group_sum(float v, int group) {
  for (int offset = group / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Grid-stride loop over n elements in vectors of kVec (elements [0, n / kVec · kVec)), then the
// scalar tail: calls f(std::integral_constant<int, width>{}, first_element) with width kVec or 1.
// The caller guarantees the 16-byte alignment of every base when kVec == 8.
template <int kVec, typename F>
__device__ __forceinline__ void grid_stride_vectors(int64_t n, F&& f) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x, first = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t n_vec = n / kVec;
  for (int64_t i = first; i < n_vec; i += stride) f(std::integral_constant<int, kVec>{}, i * kVec);
  if constexpr (kVec > 1) {
    for (int64_t i = n_vec * kVec + first; i < n; i += stride) f(std::integral_constant<int, 1>{}, i);
  }
}

}  // namespace kto::cuda
