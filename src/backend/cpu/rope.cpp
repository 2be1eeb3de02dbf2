// Rotate-half rotary position embedding; mirrors HF LlamaRotaryEmbedding.forward (cos/sin of
// position * inv_freq in fp32) followed by apply_rotary_pos_emb (q * cos + rotate_half(q) * sin).
// The backward is the transposed rotation (the autograd of apply_rotary_pos_emb).
#include <cmath>
#include <vector>

#include "backend/cpu/check.h"
#include "backend/ops.h"

namespace kto {

namespace {

enum class Direction { Forward, Inverse };

// One token per iteration; all heads of a token share the angles. The angle is formed in fp32
// as HF does (inv_freq[f32] * position[f32]) so large positions round the same way. The inverse
// rotation negates sin, which is exactly the transpose of the forward's 2×2 rotation.
void rope_apply(const RopeArgs& args, Direction direction) {
  const int64_t n_tokens = args.x.shape[0];
  const int64_t head_dim = args.head_dim;
  const int64_t half = head_dim / 2;
  KTO_ASSERT(head_dim > 0 && head_dim % 2 == 0, "rope head_dim must be even, got ", head_dim);
  cpu::check_tensor(args.x, "rope x", DType::F32, {n_tokens, args.n_heads * head_dim});
  cpu::check_tensor(args.positions, "rope positions", DType::I32, {n_tokens});
  cpu::check_tensor(args.inv_freq, "rope inv_freq", DType::F32, {half});
  const int32_t* positions = args.positions.as<int32_t>();
  const float* inv_freq = args.inv_freq.f32();
  const float sign = direction == Direction::Forward ? 1.0f : -1.0f;
  float* x = args.x.f32();
#pragma omp parallel if (n_tokens * args.n_heads * head_dim >= cpu::kParallelMinWork)
  {
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float pos = static_cast<float>(positions[t]);
      for (int64_t d = 0; d < half; ++d) {
        const float angle = inv_freq[d] * pos;
        cos_t[static_cast<size_t>(d)] = std::cos(angle);
        sin_t[static_cast<size_t>(d)] = sign * std::sin(angle);
      }
      for (int64_t h = 0; h < args.n_heads; ++h) {
        float* xh = x + (t * args.n_heads + h) * head_dim;
        for (int64_t d = 0; d < half; ++d) {
          const float a = xh[d], b = xh[d + half];
          const float c = cos_t[static_cast<size_t>(d)], s = sin_t[static_cast<size_t>(d)];
          xh[d] = a * c - b * s;
          xh[d + half] = b * c + a * s;
        }
      }
    }
  }
}

}  // namespace

void rope_forward_cpu(const RopeArgs& args) { rope_apply(args, Direction::Forward); }

void rope_backward_cpu(const RopeArgs& args) { rope_apply(args, Direction::Inverse); }

}  // namespace kto
