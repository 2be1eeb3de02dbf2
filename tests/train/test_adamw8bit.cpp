// 8-bit AdamW against bitsandbytes itself: tests/fixtures/adamw8bit/steps.safetensors holds three
// steps of bnb.optim.AdamW8bit on the CPU (tools/reference/make_adamw8bit.py, bnb 0.50.2): an
// 8-bit parameter (4500 elements, 18 blocks of 256, the last partial) and a small one that bnb
// keeps in f32 (300 < min_8bit_size). The optimizer states (8-bit codes, absmax, f32 moments) must
// agree bit for bit. The parameters agree to within 2 ulp, not bit for bit: the reference's
// torch.sqrt is MKL's vsSqrt, which is not correctly rounded (1 ulp off in ~17% of the inputs,
// checked against a correctly rounded sqrt), and the update divides by it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "tensor/nf4.h"
#include "test_util.h"
#include "train/adamw8bit.h"
#include "util/files.h"

namespace kto {
namespace {

struct Fixture {
  SafetensorsFile file = SafetensorsFile::open(test::fixture("adamw8bit/steps.safetensors"));
  nlohmann::json meta = json_read_file(test::fixture("adamw8bit/steps.json"));

  std::vector<float> f32(const std::string& name) const {
    const SafetensorsTensor* t = file.find(name);
    if (!t) throw std::runtime_error("missing fixture tensor " + name);
    std::vector<float> out(static_cast<size_t>(t->numel()));
    safetensors_to_f32(*t, out.data());
    return out;
  }
  std::vector<uint8_t> u8(const std::string& name) const {
    const SafetensorsTensor* t = file.find(name);
    if (!t) throw std::runtime_error("missing fixture tensor " + name);
    return {t->data, t->data + t->nbytes};
  }
};

// Largest |a - b| in units of 2 ulp of (|b| + lr): one rounding of p + update plus one of the
// update itself, whose size is about lr.
double max_scaled_diff(std::span<const float> a, const std::vector<float>& b, double lr) {
  double worst = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double ulp2 = std::ldexp(std::fabs(double(b[i])) + lr, -22);
    worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / ulp2);
  }
  return worst;
}

int64_t float_mismatches(std::span<const float> a, const std::vector<float>& b, double* max_diff) {
  int64_t n = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
    *max_diff = std::max(*max_diff, std::fabs(double(a[i]) - b[i]));
  }
  return n;
}

TEST(AdamW8bit, QuantMapsAreBitsandbytes) {
  const Fixture fx;
  const std::vector<float> q1 = fx.f32("qmap1"), q2 = fx.f32("qmap2");
  EXPECT_EQ(std::memcmp(q1.data(), dynamic_map(DynamicMap::Signed).data(), 256 * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(q2.data(), dynamic_map(DynamicMap::Unsigned).data(), 256 * sizeof(float)), 0);
}

TEST(AdamW8bit, StepsMatchBitsandbytes) {
  const Fixture fx;
  const AdamWConfig config{fx.meta["beta1"].get<double>(), fx.meta["beta2"].get<double>(), fx.meta["eps"].get<double>(),
                           fx.meta["weight_decay"].get<double>()};
  const double lr = fx.meta["lr"].get<double>();
  const int64_t steps = fx.meta["steps"].get<int64_t>();
  for (const std::string name : {"big", "small"}) {
    SCOPED_TRACE(name);
    std::vector<float> param = fx.f32(name + ".param0");
    AdamW8bitState state = adamw8bit_state_new(static_cast<int64_t>(param.size()));
    EXPECT_EQ(state.eight_bit(), name == "big");
    for (int64_t k = 1; k <= steps; ++k) {
      SCOPED_TRACE(str_cat("step ", k));
      const std::vector<float> grad = fx.f32(str_cat(name, ".grad", k));
      adamw8bit_step(config, lr, k, param, grad, state);
      double max_diff = 0;
      const std::vector<float> want = fx.f32(str_cat(name, ".param", k));
      const int64_t differing = float_mismatches(param, want, &max_diff);
      EXPECT_LE(max_scaled_diff(param, want, lr), 1.0) << differing << " of " << want.size()
                                                        << " parameters differ, max " << max_diff;
      EXPECT_LT(differing, static_cast<int64_t>(want.size()) / 4);
      if (state.eight_bit()) {
        const auto* s1 = state.state1.view().as<uint8_t>();
        const auto* s2 = state.state2.view().as<uint8_t>();
        EXPECT_EQ(std::vector<uint8_t>(s1, s1 + param.size()), fx.u8(str_cat(name, ".state1_", k)));
        EXPECT_EQ(std::vector<uint8_t>(s2, s2 + param.size()), fx.u8(str_cat(name, ".state2_", k)));
        double d = 0;
        const size_t nb = static_cast<size_t>(state.absmax1.numel());
        EXPECT_EQ(float_mismatches({state.absmax1.f32(), nb}, fx.f32(str_cat(name, ".absmax1_", k)), &d), 0);
        EXPECT_EQ(float_mismatches({state.absmax2.f32(), nb}, fx.f32(str_cat(name, ".absmax2_", k)), &d), 0);
      } else {
        double d = 0;
        EXPECT_EQ(float_mismatches({state.exp_avg.f32(), param.size()}, fx.f32(str_cat(name, ".exp_avg_", k)), &d), 0);
        EXPECT_EQ(float_mismatches({state.exp_avg_sq.f32(), param.size()}, fx.f32(str_cat(name, ".exp_avg_sq_", k)), &d), 0);
      }
    }
  }
}

}  // namespace
}  // namespace kto
