// torch.optim.adamw._single_tensor_adamw, element by element in fp32 with the same operation
// order (bias corrections and step size computed in double on the host, as torch does with
// Python floats for non-capturable steps).
#include "train/adamw.h"

#include <cmath>

#include "util/error.h"

namespace kto {

void adamw_step(const AdamWConfig& c, double lr, int64_t step, std::span<float> param, std::span<const float> grad,
                AdamWState state) {
  KTO_ASSERT(param.size() == grad.size() && param.size() == state.exp_avg.size() && param.size() == state.exp_avg_sq.size());
  KTO_ASSERT(step >= 1);
  const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(c.beta2, static_cast<double>(step));
  const float step_size = static_cast<float>(lr / bias1);
  const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  const float decay = static_cast<float>(1.0 - lr * c.weight_decay);
  const float b1 = static_cast<float>(c.beta1), b2 = static_cast<float>(c.beta2), eps = static_cast<float>(c.eps);
  for (size_t i = 0; i < param.size(); ++i) {
    float p = param[i] * decay;
    float g = grad[i];
    float m = state.exp_avg[i] + (g - state.exp_avg[i]) * (1.0f - b1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
    float v = state.exp_avg_sq[i] * b2 + (1.0f - b2) * g * g;
    float denom = std::sqrt(v) / bias2_sqrt + eps;
    param[i] = p - step_size * (m / denom);
    state.exp_avg[i] = m;
    state.exp_avg_sq[i] = v;
  }
}

}  // namespace kto
