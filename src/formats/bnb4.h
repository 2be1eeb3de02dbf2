// Pre-quantised bitsandbytes 4-bit ("-bnb-4bit") layers in a safetensors checkpoint, as
// bitsandbytes' Linear4bit._save_to_state_dict / QuantState.as_dict(packed=True) write them and
// transformers' Bnb4BitHfQuantizer reads them back (spec/formats.md §4.4): under `<name>` (a
// projection's "….weight") the packed bytes, and `<name>.absmax`, `.quant_map`, optional
// `.nested_absmax` / `.nested_quant_map`, and `.quant_state.bitsandbytes__nf4` (a JSON object in a
// U8 tensor: quant_type, blocksize, dtype, shape, nested_blocksize, nested_dtype, nested_offset).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "formats/safetensors.h"
#include "tensor/nf4.h"

namespace kto {

// True when `weight_name` is stored as a bitsandbytes 4-bit layer (has a quant_state key, nf4 or fp4).
bool bnb4_is_quantized(const SafetensorsCheckpoint& checkpoint, std::string_view weight_name);

// Reads the 4-bit layer `weight_name` whose dense shape must be [rows, cols]. Appends every
// tensor name it consumed to `used`. Throws kto::Error: Unsupported for FP4 (and 4-bit layers
// with a nested dtype other than float32), Format for a missing or inconsistent tensor or
// quant state (naming the tensor and the checkpoint directory).
Nf4Tensor bnb4_load(const SafetensorsCheckpoint& checkpoint, const std::string& weight_name, int64_t rows,
                    int64_t cols, std::vector<std::string>& used);

}  // namespace kto
