// Helpers shared by the GGUF model and LoRA exporters (not part of the export API).
#pragma once

#include <cstdint>
#include <vector>

namespace kto {

// convert_hf_to_gguf's LlamaModel.permute: rows [n_heads, 2, half, cols] → [n_heads, half, 2, cols],
// i.e. per head new row 2i = old row i, new row 2i+1 = old row i + half (HF rotate-half → ggml's
// interleaved rope). data is [rows, cols] f32.
std::vector<float> gguf_llama_permute(const float* data, int64_t rows, int64_t cols, int64_t n_heads);

}  // namespace kto
