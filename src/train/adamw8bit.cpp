// bitsandbytes AdamW8bit on the CPU, element by element in f32 with torch's operation order
// (mul_, add_(alpha) as one fused multiply-add, addcmul_, sqrt, div, addcdiv_); bias
// corrections in double as Python computes them.
#include "train/adamw8bit.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "formats/safetensors.h"
#include "tensor/nf4.h"
#include "util/error.h"

namespace kto {
namespace {

struct Scalars {
  float b1, b2, one_minus_b1, one_minus_b2, eps, decay;
  double eps_d, c1, c2;  // eps as given; 1 - beta1^t, sqrt(1 - beta2^t)
  bool decayed;
};

Scalars scalars(const AdamWConfig& c, double lr, int64_t step) {
  Scalars s{};
  s.b1 = static_cast<float>(c.beta1), s.b2 = static_cast<float>(c.beta2);
  s.one_minus_b1 = static_cast<float>(1.0 - c.beta1), s.one_minus_b2 = static_cast<float>(1.0 - c.beta2);
  s.eps = static_cast<float>(c.eps), s.eps_d = c.eps;
  s.decay = static_cast<float>(1.0 - lr * c.weight_decay);
  s.decayed = c.weight_decay > 0.0;
  s.c1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
  s.c2 = std::sqrt(1.0 - std::pow(c.beta2, static_cast<double>(step)));
  return s;
}

// torch: exp_avg.mul_(b1).add_(g, alpha=1-b1) and exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2);
// torch's vectorised kernels fuse the last multiply-add of each (checked against bnb's output).
inline void update_moments(const Scalars& s, float g, float& m, float& v) {
  m = std::fma(g, s.one_minus_b1, m * s.b1);
  v = std::fma(s.one_minus_b2 * g, g, v * s.b2);
}

// bnb _optimizer_update_32bit_cpu ("adam"): update = m / (sqrt(v) + eps·c2), p += step_size · update.
void step_32bit(const Scalars& s, double lr, std::span<float> param, std::span<const float> grad, float* m, float* v) {
  const float step_size = static_cast<float>(-lr * s.c2 / s.c1);
  const float eps_c2 = static_cast<float>(s.eps_d * s.c2);
  for (size_t i = 0; i < param.size(); ++i) {
    update_moments(s, grad[i], m[i], v[i]);
    float p = s.decayed ? param[i] * s.decay : param[i];
    const float update = m[i] / (std::sqrt(v[i]) + eps_c2);
    param[i] = std::fma(step_size, update, p);
  }
}

// bnb _optimizer_update_8bit_blockwise_cpu ("adam"): dequantise, update, requantise.
void step_8bit(const Scalars& s, double lr, std::span<float> param, std::span<const float> grad, AdamW8bitState& st) {
  const size_t n = param.size();
  const auto& map1 = dynamic_map(DynamicMap::Signed);
  const auto& map2 = dynamic_map(DynamicMap::Unsigned);
  const size_t n_blocks = static_cast<size_t>(st.absmax1.numel());
  std::span<uint8_t> q1(st.state1.view().as<uint8_t>(), n), q2(st.state2.view().as<uint8_t>(), n);
  std::span<float> a1(st.absmax1.f32(), n_blocks), a2(st.absmax2.f32(), n_blocks);
  std::vector<float> m(n), v(n);
  blockwise8_dequantize(q1, map1, kAdam8bitBlockSize, a1, m);
  blockwise8_dequantize(q2, map2, kAdam8bitBlockSize, a2, v);
  const float c2 = static_cast<float>(s.c2);
  const float step_size = static_cast<float>(-lr / s.c1);
  for (size_t i = 0; i < n; ++i) {
    update_moments(s, grad[i], m[i], v[i]);
    const float denom = std::sqrt(v[i]) / c2 + s.eps;
    const float p = s.decayed ? param[i] * s.decay : param[i];
    param[i] = p + step_size * m[i] / denom;  // torch addcdiv_: self + value · t1 / t2
  }
  blockwise8_quantize(m, map1, kAdam8bitBlockSize, q1, a1);
  blockwise8_quantize(v, map2, kAdam8bitBlockSize, q2, a2);
}

}  // namespace

AdamW8bitState adamw8bit_state_new(int64_t numel) {
  AdamW8bitState s;
  if (numel < kAdam8bitMinSize) {
    s.exp_avg = HostTensor(DType::F32, Shape{numel});
    s.exp_avg_sq = HostTensor(DType::F32, Shape{numel});
    return s;
  }
  const int64_t n_blocks = (numel + kAdam8bitBlockSize - 1) / kAdam8bitBlockSize;
  s.state1 = HostTensor(DType::U8, Shape{numel});
  s.state2 = HostTensor(DType::U8, Shape{numel});
  s.absmax1 = HostTensor(DType::F32, Shape{n_blocks});
  s.absmax2 = HostTensor(DType::F32, Shape{n_blocks});
  return s;
}

void adamw8bit_step(const AdamWConfig& config, double lr, int64_t step, std::span<float> param,
                    std::span<const float> grad, AdamW8bitState& state) {
  KTO_ASSERT(param.size() == grad.size() && step >= 1);
  const Scalars s = scalars(config, lr, step);
  if (!state.eight_bit()) {
    KTO_ASSERT(static_cast<size_t>(state.exp_avg.numel()) == param.size(), "adamw8bit: state for another parameter");
    return step_32bit(s, lr, param, grad, state.exp_avg.f32(), state.exp_avg_sq.f32());
  }
  KTO_ASSERT(static_cast<size_t>(state.state1.numel()) == param.size(), "adamw8bit: state for another parameter");
  step_8bit(s, lr, param, grad, state);
}

namespace {

// (file prefix, tensor) pairs of one parameter's state, in file order.
std::vector<std::pair<std::string, const HostTensor*>> state_tensors(const AdamW8bitState& s) {
  if (!s.eight_bit()) return {{"exp_avg.", &s.exp_avg}, {"exp_avg_sq.", &s.exp_avg_sq}};
  return {{"state1.", &s.state1}, {"absmax1.", &s.absmax1}, {"state2.", &s.state2}, {"absmax2.", &s.absmax2}};
}

}  // namespace

void adamw8bit_save(const std::string& path, const std::vector<NamedTensor>& params,
                    const std::vector<AdamW8bitState>& states) {
  KTO_ASSERT(params.size() == states.size());
  std::vector<SafetensorsWriteTensor> tensors;
  for (size_t i = 0; i < params.size(); ++i) {
    for (const auto& [prefix, t] : state_tensors(states[i])) {
      tensors.push_back({prefix + params[i].name, t->dtype() == DType::U8 ? "U8" : "F32", {t->numel()}, t->view().data,
                         t->view().nbytes()});
    }
  }
  safetensors_write(path, std::move(tensors), {{"format", "pt"}, {"optim", "adamw_8bit"}});
}

void adamw8bit_load(const std::string& path, const std::vector<NamedTensor>& params,
                    std::vector<AdamW8bitState>& states) {
  KTO_ASSERT(params.size() == states.size());
  const SafetensorsFile file = SafetensorsFile::open(path);
  for (size_t i = 0; i < params.size(); ++i) {
    for (const auto& [prefix, t] : state_tensors(states[i])) {
      const std::string name = prefix + params[i].name;
      const SafetensorsTensor* st = file.find(name);
      const char* want = t->dtype() == DType::U8 ? "U8" : "F32";
      if (!st || st->dtype != want || st->nbytes != t->view().nbytes()) {
        fail(ErrorKind::Format, path, ": ", st ? "tensor " + name + " has the wrong dtype or size" : "missing tensor " + name,
             "; the checkpoint was saved with another optim (or another adapter) than optim: adamw_8bit; resume "
             "with the optim it was trained with");
      }
      std::memcpy(t->view().data, st->data, st->nbytes);
    }
  }
}

}  // namespace kto
