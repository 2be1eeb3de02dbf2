// NF4 dequantisation on the GPU against the CPU nf4_dequantize (tensor/nf4.cpp, itself checked
// against bitsandbytes in tests/formats/test_nf4_quant.cpp): weights quantised on the CPU by
// nf4_quantize, uploaded byte for byte, dequantised into bf16 and f32. Every element must have
// the CPU's bits (bf16: the CPU's f32 value rounded to nearest even). Plain and double-quantised
// absmax, quant dtypes f32 / bf16 / f16, blocksizes 32 … 4096, odd element counts, K % 64 != 0,
// misaligned views (the element-wise path), and the speed on an 8B model's largest projection.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>

#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"
#include "tensor/nf4.h"

namespace kto {
namespace {

using test::DeviceTensor;

// The device copy of an NF4 weight's buffers (each between guard regions) and its view.
struct DeviceNf4 {
  std::vector<DeviceTensor> parts;
  Nf4View view;
};

DeviceNf4 to_device(const Nf4Tensor& w) {
  DeviceNf4 d;
  d.view = w.view();
  const std::pair<const HostTensor*, Tensor*> buffers[] = {{&w.packed, &d.view.packed},
                                                           {&w.absmax, &d.view.absmax},
                                                           {&w.nested_absmax, &d.view.nested_absmax},
                                                           {&w.nested_code, &d.view.nested_code},
                                                           {&w.code, &d.view.code}};
  for (const auto& [host, view] : buffers) {
    if (host->empty()) continue;
    d.parts.emplace_back(host->dtype(), host->shape());
    cuda_copy_to_device(test::gpu(), d.parts.back().view(), host->view().data);
    *view = d.parts.back().view();
  }
  return d;
}

// Normal weights with row scales over four decades and every seventh row zero (absmax 0).
std::vector<float> weights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = r % 7 == 3 ? 0.0f : std::pow(10.0f, static_cast<float>(r % 5) - 3.0f);
    for (int64_t c = 0; c < cols; ++c) w[static_cast<size_t>(r * cols + c)] = dist(rng) * scale;
  }
  return w;
}

template <typename Bits>
std::vector<Bits> download_bits(const Tensor& t) {
  std::vector<Bits> out(static_cast<size_t>(t.numel()));
  cuda_copy_to_host(test::gpu(), out.data(), t);
  return out;
}

template <typename Bits>
void expect_same_bits(const std::string& what, const std::vector<Bits>& got, const std::vector<Bits>& want) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i] && mismatches++ == 0) first = i;
  }
  EXPECT_EQ(mismatches, 0u) << what << ": " << mismatches << " of " << got.size() << " elements differ; first at "
                            << first << ": got 0x" << std::hex << +got[first] << ", want 0x" << +want[first];
}

std::vector<uint16_t> bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

