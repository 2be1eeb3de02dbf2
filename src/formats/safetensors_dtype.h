// The safetensors dtype table (Rust `enum Dtype` in huggingface/safetensors `tensor.rs`): name,
// bits per element and rank in declaration order, which the writer sorts by (spec/formats.md §1.3).
// Internal to formats/.
#pragma once

#include <string_view>

namespace kto {

struct SafetensorsDtypeInfo {
  std::string_view name;  // "F32", "BF16", …
  unsigned bits;          // 4 for F4, 6 for F6_*, else a multiple of 8
  int rank;               // position in the Rust enum ("increasing alignment order")
};

// nullptr for an unknown dtype string.
const SafetensorsDtypeInfo* safetensors_dtype_info(std::string_view name);
// "BOOL, F4, …" for messages.
const char* safetensors_dtype_list();

}  // namespace kto
