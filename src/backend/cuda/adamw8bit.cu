// bitsandbytes AdamW8bit on the GPU for one parameter tensor, mirroring train/adamw8bit.cpp (bnb's
// CPU update, the project's reference) operation by operation so that parameters, 8-bit codes and
// absmax agree bit for bit: the host scalars are computed in double exactly as there, every f32
// operation is a round-to-nearest intrinsic (__fmaf_rn only where the CPU calls std::fma), and
// the requantisation reproduces blockwise8_quantize's 65536-bin lookup table (tensor/nf4.cpp
// build_lut / lut_index) by computing the bin's value and searching the code midpoints.
#include <cmath>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;

constexpr int kBlock = 256;  // bnb blocksize of the 8-bit states = threads per CUDA block
static_assert(kBlock == kDynamicMapSize, "one thread per code stages the dynamic maps");

struct Adam8Scalars {
  float b1, b2, one_minus_b1, one_minus_b2, eps, decay;
  float step_size;  // 8-bit: -lr / c1; 32-bit: -lr·c2 / c1 (c1 = 1 - b1^t, c2 = sqrt(1 - b2^t))
  float c2;         // 8-bit path
  float eps_c2;     // 32-bit path: eps·c2
  bool decayed;     // weight_decay > 0
};

struct Adam8Pointers {
  float* param;
  const float* grad;
  const float* grad_scale;  // [1] or null
  uint8_t *state1, *state2;
  float *absmax1, *absmax2;
  float *exp_avg, *exp_avg_sq;
  bf16* shadow;  // or null
  int64_t n;
};

struct DynamicMaps {
  float map1[kDynamicMapSize];  // signed: m
  float map2[kDynamicMapSize];  // unsigned: v
};

__device__ __forceinline__ float scaled_grad(const Adam8Pointers& p, int64_t i) {
  const float g = p.grad[i];
  return p.grad_scale ? __fmul_rn(g, *p.grad_scale) : g;
}

// adamw8bit.cpp update_moments: m·b1 then one fused multiply-add, v·b2 then one fused multiply-add.
__device__ __forceinline__ void update_moments(const Adam8Scalars& s, float g, float& m, float& v) {
  m = __fmaf_rn(g, s.one_minus_b1, __fmul_rn(m, s.b1));
  v = __fmaf_rn(__fmul_rn(s.one_minus_b2, g), g, __fmul_rn(v, s.b2));
}

// nf4.cpp lut[lut_index(x)]: the bin i = trunc(f32((clamp(x) + 1)·0.5 · 65535 + 0.5)), the product
// and sum in double (both exact there), and the bin's code = the number of midpoints below the
// bin's value -1 + 2i/65535 (build_lut's scan), found by binary search over the 255 midpoints.
__device__ __forceinline__ uint8_t quantize_code(float x, const float* mid) {
  if (isnan(x)) x = 0.0f;
  x = x < -1.0f ? -1.0f : (1.0f < x ? 1.0f : x);
  const float t = __fmul_rn(__fadd_rn(x, 1.0f), 0.5f);
  const float fused = __double2float_rn(__dadd_rn(__dmul_rn(static_cast<double>(t), 65535.0), 0.5));
  const auto bin = static_cast<uint32_t>(fused);  // truncation, as the CPU's cast to uint16_t
  const float value = __fadd_rn(-1.0f, __fdiv_rn(__fmul_rn(2.0f, static_cast<float>(bin)), 65535.0f));
  int lo = 0, hi = kDynamicMapSize - 1;
  while (lo < hi) {
    const int probe = (lo + hi) / 2;
    if (mid[probe] < value) {
      lo = probe + 1;
    } else {
      hi = probe;
    }
  }
  return static_cast<uint8_t>(lo);
}

