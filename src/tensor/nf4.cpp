// NF4 and 8-bit blockwise quantisation, mirroring bitsandbytes 0.50 operation by operation so
// that the bytes and the f32 values are identical: quantize_4bit = backends/default/ops.py
// (torch: x · (1/absmax) for whole blocks, x / absmax for the last partial one, bucketize on the
// code midpoints, ties to the lower code), quantize_blockwise = csrc/cpu_ops.cpp (65536-bin
// lookup table), create_dynamic_map with torch.linspace's float32 arithmetic.
#include "tensor/nf4.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "util/error.h"

namespace kto {

const std::array<float, 16> kNf4Code = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
    0.7229568362236023f, 1.0f};

namespace {

// torch.linspace(start, end, steps, dtype=float32) on CPU (RangeFactoriesKernel.cpp): the first
// half counts up from start, the second down from end, with an f32 step; torch's build fuses
// each multiply-add (one rounding), which std::fma reproduces on any machine.
std::vector<float> torch_linspace_f32(float start, float end, int64_t steps) {
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  std::vector<float> out(static_cast<size_t>(steps));
  for (int64_t i = 0; i < steps; ++i) {
    out[static_cast<size_t>(i)] = i < halfway ? std::fma(step, static_cast<float>(i), start)
                                              : std::fma(-step, static_cast<float>(steps - i - 1), end);
  }
  return out;
}

std::array<float, kDynamicMapSize> make_dynamic_map(bool is_signed) {
  constexpr int kMaxExponentBits = 7, kNonSignBits = 7;
  std::vector<float> data;
  for (int i = 0; i < kMaxExponentBits; ++i) {
    const int64_t items = is_signed ? (int64_t{1} << (i + kNonSignBits - kMaxExponentBits)) + 1
                                    : (int64_t{1} << (i + kNonSignBits - kMaxExponentBits + 1)) + 1;
    const std::vector<float> bounds = torch_linspace_f32(0.1f, 1.0f, items);
    const float scale = static_cast<float>(std::pow(10.0, static_cast<double>(i - (kMaxExponentBits - 1))));
    for (size_t j = 0; j + 1 < bounds.size(); ++j) {
      const float mean = (bounds[j] + bounds[j + 1]) / 2.0f;
      data.push_back(scale * mean);
      if (is_signed) data.push_back(-scale * mean);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  while (data.size() < static_cast<size_t>(kDynamicMapSize)) data.push_back(0.0f);
  std::sort(data.begin(), data.end());
  std::array<float, kDynamicMapSize> out{};
  std::copy(data.begin(), data.end(), out.begin());
  return out;
}

// cpu_ops.cpp build_quantize_lut / norm_to_lut_index: 65536 bins over [-1, 1], each mapped to
// the nearest code (midpoint comparisons, ties to the lower code).
constexpr int kLutSize = 65536;
using Lut = std::array<uint8_t, kLutSize>;

Lut build_lut(std::span<const float, kDynamicMapSize> code) {
  std::array<float, kDynamicMapSize - 1> mid{};
  for (size_t i = 0; i + 1 < code.size(); ++i) mid[i] = 0.5f * (code[i] + code[i + 1]);
  Lut lut{};
  size_t idx = 0;
  for (int i = 0; i < kLutSize; ++i) {
    const float val = -1.0f + (2.0f * static_cast<float>(i)) / static_cast<float>(kLutSize - 1);
    while (idx < mid.size() && mid[idx] < val) ++idx;
    lut[static_cast<size_t>(i)] = static_cast<uint8_t>(idx);
  }
  return lut;
}

// (clamp(v) + 1) · 0.5 · 65535 + 0.5 truncated. bnb compiles this region for AVX2+FMA, so the last
// multiply-add may be fused; it is computed here with one rounding (exact double product, one
// rounding to f32). Unfused, it differs only when the product lands within an ulp of k + 0.5,
// i.e. on a bin edge; no input of the reference fixtures does.
inline size_t lut_index(float v) {
  if (std::isnan(v)) v = 0.0f;  // bnb's cast of NaN is undefined; keep ours defined
  v = std::clamp(v, -1.0f, 1.0f);
  const float t = (v + 1.0f) * 0.5f;
  const float fused = static_cast<float>(static_cast<double>(t) * 65535.0 + 0.5);
  return static_cast<size_t>(static_cast<uint16_t>(fused));
}

const Lut& lut_for(std::span<const float, kDynamicMapSize> code) {
  static std::mutex mutex;
  static std::vector<std::pair<std::array<float, kDynamicMapSize>, std::unique_ptr<Lut>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto& [key, lut] : cache) {
    if (std::equal(key.begin(), key.end(), code.begin())) return *lut;
  }
  std::array<float, kDynamicMapSize> key{};
  std::copy(code.begin(), code.end(), key.begin());
  cache.emplace_back(key, std::make_unique<Lut>(build_lut(code)));
  return *cache.back().second;
}

float round_to(DType dtype, float v) {
  switch (dtype) {
    case DType::BF16: return bf16_to_f32(f32_to_bf16(v));
    case DType::F16: return f16_to_f32(f32_to_f16(v));
    default: return v;
  }
}

// torch's float32 sum (aten/src/ATen/native/cpu/SumKernel.cpp cascade_sum, as the reference
// build runs it): rows of kIlp accumulators summed in cascade levels of 16 (multi_row_sum), the
// partial sums folded into the first; a contiguous row of at least kLanes values is summed as
// kLanes-wide vectors that way, the leftover scalars first and then the lanes one by one.
constexpr int kLanes = 8, kIlp = 4;

template <int Width>
using Acc = std::array<float, Width>;

template <int Width>
Acc<Width> add(Acc<Width> a, const float* b) {
  for (int l = 0; l < Width; ++l) a[static_cast<size_t>(l)] += b[l];
  return a;
}

// row_sum over `size` items of Width floats each, item i at x + i·Width.
template <int Width>
Acc<Width> row_sum(const float* x, int64_t size) {
  constexpr int kLevels = 4;
  const int64_t rows = size / kIlp;
  int64_t ceil_log2 = 0;
  while ((int64_t{1} << ceil_log2) < rows) ++ceil_log2;
  const int64_t level_power = std::max<int64_t>(4, ceil_log2 / kLevels);
  const int64_t level_step = int64_t{1} << level_power, level_mask = level_step - 1;
  std::array<std::array<Acc<Width>, kIlp>, kLevels> acc{};
  int64_t i = 0;
  auto add_row = [&](int64_t r) {
    for (int k = 0; k < kIlp; ++k) acc[0][k] = add<Width>(acc[0][k], x + (r * kIlp + k) * Width);
  };
  while (i + level_step <= rows) {
    for (int64_t j = 0; j < level_step; ++j, ++i) add_row(i);
    for (int j = 1; j < kLevels; ++j) {
      for (int k = 0; k < kIlp; ++k) acc[j][k] = add<Width>(acc[j][k], acc[j - 1][k].data()), acc[j - 1][k] = {};
      if ((i & (level_mask << (j * level_power))) != 0) break;
    }
  }
  for (; i < rows; ++i) add_row(i);
  for (int j = 1; j < kLevels; ++j) {
    for (int k = 0; k < kIlp; ++k) acc[0][k] = add<Width>(acc[0][k], acc[j][k].data());
  }
  Acc<Width> sum = acc[0][0];
  for (int64_t t = rows * kIlp; t < size; ++t) sum = add<Width>(sum, x + t * Width);
  for (int k = 1; k < kIlp; ++k) sum = add<Width>(sum, acc[0][k].data());
  return sum;
}

float torch_sum_f32(std::span<const float> x) {
  const int64_t n = static_cast<int64_t>(x.size());
  if (n < kLanes) return row_sum<1>(x.data(), n)[0];
  const int64_t n_vec = n / kLanes;
  const Acc<kLanes> lanes = row_sum<kLanes>(x.data(), n_vec);
  float total = 0.0f;
  for (int64_t k = n_vec * kLanes; k < n; ++k) total += x[static_cast<size_t>(k)];
  for (float lane : lanes) total += lane;
  return total;
}

// torch's mean: the f32 sum divided by the count in f32.
float mean_f32(std::span<const float> x) { return torch_sum_f32(x) / static_cast<float>(x.size()); }

}  // namespace

const std::array<float, kDynamicMapSize>& dynamic_map(DynamicMap kind) {
  static const std::array<float, kDynamicMapSize> kSigned = make_dynamic_map(true);
  static const std::array<float, kDynamicMapSize> kUnsigned = make_dynamic_map(false);
  return kind == DynamicMap::Signed ? kSigned : kUnsigned;
}

void blockwise8_quantize(std::span<const float> x, std::span<const float, kDynamicMapSize> code, int64_t blocksize,
                         std::span<uint8_t> q, std::span<float> absmax) {
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t n_blocks = (n + blocksize - 1) / blocksize;
  KTO_ASSERT(blocksize > 0 && q.size() == x.size() && static_cast<int64_t>(absmax.size()) == n_blocks);
  const Lut& lut = lut_for(code);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(x[static_cast<size_t>(i)]));
    absmax[static_cast<size_t>(b)] = amax;
    if (amax == 0.0f) {
      std::fill(q.begin() + begin, q.begin() + end, uint8_t{0});
      continue;
    }
    const float inv = 1.0f / amax;
    for (int64_t i = begin; i < end; ++i) q[static_cast<size_t>(i)] = lut[lut_index(x[static_cast<size_t>(i)] * inv)];
  }
}

