// safetensors dtype table, in the order of Rust `enum Dtype` (huggingface/safetensors tensor.rs,
// crate 0.8): the writer's layout order depends on it, so do not reorder.
#include "formats/safetensors_dtype.h"

#include <array>

#include "formats/safetensors.h"
#include "util/error.h"

namespace kto {

namespace {
constexpr std::array<SafetensorsDtypeInfo, 22> kDtypes = {{
    {"BOOL", 8, 0},         {"F4", 4, 1},           {"F6_E2M3", 6, 2},      {"F6_E3M2", 6, 3},
    {"U8", 8, 4},           {"I8", 8, 5},           {"F8_E5M2", 8, 6},      {"F8_E4M3", 8, 7},
    {"F8_E8M0", 8, 8},      {"F8_E4M3FNUZ", 8, 9},  {"F8_E5M2FNUZ", 8, 10}, {"I16", 16, 11},
    {"U16", 16, 12},        {"F16", 16, 13},        {"BF16", 16, 14},       {"I32", 32, 15},
    {"U32", 32, 16},        {"F32", 32, 17},        {"C64", 64, 18},        {"F64", 64, 19},
    {"I64", 64, 20},        {"U64", 64, 21},
}};
}  // namespace

const SafetensorsDtypeInfo* safetensors_dtype_info(std::string_view name) {
  for (const auto& d : kDtypes) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

const char* safetensors_dtype_list() {
  return "BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, "
         "I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64";
}

std::optional<DType> safetensors_dtype_to_kto(std::string_view dtype) {
  if (dtype == "F32") return DType::F32;
  if (dtype == "BF16") return DType::BF16;
  if (dtype == "F16") return DType::F16;
  if (dtype == "I32") return DType::I32;
  if (dtype == "I64") return DType::I64;
  if (dtype == "U8") return DType::U8;
  return std::nullopt;
}

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::NF4: break;
  }
  fail(ErrorKind::Unsupported, "dtype ", dtype_name(dtype),
       " has no safetensors equivalent; bitsandbytes stores NF4 data as U8 (spec/formats.md §4.4)");
}

}  // namespace kto
