// 8-bit AdamW as bitsandbytes' AdamW8bit (Optimizer2State "adam", optim_bits 8) runs it on the
// CPU (bitsandbytes/backends/cpu/ops.py _optimizer_update_8bit_blockwise_cpu): both moments
// stored as 8-bit codes in blocks of 256 with one f32 absmax per block — the first moment with
// the signed dynamic map, the second with the unsigned one (tensor/nf4.h blockwise8_*) — and
// dequantised, updated in f32 and requantised every step. Parameters with fewer than 4096
// elements (min_8bit_size) keep f32 moments and take bnb's 32-bit update
// (_optimizer_update_32bit_cpu), as bitsandbytes does. Weight decay is decoupled and applied
// before the update on both paths (bnb's CPU order).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/weights.h"
#include "tensor/tensor.h"
#include "train/adamw.h"

namespace kto {

constexpr int64_t kAdam8bitBlockSize = 256;
constexpr int64_t kAdam8bitMinSize = 4096;  // bnb min_8bit_size

// One parameter's optimizer state. 8-bit: state1/state2 u8 [n] and absmax1/absmax2 f32
// [ceil(n/256)]; otherwise exp_avg/exp_avg_sq f32 [n]. The unused pair is empty.
struct AdamW8bitState {
  HostTensor state1, state2;       // [n] u8: codes of m (signed map) and v (unsigned map)
  HostTensor absmax1, absmax2;     // [ceil(n/256)] f32
  HostTensor exp_avg, exp_avg_sq;  // [n] f32 (parameters under min_8bit_size)

  bool eight_bit() const { return !state1.empty(); }
};

// Zero state (codes 0 with absmax 0 dequantise to 0) for a parameter of `numel` elements.
AdamW8bitState adamw8bit_state_new(int64_t numel);

// Applies step `step` (1-based) with rate lr to `param`, as AdamW8bit.step() does.
void adamw8bit_step(const AdamWConfig& config, double lr, int64_t step, std::span<float> param,
                    std::span<const float> grad, AdamW8bitState& state);

// The states as a checkpoint's optimizer.safetensors, named after bnb's state dict: for an 8-bit
// parameter "state1.<name>" / "state2.<name>" (U8) and "absmax1.<name>" / "absmax2.<name>" (F32),
// for a small one "exp_avg.<name>" / "exp_avg_sq.<name>" (F32); metadata {"optim": "adamw_8bit"}.
// Bytes are stored as they are, so a resumed run continues bit-exactly.
void adamw8bit_save(const std::string& path, const std::vector<NamedTensor>& params,
                    const std::vector<AdamW8bitState>& states);
// Restores states saved by adamw8bit_save for the same parameters. Throws Error(Format) naming
// the file and tensor when one is missing or has another size (e.g. a checkpoint of adamw_torch).
void adamw8bit_load(const std::string& path, const std::vector<NamedTensor>& params,
                    std::vector<AdamW8bitState>& states);

}  // namespace kto
