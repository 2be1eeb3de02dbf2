// Gated MLP activation silu(gate) * up and its backward; mirrors HF LlamaMLP.forward's
// act_fn(gate) * up with act_fn = nn.SiLU (hidden_act "silu") and torch's silu_backward.
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

// Element-wise; every input of index i is read before any output of index i is written, so
// the documented aliases are safe.
void swiglu_backward_cpu(const SwigluBackwardArgs& args) {
  const int64_t rows = args.gate.shape[0];
  const int64_t width = args.gate.shape[1];
  cpu::check_tensor(args.gate, "swiglu_backward gate", DType::F32, {rows, width});
  cpu::check_tensor(args.up, "swiglu_backward up", DType::F32, {rows, width});
  cpu::check_tensor(args.d_out, "swiglu_backward d_out", DType::F32, {rows, width});
  cpu::check_tensor(args.d_gate, "swiglu_backward d_gate", DType::F32, {rows, width});
  cpu::check_tensor(args.d_up, "swiglu_backward d_up", DType::F32, {rows, width});
  const float* gate = args.gate.f32();
  const float* up = args.up.f32();
  const float* d_out = args.d_out.f32();
  float* d_gate = args.d_gate.f32();
  float* d_up = args.d_up.f32();
  const int64_t n = rows * width;
#pragma omp parallel for schedule(static) if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], u = up[i], d = d_out[i];
    const float s = 1.0f / (1.0f + std::exp(-g));
    d_gate[i] = d * u * s * (1.0f + g * (1.0f - s));
    d_up[i] = d * g * s;
  }
}

}  // namespace kto
