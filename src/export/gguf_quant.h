// Encoding f32 rows into ggml tensor types: f32, f16, bf16 (round to nearest even, as numpy and
// ggml convert), q8_0, q5_0, q5_1 and the k-quants q4_K, q5_K, q6_K, bit-identical to llama.cpp's
// reference quantizers (ggml-quants.c quantize_row_*_ref, i.e. what `llama-quantize` produces
// without an importance matrix). Block layouts: spec/formats.md §5.7.
#pragma once

#include <cstdint>
#include <vector>

#include "export/gguf_writer.h"

namespace kto {

// Appends ggml_row_bytes(type, n_cols) · n_rows bytes encoding `src` [n_rows, n_cols] f32 to
// `out`. n_cols must be a multiple of the type's block (KTO_ASSERT). Thread-safe (no state).
void gguf_quantize(GgmlType type, const float* src, int64_t n_rows, int64_t n_cols, std::vector<uint8_t>& out);

}  // namespace kto