std::vector<uint32_t> f32_bits(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

// Dequantises `w` on both sides into bf16 and f32 and compares every bit.
void expect_matches_cpu(const Nf4Tensor& w, const std::string& tag) {
  const int64_t n = w.rows * w.cols;
  std::vector<float> want(static_cast<size_t>(n));
  nf4_dequantize(w.view(), 0, n, want.data());
  const DeviceNf4 d = to_device(w);
  DeviceTensor out16(DType::BF16, {w.rows, w.cols}), out32(DType::F32, {w.rows, w.cols});
  nf4_dequantize_cuda(d.view, out16.view(), test::gpu());
  nf4_dequantize_cuda(d.view, out32.view(), test::gpu());
  expect_same_bits("nf4 → bf16" + tag, download_bits<uint16_t>(out16.view()), bf16_bits(want));
  expect_same_bits("nf4 → f32" + tag, download_bits<uint32_t>(out32.view()), f32_bits(want));
  out16.expect_guards("nf4 bf16 out" + tag);
  out32.expect_guards("nf4 f32 out" + tag);
}

struct Case {
  int64_t rows, cols, blocksize;
  bool double_quant;
  DType dtype;
};

void run_cases(std::initializer_list<Case> cases) {
  uint32_t seed = 1;
  for (const Case& c : cases) {
    const std::string tag = str_cat(" [", c.rows, ", ", c.cols, "] bs=", c.blocksize, c.double_quant ? " nested" : "",
                                    " dtype=", dtype_name(c.dtype));
    SCOPED_TRACE(tag);
    const std::vector<float> w = weights(c.rows, c.cols, seed++);
    const Nf4Tensor q = nf4_quantize(w.data(), c.rows, c.cols, {c.blocksize, c.double_quant, c.dtype});
    ASSERT_EQ(q.nested(), c.double_quant);
    expect_matches_cpu(q, tag);
  }
}

TEST(ParityNf4, PlainAbsmaxMatchesCpuBitForBit) {
  KTO_REQUIRE_GPU();
  run_cases({{64, 100, 64, false, DType::F32},     // K % 64 != 0: blocks straddle rows
             {37, 129, 64, false, DType::BF16},    // odd numel: a padded last byte, a partial unit
             {1, 7, 64, false, DType::F32},        // less than one unit
             {33, 77, 32, false, DType::F16},
             {128, 4096, 4096, false, DType::BF16},
             {511, 257, 128, false, DType::F32}});
}

TEST(ParityNf4, DoubleQuantMatchesCpuBitForBit) {
  KTO_REQUIRE_GPU();
  run_cases({{37, 129, 64, true, DType::BF16},    // one nested block, odd numel
             {300, 1000, 64, true, DType::F32},   // 4688 blocks: 19 nested blocks, the last partial
             {33, 77, 32, true, DType::F16},
             {511, 257, 128, true, DType::F32},
             {1024, 1000, 64, true, DType::BF16}});
}

// Views that are not 16-byte aligned (out) or 4-byte aligned (packed) take the element-wise path;
// the element before a shifted output must stay untouched.
TEST(ParityNf4, MisalignedViewsMatchCpuBitForBit) {
  KTO_REQUIRE_GPU();
  const int64_t rows = 45, cols = 100, n = rows * cols;
  const std::vector<float> w = weights(rows, cols, 77);
  const Nf4Tensor q = nf4_quantize(w.data(), rows, cols, {64, true, DType::F32});
  std::vector<float> want(static_cast<size_t>(n));
  nf4_dequantize(q.view(), 0, n, want.data());
  DeviceNf4 d = to_device(q);
  DeviceTensor packed_buf(DType::U8, {q.packed.numel() + 1});
  d.view.packed = Tensor{packed_buf.view().as<uint8_t>() + 1, DType::U8, q.packed.shape(), Device::Cuda};
  cuda_copy_to_device(test::gpu(), d.view.packed, q.packed.view().data);
  DeviceTensor out16_buf(DType::BF16, {n + 1}), out32_buf(DType::F32, {n + 1});
  const Tensor out16{out16_buf.view().as<uint16_t>() + 1, DType::BF16, Shape{rows, cols}, Device::Cuda};
  const Tensor out32{out32_buf.view().as<float>() + 1, DType::F32, Shape{rows, cols}, Device::Cuda};
  nf4_dequantize_cuda(d.view, out16, test::gpu());
  nf4_dequantize_cuda(d.view, out32, test::gpu());
  std::vector<uint16_t> want16 = bf16_bits(want);
  std::vector<uint32_t> want32 = f32_bits(want);
  want16.insert(want16.begin(), uint16_t{0xffff});  // the poison of the skipped first element
  want32.insert(want32.begin(), uint32_t{0xffffffff});
  expect_same_bits("nf4 → bf16 (misaligned)", download_bits<uint16_t>(out16_buf.view()), want16);
  expect_same_bits("nf4 → f32 (misaligned)", download_bits<uint32_t>(out32_buf.view()), want32);
  for (const DeviceTensor* t : {&packed_buf, &out16_buf, &out32_buf}) t->expect_guards("nf4 misaligned");
}

// Llama-3-8B's gate/up projection, double-quantised with random codes: exact, and the time per
// dequantisation printed against the bytes it must move (the kernel should be near bandwidth).
TEST(ParityNf4, LargestProjectionOf8BModel) {
  KTO_REQUIRE_GPU();
  const int64_t rows = 14336, cols = 4096, n = rows * cols, n_blocks = n / kNf4BlockSize;
  const int64_t n_nested = (n_blocks + kNf4NestedBlockSize - 1) / kNf4NestedBlockSize;
  Nf4Tensor w;
  w.rows = rows, w.cols = cols, w.dtype = DType::BF16;
  w.packed = HostTensor(DType::U8, Shape{n / 2});
  w.absmax = HostTensor(DType::U8, Shape{n_blocks});
  w.nested_absmax = HostTensor(DType::F32, Shape{n_nested});
  w.nested_code = HostTensor(DType::F32, Shape{kDynamicMapSize});
  w.code = HostTensor(DType::F32, Shape{16});
  std::mt19937 rng(5);
  for (const HostTensor* t : {&w.packed, &w.absmax}) {
    auto* bytes = t->view().as<uint8_t>();
    for (int64_t i = 0; i < t->numel(); ++i) bytes[i] = static_cast<uint8_t>(rng() >> 24);
  }
  std::uniform_real_distribution<float> scale(0.005f, 0.05f);
  for (int64_t i = 0; i < n_nested; ++i) w.nested_absmax.f32()[i] = scale(rng);
  const auto& map = dynamic_map(DynamicMap::Signed);
  std::copy(map.begin(), map.end(), w.nested_code.f32());
  std::copy(kNf4Code.begin(), kNf4Code.end(), w.code.f32());
  w.nested_offset = 0.031f;
  expect_matches_cpu(w, " 8B gate_proj");

  const DeviceNf4 d = to_device(w);
  DeviceTensor out(DType::BF16, {rows, cols}), copy(DType::BF16, {rows, cols});
  constexpr int kRepeats = 20;
  auto seconds_per_call = [&](const auto& call) {
    call();
    test::gpu().synchronize("nf4 warm-up");
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < kRepeats; ++r) call();
    test::gpu().synchronize("nf4 timing");
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / kRepeats;
  };
  const double dequant = seconds_per_call([&] { nf4_dequantize_cuda(d.view, out.view(), test::gpu()); });
  const double copied = seconds_per_call([&] { cuda_copy_device(test::gpu(), copy.view(), out.view()); });
  const double bytes = static_cast<double>(n / 2 + n_blocks + 4 * n_nested + 2 * n);
  std::printf("  nf4_dequantize_cuda [%lld, %lld] -> bf16: %.1f us, %.0f GB/s moved "
              "(a copy of the bf16 output: %.1f us, %.0f GB/s)\n",
              static_cast<long long>(rows), static_cast<long long>(cols), dequant * 1e6, bytes / dequant / 1e9,
              copied * 1e6, 4.0 * static_cast<double>(n) / copied / 1e9);
}

}  // namespace
}  // namespace kto
