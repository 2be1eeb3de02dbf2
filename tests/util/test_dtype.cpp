// dtype conversions against values PyTorch produces (torch.tensor(x).to(bfloat16/float16)).
#include <gtest/gtest.h>

#include <cmath>

#include "tensor/dtype.h"

namespace kto {
namespace {

TEST(DType, Bf16RoundsToNearestEvenLikeTorch) {
  // torch.tensor([1.0, 3.14159265, 1.00390625, 1.01171875, -2.5e-3]).to(torch.bfloat16).view(torch.int16)
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(3.14159265f), 0x4049);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // exactly half-way: ties to even (down)
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // half-way: ties to even (up)
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
}

TEST(DType, F16RoundTripsAndHandlesSpecials) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(70000.0f), 0x7c00);          // overflow → inf
  EXPECT_EQ(f32_to_f16(5.9604645e-08f), 0x0001);    // smallest subnormal
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // every finite positive half survives f16 → f32 → f16
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << h;
  }
}

}  // namespace
}  // namespace kto
