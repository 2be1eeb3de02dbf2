// Helpers of the parity suite; see cuda_test_util.h.
#include "cuda_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

namespace kto::test {
namespace {

constexpr size_t kGuard = 256;
constexpr uint8_t kGuardByte = 0xA5;

size_t payload_bytes(DType dtype, const Shape& shape) {
  return (static_cast<size_t>(shape.numel()) * dtype_bits(dtype) + 7) / 8;
}

}  // namespace

bool gpu_available() {
  static const bool available = cuda_device_count() > 0;
  return available;
}

// Never destroyed: cuBLAS handles must not be released after the CUDA runtime's own teardown
// at process exit.
CudaContext& gpu() {
  static CudaContext* ctx = new CudaContext(0);
  return *ctx;
}

std::vector<float> random_bf16(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> out(static_cast<size_t>(n));
  for (float& v : out) v = bf16_to_f32(f32_to_bf16(dist(rng)));
  return out;
}

std::vector<int32_t> random_ints(int64_t n, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi - 1);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& v : out) v = dist(rng);
  return out;
}

DeviceTensor::DeviceTensor(DType dtype, Shape shape) {
  const size_t bytes = payload_bytes(dtype, shape);
  buffer_ = DeviceBuffer(gpu(), "test tensor " + shape.str(), bytes + 2 * kGuard);
  std::vector<uint8_t> init(bytes + 2 * kGuard, kGuardByte);
  std::memset(init.data() + kGuard, 0xFF, bytes);
  const Tensor whole = buffer_.view(DType::U8, Shape{static_cast<int64_t>(init.size())});
  cuda_copy_to_device(gpu(), whole, init.data());
  view_ = buffer_.view(dtype, shape, kGuard);
}

DeviceTensor::DeviceTensor(DType dtype, Shape shape, const std::vector<float>& values) : DeviceTensor(dtype, shape) {
  upload(values);
}

DeviceTensor DeviceTensor::i32(const std::vector<int32_t>& values) {
  DeviceTensor t(DType::I32, Shape{static_cast<int64_t>(values.size())});
  cuda_copy_to_device(gpu(), t.view_, values.data());
  return t;
}

void DeviceTensor::upload(const std::vector<float>& values) {
  const auto n = static_cast<size_t>(view_.numel());
  EXPECT_EQ(values.size(), n);
  if (view_.dtype == DType::F32) return cuda_copy_to_device(gpu(), view_, values.data());
  EXPECT_EQ(view_.dtype, DType::BF16);
  std::vector<uint16_t> bits(n);
  for (size_t i = 0; i < n; ++i) bits[i] = f32_to_bf16(values[i]);
  cuda_copy_to_device(gpu(), view_, bits.data());
}

std::vector<float> DeviceTensor::download() const {
  const auto n = static_cast<size_t>(view_.numel());
  std::vector<float> out(n);
  if (view_.dtype == DType::F32) {
    cuda_copy_to_host(gpu(), out.data(), view_);
  } else {
    std::vector<uint16_t> bits(n);
    cuda_copy_to_host(gpu(), bits.data(), view_);
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(bits[i]);
  }
  return out;
}

void DeviceTensor::expect_guards(const std::string& name) const {
  std::vector<uint8_t> all(buffer_.bytes());
  cuda_copy_to_host(gpu(), all.data(), buffer_.view(DType::U8, Shape{static_cast<int64_t>(all.size())}));
  const size_t end = kGuard + view_.nbytes();
  for (size_t i = 0; i < all.size(); ++i) {
    if ((i < kGuard || i >= end) && all[i] != kGuardByte) {
      ADD_FAILURE() << name << ": guard byte " << (i < kGuard ? static_cast<long>(i) - static_cast<long>(kGuard)
                                                               : static_cast<long>(i - end))
                    << (i < kGuard ? " before" : " after") << " the payload was overwritten";
      return;
    }
  }
}

Tolerance tolerance_for(DType output) {
  switch (output) {
    case DType::BF16:
      return {1e-2, 2e-3};  // bf16 keeps 8 significant bits: one rounding is <= 2^-9 relative
    case DType::F32:
      return {1e-4, 1e-5};  // fp32 results of bf16 inputs: summation order only
    default:
      return {0.0, 0.0};    // integers, copies
  }
}

Tolerance scaled(Tolerance t, double factor) { return {t.rel * factor, t.abs * factor}; }

void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, Tolerance tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double max_want = 0.0;
  for (float w : want) max_want = std::max(max_want, static_cast<double>(std::abs(w)));
  size_t worst = 0, failures = 0;
  double worst_ratio = -1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    const double allowed = tol.abs * max_want + tol.rel * std::abs(static_cast<double>(want[i]));
    const double ratio = std::isnan(err) ? INFINITY : (allowed > 0 ? err / allowed : (err > 0 ? INFINITY : 0.0));
    if (ratio > 1.0) ++failures;
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  std::printf("  %-40s n=%-9zu worst err/allowed %.3g at %zu (got %.7g want %.7g)\n", what.c_str(), got.size(),
              worst_ratio, worst, got.empty() ? 0.0 : got[worst], want.empty() ? 0.0 : want[worst]);
  EXPECT_EQ(failures, 0u) << what << ": " << failures << " of " << got.size() << " elements outside tolerance (rel "
                          << tol.rel << ", abs " << tol.abs << " x max|want| " << max_want << "); worst element " << worst
                          << ": got " << got[worst] << ", want " << want[worst];
}

Tensor host_view(std::vector<float>& v, Shape shape) {
  EXPECT_EQ(static_cast<int64_t>(v.size()), shape.numel());
  return Tensor{v.data(), DType::F32, shape, Device::Cpu};
}

Tensor host_view(std::vector<int32_t>& v) {
  return Tensor{v.data(), DType::I32, Shape{static_cast<int64_t>(v.size())}, Device::Cpu};
}

}  // namespace kto::test
