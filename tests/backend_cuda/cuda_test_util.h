// Helpers of the CPU-vs-CUDA parity suite (the ggml test-backend-ops pattern): one process-wide
// CudaContext, device tensors with guard bytes on both sides whose payload starts poisoned with
// NaN, bf16-representable random inputs (so both backends see identical numbers), and a
// comparison against the fp32 CPU reference with a per-dtype tolerance that prints the worst element.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backend/cuda/context.h"
#include "tensor/tensor.h"

namespace kto::test {

bool gpu_available();
CudaContext& gpu();  // created on first use; only call after KTO_REQUIRE_GPU

#define KTO_REQUIRE_GPU()                                                              \
  do {                                                                                 \
    if (!::kto::test::gpu_available()) GTEST_SKIP() << "no CUDA GPU visible: skipped"; \
  } while (0)

// Uniform in [-scale, scale], rounded to bf16 (exactly representable in bf16 and f32).
std::vector<float> random_bf16(int64_t n, uint32_t seed, float scale = 1.0f);
std::vector<int32_t> random_ints(int64_t n, uint32_t seed, int32_t lo, int32_t hi);  // in [lo, hi)

// A device tensor between two 256-byte guard regions. The payload starts as NaN (all bits set:
// NaN in f32 and bf16) unless values are given; the guards hold a byte pattern checked later.
class DeviceTensor {
 public:
  DeviceTensor(DType dtype, Shape shape);
  DeviceTensor(DType dtype, Shape shape, const std::vector<float>& values);
  static DeviceTensor i32(const std::vector<int32_t>& values);

  Tensor view() const { return view_; }
  void upload(const std::vector<float>& values);
  std::vector<float> download() const;
  // Fails the test when a kernel wrote outside the payload.
  void expect_guards(const std::string& name) const;

 private:
  DeviceBuffer buffer_;
  Tensor view_;
};

// |got − want| <= abs · max|want| + rel · |want| element-wise; NaN never passes.
struct Tolerance {
  double rel;
  double abs;
};
// The table: one rounding of a bf16 output dominates bf16; f32 outputs differ by summation order.
Tolerance tolerance_for(DType output);
Tolerance scaled(Tolerance t, double factor);

void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, Tolerance tol);

// CPU reference views over host vectors.
Tensor host_view(std::vector<float>& v, Shape shape);
Tensor host_view(std::vector<int32_t>& v);

}  // namespace kto::test
