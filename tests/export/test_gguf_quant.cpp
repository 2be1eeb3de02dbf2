// Our block encoders against llama.cpp's: tests/fixtures/gguf/quant/ holds an 8x512 f32 matrix
// (zero, constant, tiny, heavy-tailed, outlier and one-signed rows) and the bytes ggml's own
// quantizer (ggml_quantize_chunk, no importance matrix — what llama_model_quantize calls) made of
// it (tools/reference/make_gguf_fixtures.py). Every byte must match.
#include <gtest/gtest.h>

#include <cstring>

#include "export/gguf_quant.h"
#include "export/test_gguf_reader.h"
#include "test_util.h"

namespace kto {
namespace {

struct QuantCase {
  const char* file;
  GgmlType type;
};

void PrintTo(const QuantCase& c, std::ostream* os) { *os << c.file; }

class GgufQuantTest : public ::testing::TestWithParam<QuantCase> {};

TEST_P(GgufQuantTest, BytesEqualLlamaCppReferenceQuantizer) {
  const QuantCase& q = GetParam();
  const std::string matrix = test::read_binary(test::fixture("gguf/quant/matrix.f32"));
  const std::string expected = test::read_binary(test::fixture(std::string("gguf/quant/") + q.file));
  constexpr int64_t kRows = 8, kCols = 512;
  ASSERT_EQ(matrix.size(), static_cast<size_t>(kRows * kCols * 4));
  std::vector<float> x(kRows * kCols);
  std::memcpy(x.data(), matrix.data(), matrix.size());
  std::vector<uint8_t> out{0xAB};  // gguf_quantize appends: the existing byte must survive
  gguf_quantize(q.type, x.data(), kRows, kCols, out);
  ASSERT_EQ(out[0], 0xAB);
  ASSERT_EQ(out.size() - 1, expected.size()) << q.file;
  const size_t block_bytes = ggml_type_block_bytes(q.type);
  for (size_t i = 0; i < expected.size(); ++i) {
    if (out[i + 1] != static_cast<uint8_t>(expected[i])) {
      const size_t block = i / block_bytes;
      const int64_t per_row = kCols / ggml_type_block_elems(q.type);
      FAIL() << q.file << ": first difference at byte " << i << " = block " << block << " (row "
             << static_cast<int64_t>(block) / per_row << ", byte " << i % block_bytes << " of the block): ours "
             << int{out[i + 1]} << ", llama.cpp " << int{static_cast<uint8_t>(expected[i])};
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgufQuantTest,
                         ::testing::Values(QuantCase{"q8_0.bin", GgmlType::Q8_0}, QuantCase{"q5_0.bin", GgmlType::Q5_0},
                                           QuantCase{"q5_1.bin", GgmlType::Q5_1}, QuantCase{"q4_K.bin", GgmlType::Q4_K},
                                           QuantCase{"q5_K.bin", GgmlType::Q5_K}, QuantCase{"q6_K.bin", GgmlType::Q6_K}),
                         [](const auto& p) {
                           std::string name = p.param.file;
                           return name.substr(0, name.find('.'));
                         });

TEST(GgufQuant, RowBytes) {
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 512), 2u * 144u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q6_K, 256), 210u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q8_0, 64), 2u * 34u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::F16, 3), 6u);
}

}  // namespace
}  // namespace kto
