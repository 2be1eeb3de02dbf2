// Element types and their conversions. bf16 and f16 are stored as raw uint16_t bit patterns;
// conversions round to nearest even as PyTorch does (`tensor.to(torch.bfloat16)`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace kto {

enum class DType : uint8_t { F32, BF16, F16, NF4, I32, I64, U8 };

size_t dtype_bits(DType dtype);  // 4 for NF4
const char* dtype_name(DType dtype);  // "f32", "bf16", …

inline float bf16_to_f32(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float f);

}  // namespace kto
