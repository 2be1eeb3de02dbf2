// bitsandbytes 4-bit NF4 weights and its 8-bit blockwise "dynamic map" quantisation, bit-exact
// with bitsandbytes 0.50 (functional.quantize_4bit / dequantize_4bit with quant_type "nf4", the
// torch "default" quantize_4bit kernel and the CPU quantize_blockwise LUT kernel of
// csrc/cpu_ops.cpp; create_dynamic_map). Layout and rules: spec/formats.md §4.
//
// The packed layout (the same bytes on host and device; a CUDA dequant kernel needs only this):
// flatten the dense weight [N, K] row-major; element e lives in byte e/2, in the HIGH nibble
// when e is even and the LOW nibble when odd (an odd numel pads the last low nibble with code
// 7 = 0.0). Block b = elements [b·blocksize, (b+1)·blocksize) — blocks straddle rows when
// K % blocksize != 0 — has scale absmax(b), and w[e] = round_to_dtype(code[q(e)] · absmax(e / bs)),
// the product in f32. With double quantisation absmax(b) = nested_code[qabsmax[b]] ·
// nested_absmax[b / 256] + nested_offset, both steps in f32 and rounded separately (bnb runs them
// as two ops; a CUDA kernel must not let them contract into one FMA: __fmul_rn then __fadd_rn).
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "tensor/tensor.h"

namespace kto {

constexpr int64_t kNf4BlockSize = 64;          // bnb Params4bit default (transformers checkpoints)
constexpr int64_t kNf4NestedBlockSize = 256;   // bnb quantize_4bit(compress_statistics=True)
constexpr int64_t kDynamicMapSize = 256;

// The NF4 code table (bnb get_4bit_type("nf4"), the QLoRA paper's normal-float values), index → value.
extern const std::array<float, 16> kNf4Code;

// bnb functional.create_dynamic_map(signed, max_exponent_bits=7, total_bits=8), recomputed in
// f32 as bitsandbytes does: the signed map codes the absmax of double quantisation and Adam's
// first moment, the unsigned one Adam's second moment.
enum class DynamicMap : uint8_t { Signed, Unsigned };
const std::array<float, kDynamicMapSize>& dynamic_map(DynamicMap kind);

// bnb quantize_blockwise on CPU (cpu_ops.cpp quantize_cpu_impl): per block of `blocksize`
// values, absmax = max |x| and q = the code nearest to x · (1/absmax), looked up in a 65536-bin
// table over [-1, 1] (so codes closer together than 2/65535 are not all reachable); an all-zero
// block gets absmax 0 and codes 0. q has x.size() entries, absmax ceil(size / blocksize).
void blockwise8_quantize(std::span<const float> x, std::span<const float, kDynamicMapSize> code, int64_t blocksize,
                         std::span<uint8_t> q, std::span<float> absmax);
// out[i] = code[q[i]] · absmax[i / blocksize] (f32), bnb dequantize_blockwise.
void blockwise8_dequantize(std::span<const uint8_t> q, std::span<const float, kDynamicMapSize> code, int64_t blocksize,
                           std::span<const float> absmax, std::span<float> out);

// A non-owning view of an NF4 weight, what the ops read (host or device pointers).
struct Nf4View {
  Tensor packed;         // [ceil(N*K/2)] u8, nibble order above
  Tensor absmax;         // [n_blocks] f32; u8 codes when nested
  Tensor nested_absmax;  // [ceil(n_blocks/256)] f32, nested only (else absent)
  Tensor nested_code;    // [256] f32, nested only: the signed dynamic map as stored
  Tensor code;           // [16] f32 quant_map (kNf4Code)
  float nested_offset = 0.0f;
  int64_t rows = 0, cols = 0;  // the dense weight's shape [N, K]
  int64_t blocksize = kNf4BlockSize;
  int64_t nested_blocksize = kNf4NestedBlockSize;
  DType dtype = DType::F32;  // dequantised values are rounded to this (bnb quant_state.dtype): f32|bf16|f16

  bool present() const { return packed.data != nullptr; }
  bool nested() const { return nested_absmax.data != nullptr; }
  int64_t numel() const { return rows * cols; }
  int64_t n_blocks() const { return (numel() + blocksize - 1) / blocksize; }
};

// An owning host NF4 weight (one frozen projection). empty() when unused.
struct Nf4Tensor {
  HostTensor packed, absmax, nested_absmax, nested_code, code;  // as in Nf4View
  float nested_offset = 0.0f;
  int64_t rows = 0, cols = 0;
  int64_t blocksize = kNf4BlockSize;
  int64_t nested_blocksize = kNf4NestedBlockSize;
  DType dtype = DType::F32;

  bool empty() const { return packed.empty(); }
  bool nested() const { return !nested_absmax.empty(); }
  Nf4View view() const;
  int64_t nbytes() const;  // every buffer together (what the weight costs in memory)
};

struct Nf4QuantizeOptions {
  int64_t blocksize = kNf4BlockSize;  // 32 … 4096, a power of two (bnb's allowed values)
  bool double_quant = false;          // bnb_4bit_use_double_quant / compress_statistics
  DType dtype = DType::F32;           // the weight's dtype before quantisation (recorded in the quant state)
};

// bnb quantize_4bit(w, blocksize, compress_statistics, quant_type="nf4") of a dense [rows, cols]
// weight given as f32 (a bf16/f16 weight converted to f32 first, as bnb does with A.float()).
Nf4Tensor nf4_quantize(const float* w, int64_t rows, int64_t cols, const Nf4QuantizeOptions& options);

// The f32 scale of block `block` (resolving double quantisation). Host views only.
float nf4_block_absmax(const Nf4View& w, int64_t block);
// Dequantises elements [first, first + count) of the flattened weight into out[0, count) (f32
// holding values of w.dtype), as bnb dequantize_4bit does. Host views only.
void nf4_dequantize(const Nf4View& w, int64_t first, int64_t count, float* out);

}  // namespace kto
