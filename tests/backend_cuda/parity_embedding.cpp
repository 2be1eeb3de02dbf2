// Embedding lookup: CUDA (bf16 table) against the CPU reference on the same bf16-exact values;
// a copy, so the result must match exactly. Lengths 1, 7, 33, 4097; widths 8 (vector path) and 7.
#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

using test::DeviceTensor;

TEST(ParityEmbedding, MatchesCpuExactly) {
  KTO_REQUIRE_GPU();
  const int64_t vocab = 1000;
  for (const int64_t dim : {int64_t{7}, int64_t{64}}) {
    for (const int64_t n_tokens : {int64_t{1}, int64_t{7}, int64_t{33}, int64_t{4097}}) {
      std::vector<float> table = test::random_bf16(vocab * dim, 1);
      std::vector<int32_t> tokens = test::random_ints(n_tokens, 2, 0, static_cast<int32_t>(vocab));
      std::vector<float> want(static_cast<size_t>(n_tokens * dim));
      embedding_forward_cpu({test::host_view(tokens), test::host_view(table, {vocab, dim}),
                             test::host_view(want, {n_tokens, dim})});
      DeviceTensor d_tokens = DeviceTensor::i32(tokens);
      DeviceTensor d_table(DType::BF16, {vocab, dim}, table), d_out(DType::BF16, {n_tokens, dim});
      embedding_forward_cuda({d_tokens.view(), d_table.view(), d_out.view()}, test::gpu());
      test::expect_close(str_cat("embedding T=", n_tokens, " D=", dim), d_out.download(),
                         want, test::tolerance_for(DType::I32));
      d_out.expect_guards("embedding out");
    }
  }
}

// Full fine-tuning's embedding gradient: repeated tokens add up, in the CPU's order (fp32 sums of
// bf16-exact values: equal up to fp32 rounding).
TEST(ParityEmbedding, BackwardMatchesCpu) {
  KTO_REQUIRE_GPU();
  const int64_t vocab = 50;  // few ids: many repeats
  for (const int64_t dim : {int64_t{7}, int64_t{64}}) {
    for (const int64_t n_tokens : {int64_t{1}, int64_t{33}, int64_t{4097}}) {
      std::vector<int32_t> tokens = test::random_ints(n_tokens, 3, 0, static_cast<int32_t>(vocab));
      std::vector<float> d_out = test::random_bf16(n_tokens * dim, 4), want = test::random_bf16(vocab * dim, 5);
      const std::vector<float> init = want;
      embedding_backward_cpu({test::host_view(tokens), test::host_view(d_out, {n_tokens, dim}), test::host_view(want, {vocab, dim})});
      DeviceTensor g_tokens = DeviceTensor::i32(tokens), g_d_out(DType::BF16, {n_tokens, dim}, d_out);
      DeviceTensor g_table(DType::F32, {vocab, dim}, init);
      embedding_backward_cuda({g_tokens.view(), g_d_out.view(), g_table.view()}, test::gpu());
      test::expect_close(str_cat("embedding backward T=", n_tokens, " D=", dim), g_table.download(), want,
                         test::tolerance_for(DType::F32));
      g_table.expect_guards("embedding d_table");
    }
  }
}

}  // namespace
}  // namespace kto
