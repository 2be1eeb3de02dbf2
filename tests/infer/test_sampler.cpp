// Sampler: greedy = torch.argmax (first index on ties), top-k / top-p restrict the support,
// and a seed makes sampling repeatable.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "infer/sampler.h"

namespace kto {
namespace {

TEST(Sampler, GreedyIsArgmaxWithFirstIndexOnTies) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  Sampler greedy({});
  EXPECT_EQ(greedy.sample(logits), 1);
}

TEST(Sampler, TopKOneIsGreedyWhateverTheTemperature) {
  Sampler s({.temperature = 5.0, .top_k = 1, .top_p = 1.0, .seed = 7});
  for (int i = 0; i < 50; ++i) {
    std::vector<float> logits = {0.1f, 0.3f, 0.2f};
    EXPECT_EQ(s.sample(logits), 1);
  }
}

TEST(Sampler, TopPKeepsOnlyTheNucleus) {
  // softmax([10, 9, 0, 0]) ≈ [0.731, 0.269, 3e-5, 3e-5]: top_p 0.5 keeps one token, 0.9 two.
  Sampler narrow({.temperature = 1.0, .top_k = 0, .top_p = 0.5, .seed = 1});
  Sampler wide({.temperature = 1.0, .top_k = 0, .top_p = 0.9, .seed = 1});
  std::set<int32_t> seen_narrow, seen_wide;
  for (int i = 0; i < 400; ++i) {
    std::vector<float> a = {10.f, 9.f, 0.f, 0.f}, b = a;
    seen_narrow.insert(narrow.sample(a));
    seen_wide.insert(wide.sample(b));
  }
  EXPECT_EQ(seen_narrow, (std::set<int32_t>{0}));
  EXPECT_EQ(seen_wide, (std::set<int32_t>{0, 1}));
}

TEST(Sampler, SameSeedSameDraws) {
  Sampler a({.temperature = 1.0, .top_k = 0, .top_p = 1.0, .seed = 123});
  Sampler b({.temperature = 1.0, .top_k = 0, .top_p = 1.0, .seed = 123});
  for (int i = 0; i < 100; ++i) {
    std::vector<float> x = {0.f, 0.1f, 0.2f, 0.3f, 0.4f}, y = x;
    ASSERT_EQ(a.sample(x), b.sample(y));
  }
}

}  // namespace
}  // namespace kto
