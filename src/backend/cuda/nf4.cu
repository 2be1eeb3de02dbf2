// NF4 dequantisation on the GPU: a frozen bitsandbytes 4-bit weight (tensor/nf4.h layout) into a
// dense bf16 (or f32) [N, K] scratch right before its GEMM. Bit-exact with the CPU
// nf4_dequantize (bnb dequantize_4bit): w = round_to(dtype, code[q] · absmax(block)) with every
// step a separately rounded f32 operation (__fmul_rn / __fadd_rn: nvcc would otherwise contract
// the double-quantisation scale into one FMA), then one round-to-nearest-even to bf16.
#include <cuda_fp16.h>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;

constexpr int kThreads = 256;
constexpr int kUnitsPerThread = 8;
constexpr int64_t kUnitsPerBlock = kThreads * kUnitsPerThread;
constexpr int64_t kUnit = 8;  // elements per unit: 4 packed bytes in, one 16-byte bf16 store out
static_assert(kThreads == kDynamicMapSize, "one thread per nested code entry stages the table");

struct Nf4Params {
  const uint8_t* packed;         // [ceil(n/2)] u8
  const float* absmax;           // [n_blocks] f32 (plain)
  const uint8_t* qabsmax;        // [n_blocks] u8 (nested)
  const float* nested_absmax;    // [ceil(n_blocks / nested_blocksize)] f32 (nested)
  const float* nested_code;      // [256] f32 (nested)
  const float* code;             // [16] f32
  float nested_offset;
  int64_t n, blocksize, nested_blocksize;
  int block_shift, nested_shift;  // log2 of the blocksizes when powers of two (bnb's), else -1
  bool vectorised;  // units of 8 lie in one block and the pointers allow 4-byte loads / 16-byte stores
};

// Rounding to the quant state's dtype (tensor/nf4.cpp round_to), then to the output type.
enum class Round { F32, BF16, F16 };

template <Round kRound>
__device__ __forceinline__ float round_to(float v) {
  if constexpr (kRound == Round::BF16) return __bfloat162float(__float2bfloat16_rn(v));
  if constexpr (kRound == Round::F16) return __half2float(__float2half_rn(v));
  return v;
}

// nf4_block_absmax: the nested scale is a product then a sum, rounded separately as bnb does.
// Shifts instead of 64-bit divisions (the usual power-of-two blocksizes) keep the kernel memory-bound.
__device__ __forceinline__ float block_scale(const Nf4Params& p, const float* nested_code, int64_t block) {
  if (!p.qabsmax) return __ldg(p.absmax + block);
  const float code = nested_code[__ldg(p.qabsmax + block)];
  const int64_t nested = p.nested_shift >= 0 ? block >> p.nested_shift : block / p.nested_blocksize;
  return __fadd_rn(__fmul_rn(code, __ldg(p.nested_absmax + nested)), p.nested_offset);
}

template <typename Out>
__device__ __forceinline__ void store8(Out* out, const float (&v)[kUnit]) {
  if constexpr (sizeof(Out) == 2) {
    cuda::store_vec(out, cuda::pack_vec<8>(v));
  } else {
    reinterpret_cast<float4*>(out)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(out)[1] = make_float4(v[4], v[5], v[6], v[7]);
  }
}

template <typename Out>
__device__ __forceinline__ void store1(Out* out, float v) {
  if constexpr (sizeof(Out) == 2) {
    *out = __float2bfloat16_rn(v);
  } else {
    *out = v;
  }
}

// Decodes one full unit (4 packed bytes → 8 values) with its block's scale and stores it.
template <typename Out, Round kRound>
__device__ __forceinline__ void decode_unit(uint32_t bits, float scale, const float* code, Out* out) {
  float v[kUnit];
#pragma unroll
  for (int b = 0; b < 4; ++b) {
    v[2 * b] = round_to<kRound>(__fmul_rn(code[(bits >> (8 * b + 4)) & 0xfu], scale));
    v[2 * b + 1] = round_to<kRound>(__fmul_rn(code[(bits >> (8 * b)) & 0xfu], scale));
  }
  store8(out, v);
}

// Threads: unit u = 8 consecutive elements (4 packed bytes); thread t of block b takes units
// b·kUnitsPerBlock + j·256 + t, j < kUnitsPerThread, so that each load and store instruction of
// a warp is contiguous. A block whose units are all full, when `vectorised` (the blocksize a
// power of two >= 8, so a unit lies in one quantisation block; 4-byte aligned packed bytes,
// 16-byte aligned out), issues all its 4-byte loads and scales first, then one 16-byte store
// per unit (two for f32); the last block does so unit by unit. A partial last unit, or every
// unit when not `vectorised`, goes element by element. Element e is the high nibble of byte e/2
// when e is even, the low nibble when odd.
template <typename Out, Round kRound>
__global__ void __launch_bounds__(kThreads) nf4_dequantize_kernel(Nf4Params p, Out* out) {
  __shared__ float code[16];
  __shared__ float nested_code[kDynamicMapSize];
  if (threadIdx.x < 16) code[threadIdx.x] = p.code[threadIdx.x];
  if (p.qabsmax) nested_code[threadIdx.x] = p.nested_code[threadIdx.x];
  __syncthreads();

  const int64_t first = blockIdx.x * kUnitsPerBlock + threadIdx.x;
  const auto* words = reinterpret_cast<const uint32_t*>(p.packed);
  if (p.vectorised && (blockIdx.x + int64_t{1}) * kUnitsPerBlock * kUnit <= p.n) {
    uint32_t bits[kUnitsPerThread];
    float scale[kUnitsPerThread];
#pragma unroll
    for (int j = 0; j < kUnitsPerThread; ++j) bits[j] = __ldg(words + first + j * kThreads);
#pragma unroll
    for (int j = 0; j < kUnitsPerThread; ++j) {
      scale[j] = block_scale(p, nested_code, ((first + j * kThreads) * kUnit) >> p.block_shift);
    }
#pragma unroll
    for (int j = 0; j < kUnitsPerThread; ++j) {
      decode_unit<Out, kRound>(bits[j], scale[j], code, out + (first + j * kThreads) * kUnit);
    }
    return;
  }
  for (int j = 0; j < kUnitsPerThread; ++j) {
    const int64_t u = first + j * kThreads, e0 = u * kUnit;
    if (e0 >= p.n) break;
    if (p.vectorised && e0 + kUnit <= p.n) {
      decode_unit<Out, kRound>(__ldg(words + u), block_scale(p, nested_code, e0 >> p.block_shift), code, out + e0);
      continue;
    }
    const int64_t end = e0 + kUnit < p.n ? e0 + kUnit : p.n;
    for (int64_t e = e0; e < end; ++e) {
      const uint8_t byte = p.packed[e / 2];
      const uint32_t q = (e % 2 == 0) ? (byte >> 4) : (byte & 0xfu);
      store1(out + e, round_to<kRound>(__fmul_rn(code[q], block_scale(p, nested_code, e / p.blocksize))));
    }
  }
}