// Threads: CUDA block b = quantisation block b (elements [256b, 256b + 256)), one thread per
// element. Dequantise m, v with the block's old absmax; update them and the parameter; reduce
// the new absmax of |m| and |v| over the block (max is exact, so the tree order does not matter;
// NaN is skipped as std::max skips it); requantise (an all-zero block gets codes 0, absmax 0).
__global__ void __launch_bounds__(kBlock)
    adamw8bit_blockwise_kernel(Adam8Pointers p, Adam8Scalars s, DynamicMaps maps) {
  __shared__ float code1[kDynamicMapSize], code2[kDynamicMapSize];
  __shared__ float mid1[kDynamicMapSize - 1], mid2[kDynamicMapSize - 1];
  __shared__ float warp_max[2][kBlock / 32];
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  code1[t] = maps.map1[t];
  code2[t] = maps.map2[t];
  __syncthreads();
  if (t + 1 < kDynamicMapSize) {  // build_lut's midpoints: 0.5 · (code[j] + code[j + 1])
    mid1[t] = __fmul_rn(0.5f, __fadd_rn(code1[t], code1[t + 1]));
    mid2[t] = __fmul_rn(0.5f, __fadd_rn(code2[t], code2[t + 1]));
  }

  const int64_t block = blockIdx.x, i = block * kBlock + t;
  const bool valid = i < p.n;
  float m = 0.0f, v = 0.0f;
  if (valid) {
    m = __fmul_rn(code1[p.state1[i]], p.absmax1[block]);
    v = __fmul_rn(code2[p.state2[i]], p.absmax2[block]);
    update_moments(s, scaled_grad(p, i), m, v);
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.c2), s.eps);
    const float decayed = s.decayed ? __fmul_rn(p.param[i], s.decay) : p.param[i];
    const float updated = __fadd_rn(decayed, __fdiv_rn(__fmul_rn(s.step_size, m), denom));
    p.param[i] = updated;
    if (p.shadow) p.shadow[i] = cuda::to_bf16(updated);
  }

  float a1 = valid ? fmaxf(0.0f, fabsf(m)) : 0.0f, a2 = valid ? fmaxf(0.0f, fabsf(v)) : 0.0f;
  a1 = cuda::group_max(a1);
  a2 = cuda::group_max(a2);
  if (lane == 0) warp_max[0][warp] = a1, warp_max[1][warp] = a2;
  __syncthreads();  // also publishes the midpoints, and every thread has read the old absmax
  float amax1 = 0.0f, amax2 = 0.0f;
#pragma unroll
  for (int w = 0; w < kBlock / 32; ++w) amax1 = fmaxf(amax1, warp_max[0][w]), amax2 = fmaxf(amax2, warp_max[1][w]);
  if (valid) {
    p.state1[i] = amax1 == 0.0f ? uint8_t{0} : quantize_code(__fmul_rn(m, __fdiv_rn(1.0f, amax1)), mid1);
    p.state2[i] = amax2 == 0.0f ? uint8_t{0} : quantize_code(__fmul_rn(v, __fdiv_rn(1.0f, amax2)), mid2);
  }
  if (t == 0) p.absmax1[block] = amax1, p.absmax2[block] = amax2;
}

// adamw8bit.cpp step_32bit (bnb _optimizer_update_32bit_cpu) for parameters under min_8bit_size:
// update = m / (sqrt(v) + eps·c2), p = fma(step_size, update, decayed p). One thread per element.
__global__ void adamw8bit_f32_state_kernel(Adam8Pointers p, Adam8Scalars s) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < p.n; i += int64_t{gridDim.x} * blockDim.x) {
    float m = p.exp_avg[i], v = p.exp_avg_sq[i];
    update_moments(s, scaled_grad(p, i), m, v);
    const float decayed = s.decayed ? __fmul_rn(p.param[i], s.decay) : p.param[i];
    const float update = __fdiv_rn(m, __fadd_rn(__fsqrt_rn(v), s.eps_c2));
    const float updated = __fmaf_rn(s.step_size, update, decayed);
    p.param[i] = updated;
    p.exp_avg[i] = m;
    p.exp_avg_sq[i] = v;
    if (p.shadow) p.shadow[i] = cuda::to_bf16(updated);
  }
}