void blockwise8_dequantize(std::span<const uint8_t> q, std::span<const float, kDynamicMapSize> code, int64_t blocksize,
                           std::span<const float> absmax, std::span<float> out) {
  KTO_ASSERT(blocksize > 0 && q.size() == out.size() &&
             static_cast<int64_t>(absmax.size()) == (static_cast<int64_t>(q.size()) + blocksize - 1) / blocksize);
  for (size_t i = 0; i < q.size(); ++i) out[i] = code[q[i]] * absmax[i / static_cast<size_t>(blocksize)];
}

Nf4View Nf4Tensor::view() const {
  auto opt = [](const HostTensor& t) { return t.empty() ? Tensor{} : t.view(); };
  return {opt(packed), opt(absmax), opt(nested_absmax), opt(nested_code), opt(code), nested_offset, rows, cols,
          blocksize, nested_blocksize, dtype};
}

int64_t Nf4Tensor::nbytes() const {
  int64_t total = 0;
  for (const HostTensor* t : {&packed, &absmax, &nested_absmax, &nested_code, &code}) {
    if (!t->empty()) total += static_cast<int64_t>(t->view().nbytes());
  }
  return total;
}

Nf4Tensor nf4_quantize(const float* w, int64_t rows, int64_t cols, const Nf4QuantizeOptions& options) {
  const int64_t bs = options.blocksize;
  if (bs < 32 || bs > 4096 || (bs & (bs - 1)) != 0) {
    fail(ErrorKind::InvalidArgument, "NF4 blocksize ", bs, " is not one of bitsandbytes' 32, 64, …, 4096");
  }
  Nf4Tensor out;
  out.rows = rows, out.cols = cols, out.blocksize = bs, out.dtype = options.dtype;
  const int64_t n = rows * cols, n_blocks = (n + bs - 1) / bs;
  out.code = HostTensor(DType::F32, Shape{16});
  std::copy(kNf4Code.begin(), kNf4Code.end(), out.code.f32());
  std::array<float, 15> bounds{};
  for (size_t i = 0; i < bounds.size(); ++i) bounds[i] = (kNf4Code[i] + kNf4Code[i + 1]) / 2.0f;

  std::vector<float> absmax(static_cast<size_t>(n_blocks));
  out.packed = HostTensor(DType::U8, Shape{(n + 1) / 2});
  uint8_t* packed = out.packed.view().as<uint8_t>();
  std::fill(packed, packed + (n + 1) / 2, uint8_t{0x07});  // an odd numel's last low nibble: code 7 (0.0)
  // Blocks are independent and, the blocksize being even, never share a byte: in parallel.
#pragma omp parallel for schedule(static) if (n_blocks > 4096)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t begin = b * bs, end = std::min(n, begin + bs);
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(w[i]));
    absmax[static_cast<size_t>(b)] = amax;
    const float safe = std::max(amax, 1e-38f);
    const bool partial = end - begin < bs;
    const float inv = 1.0f / safe;
    for (int64_t i = begin; i < end; ++i) {
      const float s = std::clamp(partial ? w[i] / safe : w[i] * inv, -1.0f, 1.0f);
      const auto q = static_cast<uint8_t>(std::lower_bound(bounds.begin(), bounds.end(), s) - bounds.begin());
      uint8_t& byte = packed[i / 2];
      byte = (i % 2 == 0) ? static_cast<uint8_t>((byte & 0x0f) | (q << 4)) : static_cast<uint8_t>((byte & 0xf0) | q);
    }
  }
  if (!options.double_quant) {
    out.absmax = HostTensor(DType::F32, Shape{n_blocks});
    std::copy(absmax.begin(), absmax.end(), out.absmax.f32());
    return out;
  }
  // Double quantisation: absmax - mean(absmax) in 8-bit blocks of 256 with the signed dynamic map.
  const float offset = mean_f32(absmax);
  for (float& a : absmax) a -= offset;
  const int64_t n_nested = (n_blocks + kNf4NestedBlockSize - 1) / kNf4NestedBlockSize;
  out.absmax = HostTensor(DType::U8, Shape{n_blocks});
  out.nested_absmax = HostTensor(DType::F32, Shape{n_nested});
  out.nested_code = HostTensor(DType::F32, Shape{kDynamicMapSize});
  const auto& map = dynamic_map(DynamicMap::Signed);
  std::copy(map.begin(), map.end(), out.nested_code.f32());
  blockwise8_quantize(absmax, map, kNf4NestedBlockSize,
                      std::span<uint8_t>(out.absmax.view().as<uint8_t>(), static_cast<size_t>(n_blocks)),
                      std::span<float>(out.nested_absmax.f32(), static_cast<size_t>(n_nested)));
  out.nested_offset = offset;
  return out;
}

