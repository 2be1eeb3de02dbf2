// AdamW exactly as torch.optim.AdamW (single-tensor path, amsgrad off): decoupled weight decay
// p ← p·(1 − lr·wd), moments m, v with bias correction, fp32 master weights and states.
#pragma once

#include <cstdint>
#include <span>

namespace kto {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

// One parameter tensor's optimizer state (fp32, same length as the parameter).
struct AdamWState {
  std::span<float> exp_avg;     // m
  std::span<float> exp_avg_sq;  // v
};

// Applies step number `step` (1-based, as torch's state["step"] after incrementing) with rate lr.
void adamw_step(const AdamWConfig& config, double lr, int64_t step, std::span<float> param,
                std::span<const float> grad, AdamWState state);

}  // namespace kto
