// NF4 quantisation / dequantisation against bitsandbytes itself: tests/fixtures/nf4/quant.safetensors
// holds bnb.functional.quantize_4bit / dequantize_4bit outputs (tools/reference/make_nf4.py, bnb
// 0.50.2 on CPU) for whole, ragged (K % 64 != 0), odd-sized and many-block weights, with and
// without double quantisation. Everything must agree bit for bit.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "formats/safetensors.h"
#include "tensor/nf4.h"
#include "test_util.h"

namespace kto {
namespace {

const SafetensorsFile& fixture_file() {
  static const SafetensorsFile file = SafetensorsFile::open(test::fixture("nf4/quant.safetensors"));
  return file;
}

const SafetensorsTensor& get(const std::string& name) {
  const SafetensorsTensor* t = fixture_file().find(name);
  if (!t) throw std::runtime_error("fixture tensor missing: " + name);
  return *t;
}

std::vector<float> as_f32(const SafetensorsTensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  safetensors_to_f32(t, out.data());
  return out;
}

std::vector<uint8_t> as_u8(const SafetensorsTensor& t) { return {t.data, t.data + t.nbytes}; }

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// The "large" case is not stored: make_nf4.py's large_weight() formula, exact in bf16.
std::vector<float> large_weight(int64_t n) {
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = (static_cast<uint64_t>(i) * 2654435761ull) % (1ull << 32);
    double v = (static_cast<double>(h >> 24) - 128.0) / 1024.0;
    if (i % 97 == 0) v *= 16.0;
    w[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return w;
}

struct Case {
  const char* name;
  int64_t rows, cols;
  DType dtype;
  bool dequant;
};
constexpr Case kCases[] = {{"square", 8, 64, DType::F32, true},
                           {"ragged", 24, 70, DType::F32, true},
                           {"odd", 5, 7, DType::F32, true},
                           {"large", 64, 260, DType::BF16, false}};

int64_t count_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += bits(a[i]) != bits(b[i]);
  return n;
}

TEST(Nf4, DynamicMapsEqualBitsandbytes) {
  const std::vector<float> signed_map = as_f32(get("ragged.dq.nested_quant_map"));
  const auto& ours = dynamic_map(DynamicMap::Signed);
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_EQ(bits(ours[i]), bits(signed_map[i])) << "signed code " << i;
  EXPECT_EQ(ours[127], 0.0f);
  EXPECT_EQ(ours[255], 1.0f);
}

TEST(Nf4, QuantizeAndDequantizeMatchBitsandbytesBitForBit) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const std::string name = c.name;
    const std::vector<float> w = name == "large" ? large_weight(c.rows * c.cols) : as_f32(get(name + ".weight"));
    for (bool nested : {false, true}) {
      SCOPED_TRACE(nested ? "double quant" : "plain");
      const std::string p = name + (nested ? ".dq." : ".plain.");
      const Nf4Tensor q = nf4_quantize(w.data(), c.rows, c.cols, {kNf4BlockSize, nested, c.dtype});
      const std::vector<uint8_t> want_packed = as_u8(get(p + "packed"));
      const auto* packed = q.packed.view().as<uint8_t>();
      ASSERT_EQ(static_cast<size_t>(q.packed.numel()), want_packed.size());
      int64_t packed_diff = 0;
      for (size_t i = 0; i < want_packed.size(); ++i) packed_diff += packed[i] != want_packed[i];
      EXPECT_EQ(packed_diff, 0) << "packed bytes differing from bnb";
      const Nf4View v = q.view();
      if (!nested) {
        const std::vector<float> want = as_f32(get(p + "absmax"));
        ASSERT_EQ(static_cast<size_t>(q.absmax.numel()), want.size());
        EXPECT_EQ(count_mismatches(std::vector<float>(q.absmax.f32(), q.absmax.f32() + want.size()), want), 0);
      } else {
        EXPECT_EQ(bits(q.nested_offset), bits(as_f32(get(p + "offset"))[0])) << "offset = mean(absmax)";
        EXPECT_EQ(as_u8(get(p + "absmax")), std::vector<uint8_t>(v.absmax.as<uint8_t>(), v.absmax.as<uint8_t>() + v.n_blocks()));
        const std::vector<float> want_nested = as_f32(get(p + "nested_absmax"));
        EXPECT_EQ(count_mismatches(std::vector<float>(q.nested_absmax.f32(), q.nested_absmax.f32() + want_nested.size()),
                                   want_nested), 0);
        const std::vector<float> want_absmax = as_f32(get(p + "absmax_f32"));
        std::vector<float> ours(want_absmax.size());
        for (size_t b = 0; b < ours.size(); ++b) ours[b] = nf4_block_absmax(v, static_cast<int64_t>(b));
        EXPECT_EQ(count_mismatches(ours, want_absmax), 0) << "dequantised absmax";
      }
      if (!c.dequant) continue;
      const std::vector<float> want = as_f32(get(p + "dequant"));
      std::vector<float> ours(want.size());
      nf4_dequantize(v, 0, v.numel(), ours.data());
      EXPECT_EQ(count_mismatches(ours, want), 0) << "dequantised weight";
      // Tile by tile (odd offsets, ranges straddling blocks) gives the same values.
      for (int64_t first = 0; first < v.numel(); first += 37) {
        const int64_t n = std::min<int64_t>(37, v.numel() - first);
        nf4_dequantize(v, first, n, ours.data() + first);
      }
      EXPECT_EQ(count_mismatches(ours, want), 0) << "dequantised in pieces";
    }
  }
}

TEST(Nf4, RejectsBlocksizesBitsandbytesRejects) {
  const std::vector<float> w(128, 0.5f);
  EXPECT_THROW(nf4_quantize(w.data(), 2, 64, {48, false, DType::F32}), Error);
  EXPECT_NO_THROW(nf4_quantize(w.data(), 2, 64, {128, false, DType::F32}));
}

}  // namespace
}  // namespace kto