// adamw8bit.cpp scalars(): the same double expressions, rounded to f32 at the same points.
Adam8Scalars host_scalars(const AdamW8bitCudaArgs& a, bool eight_bit) {
  Adam8Scalars s{};
  s.b1 = static_cast<float>(a.beta1), s.b2 = static_cast<float>(a.beta2);
  s.one_minus_b1 = static_cast<float>(1.0 - a.beta1), s.one_minus_b2 = static_cast<float>(1.0 - a.beta2);
  s.eps = static_cast<float>(a.eps);
  s.decay = static_cast<float>(1.0 - a.lr * a.weight_decay);
  s.decayed = a.weight_decay > 0.0;
  const double c1 = 1.0 - std::pow(a.beta1, static_cast<double>(a.step));
  const double c2 = std::sqrt(1.0 - std::pow(a.beta2, static_cast<double>(a.step)));
  if (eight_bit) {
    s.c2 = static_cast<float>(c2);
    s.step_size = static_cast<float>(-a.lr / c1);
  } else {
    s.step_size = static_cast<float>(-a.lr * c2 / c1);
    s.eps_c2 = static_cast<float>(a.eps * c2);
  }
  return s;
}

const DynamicMaps& dynamic_maps() {
  static const DynamicMaps maps = [] {
    DynamicMaps m{};
    const auto& signed_map = dynamic_map(DynamicMap::Signed);
    const auto& unsigned_map = dynamic_map(DynamicMap::Unsigned);
    for (int64_t j = 0; j < kDynamicMapSize; ++j) m.map1[j] = signed_map[j], m.map2[j] = unsigned_map[j];
    return m;
  }();
  return maps;
}

}  // namespace

void adamw8bit_step_cuda(const AdamW8bitCudaArgs& args, CudaContext& ctx) {
  const int64_t n = args.param.numel();
  const bool eight_bit = cuda::present(args.state1);
  cuda::check_tensor(args.param, "adamw8bit param", DType::F32, {n});
  cuda::check_tensor(args.grad, "adamw8bit grad", DType::F32, {n});
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  if (eight_bit) {
    cuda::check_tensor(args.state1, "adamw8bit state1", DType::U8, {n});
    cuda::check_tensor(args.state2, "adamw8bit state2", DType::U8, {n});
    cuda::check_tensor(args.absmax1, "adamw8bit absmax1", DType::F32, {n_blocks});
    cuda::check_tensor(args.absmax2, "adamw8bit absmax2", DType::F32, {n_blocks});
    KTO_ASSERT(!cuda::present(args.exp_avg) && !cuda::present(args.exp_avg_sq),
               "adamw8bit: give either the 8-bit states or the f32 moments, not both");
  } else {
    cuda::check_tensor(args.exp_avg, "adamw8bit exp_avg", DType::F32, {n});
    cuda::check_tensor(args.exp_avg_sq, "adamw8bit exp_avg_sq", DType::F32, {n});
  }
  if (cuda::present(args.param_bf16)) cuda::check_tensor(args.param_bf16, "adamw8bit param_bf16", DType::BF16, {n});
  if (cuda::present(args.grad_scale)) cuda::check_tensor(args.grad_scale, "adamw8bit grad_scale", DType::F32, {1});
  KTO_ASSERT(args.step >= 1, "adamw8bit step must be >= 1");
  if (n == 0) return;
  const Adam8Pointers p{args.param.as<float>(),   args.grad.as<const float>(), args.grad_scale.as<const float>(),
                        args.state1.as<uint8_t>(), args.state2.as<uint8_t>(),   args.absmax1.as<float>(),
                        args.absmax2.as<float>(),  args.exp_avg.as<float>(),    args.exp_avg_sq.as<float>(),
                        args.param_bf16.as<bf16>(), n};
  const Adam8Scalars s = host_scalars(args, eight_bit);
  if (eight_bit) {
    KTO_ASSERT(n_blocks <= 0x7fffffff, "adamw8bit: ", n, " elements exceed one launch");
    adamw8bit_blockwise_kernel<<<static_cast<unsigned>(n_blocks), kBlock, 0, cuda::stream_of(ctx)>>>(p, s,
                                                                                                     dynamic_maps());
  } else {
    adamw8bit_f32_state_kernel<<<cuda::grid_for(n, 256, 4096), 256, 0, cuda::stream_of(ctx)>>>(p, s);
  }
  KTO_CUDA_CHECK_LAUNCH("adamw8bit_step_cuda");
}

}  // namespace kto