template <typename Out>
void launch(const Nf4Params& p, DType round, Out* out, CudaContext& ctx) {
  const int64_t n_units = (p.n + kUnit - 1) / kUnit;
  const auto blocks = static_cast<unsigned>((n_units + kUnitsPerBlock - 1) / kUnitsPerBlock);
  cudaStream_t stream = cuda::stream_of(ctx);
  switch (round) {
    case DType::BF16: nf4_dequantize_kernel<Out, Round::BF16><<<blocks, kThreads, 0, stream>>>(p, out); break;
    case DType::F16: nf4_dequantize_kernel<Out, Round::F16><<<blocks, kThreads, 0, stream>>>(p, out); break;
    default: nf4_dequantize_kernel<Out, Round::F32><<<blocks, kThreads, 0, stream>>>(p, out); break;
  }
}

bool aligned4(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 4 == 0; }

int log2_if_power_of_two(int64_t v) {
  if (v <= 0 || (v & (v - 1)) != 0) return -1;
  int shift = 0;
  while ((int64_t{1} << shift) < v) ++shift;
  return shift;
}

void check_nf4_view(const Nf4View& w) {
  const int64_t n = w.numel(), n_blocks = w.n_blocks();
  KTO_ASSERT(w.present() && w.packed.device == Device::Cuda, "nf4_dequantize_cuda needs a device NF4 weight");
  KTO_ASSERT(w.packed.dtype == DType::U8 && w.packed.numel() == (n + 1) / 2, "nf4 packed is ",
             dtype_name(w.packed.dtype), " ", w.packed.shape.str(), ", expected u8 [", (n + 1) / 2, "]");
  KTO_ASSERT(w.blocksize > 0 && w.nested_blocksize > 0, "nf4 blocksize ", w.blocksize, " / ", w.nested_blocksize);
  KTO_ASSERT(w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16, "nf4 quant dtype ",
             dtype_name(w.dtype));
  cuda::check_tensor(w.code, "nf4 code", DType::F32, {16});
  if (w.nested()) {
    cuda::check_tensor(w.absmax, "nf4 absmax (nested codes)", DType::U8, {n_blocks});
    cuda::check_tensor(w.nested_absmax, "nf4 nested_absmax", DType::F32,
                       {(n_blocks + w.nested_blocksize - 1) / w.nested_blocksize});
    cuda::check_tensor(w.nested_code, "nf4 nested_code", DType::F32, {kDynamicMapSize});
  } else {
    cuda::check_tensor(w.absmax, "nf4 absmax", DType::F32, {n_blocks});
  }
}

}  // namespace

void nf4_dequantize_cuda(const Nf4View& w, const Tensor& out, CudaContext& ctx) {
  check_nf4_view(w);
  KTO_ASSERT(out.dtype == DType::BF16 || out.dtype == DType::F32, "nf4_dequantize_cuda out is ",
             dtype_name(out.dtype), ", expected bf16 or f32");
  cuda::check_tensor(out, "nf4_dequantize_cuda out", out.dtype, {w.rows, w.cols});
  if (w.numel() == 0) return;
  Nf4Params p{};
  p.packed = w.packed.as<const uint8_t>();
  p.code = w.code.as<const float>();
  if (w.nested()) {
    p.qabsmax = w.absmax.as<const uint8_t>();
    p.nested_absmax = w.nested_absmax.as<const float>();
    p.nested_code = w.nested_code.as<const float>();
  } else {
    p.absmax = w.absmax.as<const float>();
  }
  p.nested_offset = w.nested_offset;
  p.n = w.numel(), p.blocksize = w.blocksize, p.nested_blocksize = w.nested_blocksize;
  p.block_shift = log2_if_power_of_two(w.blocksize), p.nested_shift = log2_if_power_of_two(w.nested_blocksize);
  p.vectorised = p.block_shift >= 3 && aligned4(p.packed) && cuda::aligned16(static_cast<const char*>(out.data));
  if (out.dtype == DType::BF16) {
    launch(p, w.dtype, out.as<bf16>(), ctx);
  } else {
    launch(p, w.dtype, out.as<float>(), ctx);
  }
  KTO_CUDA_CHECK_LAUNCH("nf4_dequantize_cuda");
}

}  // namespace kto