float nf4_block_absmax(const Nf4View& w, int64_t block) {
  if (!w.nested()) return w.absmax.as<const float>()[block];
  const uint8_t q = w.absmax.as<const uint8_t>()[block];
  return w.nested_code.as<const float>()[q] * w.nested_absmax.as<const float>()[block / w.nested_blocksize] +
         w.nested_offset;
}

void nf4_dequantize(const Nf4View& w, int64_t first, int64_t count, float* out) {
  KTO_ASSERT(w.present() && w.packed.device == Device::Cpu, "nf4_dequantize needs a host NF4 weight");
  KTO_ASSERT(first >= 0 && count >= 0 && first + count <= w.numel(), "nf4_dequantize: elements [", first, ", ",
             first + count, ") outside a weight of ", w.numel());
  const uint8_t* packed = w.packed.as<const uint8_t>();
  const float* code = w.code.as<const float>();
  int64_t e = first;
  while (e < first + count) {
    const int64_t block = e / w.blocksize;
    const int64_t end = std::min(first + count, (block + 1) * w.blocksize);
    const float scale = nf4_block_absmax(w, block);
    for (; e < end; ++e) {
      const uint8_t byte = packed[e / 2];
      const uint8_t q = (e % 2 == 0) ? static_cast<uint8_t>(byte >> 4) : static_cast<uint8_t>(byte & 0x0f);
      out[e - first] = round_to(w.dtype, code[q] * scale);
    }
  }
}

}  // namespace kto
