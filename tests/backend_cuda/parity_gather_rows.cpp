// gather_rows: the CUDA row gather against a host loop over the same index (an exact copy), for
// widths that take the 16-byte path (64, 1024) and the 2-byte path (6, 13), one and two sources.
#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

using test::DeviceTensor;

TEST(ParityGatherRows, CopiesTheIndexedRowsOfBothSources) {
  KTO_REQUIRE_GPU();
  for (int64_t width : {6, 13, 64, 1024}) {
    for (bool two_sources : {false, true}) {
      const int64_t na = 37, nb = two_sources ? 11 : 0, n = 50;
      const std::vector<float> a = test::random_bf16(na * width, 1), b = test::random_bf16(std::max<int64_t>(nb, 1) * width, 2);
      const std::vector<int32_t> picks = test::random_ints(n, 3, two_sources ? -static_cast<int32_t>(nb) : 0,
                                                           static_cast<int32_t>(na));
      std::vector<float> want(static_cast<size_t>(n * width));
      for (int64_t r = 0; r < n; ++r) {
        const int32_t i = picks[static_cast<size_t>(r)];
        const float* src = i >= 0 ? &a[static_cast<size_t>(i * width)] : &b[static_cast<size_t>((-1 - i) * width)];
        std::copy(src, src + width, want.begin() + r * width);
      }
      DeviceTensor ga(DType::BF16, Shape{na, width}, a), gb(DType::BF16, Shape{std::max<int64_t>(nb, 1), width}, b);
      DeviceTensor index = DeviceTensor::i32(picks), out(DType::BF16, Shape{n, width});
      gather_rows_cuda({ga.view(), two_sources ? gb.view() : Tensor{}, index.view(), out.view()}, test::gpu());
      EXPECT_EQ(out.download(), want) << "width " << width << (two_sources ? ", two sources" : ", one source");
      out.expect_guards("gather_rows out");
    }
  }
}

}  // namespace
}  // namespace kto
