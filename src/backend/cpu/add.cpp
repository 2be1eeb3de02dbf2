// Element-wise add for residual connections (HF `hidden_states = residual + hidden_states`).
#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {

// Element-wise over any shape; out may alias either input.
void add_forward_cpu(const AddArgs& args) {
  KTO_ASSERT(args.a.shape == args.b.shape && args.a.shape == args.out.shape, "add shapes differ: ",
             args.a.shape.str(), " ", args.b.shape.str(), " ", args.out.shape.str());
  const float* a = args.a.f32();
  const float* b = args.b.f32();
  float* out = args.out.f32();
  const int64_t n = args.a.numel();
#pragma omp parallel for schedule(static) if (n >= cpu::kParallelMinWork)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace kto
