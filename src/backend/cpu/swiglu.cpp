// Gated MLP activation silu(gate) * up; mirrors HF LlamaMLP.forward's act_fn(gate) * up with
// act_fn = nn.SiLU (hidden_act "silu").
#include <cmath>

#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {

// Element-wise over [T, F]; silu(g) = g / (1 + exp(-g)) in fp32.
void swiglu_forward_cpu(const SwigluArgs& args) {
  const int64_t rows = args.gate.shape[0];
  const int64_t width = args.gate.shape[1];
  cpu::check_tensor(args.gate, "swiglu gate", DType::F32, {rows, width});
  cpu::check_tensor(args.up, "swiglu up", DType::F32, {rows, width});
  cpu::check_tensor(args.out, "swiglu out", DType::F32, {rows, width});
  const float* gate = args.gate.f32();
  const float* up = args.up.f32();
  float* out = args.out.f32();
  const int64_t n = rows * width;
#pragma omp parallel for schedule(static) if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace kto
