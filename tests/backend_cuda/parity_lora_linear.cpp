// Base linear and base + LoRA linear, forward and backward, through cuBLASLt against the fp32
// CPU reference (OpenBLAS): bias on/off, dropout mask on/off, d_x overwritten or accumulated,
// d_A / d_B accumulated into fp32. Token counts 1, 7, 33, 127; awkward widths (K = 72, N = 40).
#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

using test::DeviceTensor;

TEST(ParityLinear, ForwardMatchesCpu) {
  KTO_REQUIRE_GPU();
  for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{33}, int64_t{127}}) {
    for (const auto& [in, out_f] : {std::pair<int64_t, int64_t>{64, 96}, {72, 40}, {512, 256}}) {
      const std::string tag = str_cat(" T=", rows, " K=", in, " N=", out_f);
      std::vector<float> x = test::random_bf16(rows * in, 1), w = test::random_bf16(out_f * in, 2, 0.2f);
      std::vector<float> b = test::random_bf16(out_f, 3), want(static_cast<size_t>(rows * out_f));
      std::vector<float> want_nb = want;
      linear_forward_cpu({test::host_view(x, {rows, in}), test::host_view(w, {out_f, in}), test::host_view(b, {out_f}),
                          test::host_view(want, {rows, out_f})});
      linear_forward_cpu({test::host_view(x, {rows, in}), test::host_view(w, {out_f, in}), Tensor{},
                          test::host_view(want_nb, {rows, out_f})});
      DeviceTensor gx(DType::BF16, {rows, in}, x), gw(DType::BF16, {out_f, in}, w), gb(DType::BF16, {out_f}, b);
      DeviceTensor gout(DType::BF16, {rows, out_f}), gout_nb(DType::BF16, {rows, out_f});
      linear_forward_cuda({gx.view(), gw.view(), gb.view(), gout.view()}, test::gpu());
      linear_forward_cuda({gx.view(), gw.view(), Tensor{}, gout_nb.view()}, test::gpu());
      test::expect_close("linear bias" + tag, gout.download(), want, test::tolerance_for(DType::BF16));
      test::expect_close("linear" + tag, gout_nb.download(), want_nb, test::tolerance_for(DType::BF16));
      gout.expect_guards("linear out");
      gout_nb.expect_guards("linear out (no bias)");
    }
  }
}

// Full fine-tuning's nn.Linear backward: d_x (bf16, overwrite and accumulate) and the fp32 weight
// and bias gradients accumulated over the rows.
TEST(ParityLinear, BackwardMatchesCpu) {
  KTO_REQUIRE_GPU();
  for (const int64_t rows : {int64_t{1}, int64_t{33}, int64_t{300}}) {
    for (const auto& [in, out_f] : {std::pair<int64_t, int64_t>{64, 96}, {72, 40}}) {
      const std::string tag = str_cat(" T=", rows, " K=", in, " N=", out_f);
      std::vector<float> x = test::random_bf16(rows * in, 11), w = test::random_bf16(out_f * in, 12, 0.2f);
      std::vector<float> d_out = test::random_bf16(rows * out_f, 13), d_x = test::random_bf16(rows * in, 14);
      std::vector<float> d_w = test::random_bf16(out_f * in, 15, 0.1f), d_b = test::random_bf16(out_f, 16, 0.1f);
      const std::vector<float> d_x0 = d_x, d_w0 = d_w, d_b0 = d_b;
      LinearBackwardArgs cpu;
      cpu.x = test::host_view(x, {rows, in}), cpu.weight = test::host_view(w, {out_f, in});
      cpu.d_out = test::host_view(d_out, {rows, out_f}), cpu.d_x = test::host_view(d_x, {rows, in});
      cpu.d_weight = test::host_view(d_w, {out_f, in}), cpu.d_bias = test::host_view(d_b, {out_f});
      cpu.store = GradStore::Accumulate;
      linear_backward_cpu(cpu);
      DeviceTensor gx(DType::BF16, {rows, in}, x), gw(DType::BF16, {out_f, in}, w), gd(DType::BF16, {rows, out_f}, d_out);
      DeviceTensor gdx(DType::BF16, {rows, in}, d_x0), gdw(DType::F32, {out_f, in}, d_w0), gdb(DType::F32, {out_f}, d_b0);
      LinearBackwardArgs gpu = cpu;
      gpu.x = gx.view(), gpu.weight = gw.view(), gpu.d_out = gd.view(), gpu.d_x = gdx.view();
      gpu.d_weight = gdw.view(), gpu.d_bias = gdb.view();
      linear_backward_cuda(gpu, test::gpu());
      test::expect_close("linear d_x" + tag, gdx.download(), d_x, test::scaled(test::tolerance_for(DType::BF16), 2.0));
      test::expect_close("linear d_weight" + tag, gdw.download(), d_w, test::scaled(test::tolerance_for(DType::F32), 10.0));
      test::expect_close("linear d_bias" + tag, gdb.download(), d_b, test::scaled(test::tolerance_for(DType::F32), 10.0));
      for (const DeviceTensor* g : {&gdx, &gdw, &gdb}) g->expect_guards("linear backward" + tag);
    }
  }
}

struct LoraCase {
  int64_t rows, in, out_f, rank;
  bool masked;  // test-case field, not an op parameter
  GradStore store;
};

void check_lora(const LoraCase& c, uint32_t seed) {
  const std::string tag = str_cat(" T=", c.rows, " K=", c.in, " N=", c.out_f, " R=", c.rank, c.masked ? " mask" : "",
                                  c.store == GradStore::Accumulate ? " acc" : "");
  const int64_t t = c.rows, k = c.in, n = c.out_f, r = c.rank;
  const float scale = 2.0f;
  std::vector<float> x = test::random_bf16(t * k, seed), w = test::random_bf16(n * k, seed + 1, 0.2f);
  std::vector<float> a = test::random_bf16(r * k, seed + 2, 0.2f), b = test::random_bf16(n * r, seed + 3, 0.2f);
  std::vector<float> mask(static_cast<size_t>(t * k), 0.0f), d_out = test::random_bf16(t * n, seed + 4);
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i * 2654435761u) % 10 == 0 ? 0.0f : bf16_to_f32(f32_to_bf16(1.0f / 0.9f));
  std::vector<float> out(static_cast<size_t>(t * n)), xa(static_cast<size_t>(t * r));
  std::vector<float> d_x = test::random_bf16(t * k, seed + 5), d_x0 = d_x;
  std::vector<float> d_a = test::random_bf16(r * k, seed + 6, 0.1f), d_a0 = d_a;
  std::vector<float> d_b = test::random_bf16(n * r, seed + 7, 0.1f), d_b0 = d_b;
  const Tensor mask_cpu = c.masked ? test::host_view(mask, {t, k}) : Tensor{};
  lora_linear_forward_cpu({test::host_view(x, {t, k}), test::host_view(w, {n, k}), Tensor{}, test::host_view(a, {r, k}),
                           test::host_view(b, {n, r}), mask_cpu, test::host_view(xa, {t, r}), test::host_view(out, {t, n}), scale, {}});
  lora_linear_backward_cpu({test::host_view(x, {t, k}), test::host_view(w, {n, k}), test::host_view(a, {r, k}),
                            test::host_view(b, {n, r}), mask_cpu, test::host_view(xa, {t, r}), test::host_view(d_out, {t, n}),
                            test::host_view(d_x, {t, k}), test::host_view(d_a, {r, k}), test::host_view(d_b, {n, r}), scale,
                            c.store, {}});
  DeviceTensor gx(DType::BF16, {t, k}, x), gw(DType::BF16, {n, k}, w), ga(DType::BF16, {r, k}, a), gb(DType::BF16, {n, r}, b);
  DeviceTensor gmask(DType::BF16, {t, k}, mask), gxa(DType::BF16, {t, r}), gout(DType::BF16, {t, n});
  DeviceTensor gdout(DType::BF16, {t, n}, d_out), gdx(DType::BF16, {t, k}, d_x0);
  DeviceTensor gda(DType::F32, {r, k}, d_a0), gdb(DType::F32, {n, r}, d_b0);
  DeviceTensor ws(DType::U8, {lora_linear_workspace_bytes_cuda(t, k, r)});
  const Tensor mask_gpu = c.masked ? gmask.view() : Tensor{};
  CudaContext& ctx = test::gpu();
  lora_linear_forward_cuda({gx.view(), gw.view(), Tensor{}, ga.view(), gb.view(), mask_gpu, gxa.view(), gout.view(), scale, {}},
                           ws.view(), ctx);
  lora_linear_backward_cuda({gx.view(), gw.view(), ga.view(), gb.view(), mask_gpu, gxa.view(), gdout.view(), gdx.view(),
                             gda.view(), gdb.view(), scale, c.store, {}}, ws.view(), ctx);
  // Two bf16 roundings (base product, then the LoRA term; bf16 xa and g feed the next products).
  const test::Tolerance tol = test::scaled(test::tolerance_for(DType::BF16), 2.0);
  test::expect_close("lora out" + tag, gout.download(), out, tol);
  test::expect_close("lora xa" + tag, gxa.download(), xa, tol);
  test::expect_close("lora d_x" + tag, gdx.download(), d_x, tol);
  test::expect_close("lora d_A" + tag, gda.download(), d_a, tol);
  test::expect_close("lora d_B" + tag, gdb.download(), d_b, tol);
  for (const DeviceTensor* g : {&gout, &gxa, &gdx, &gda, &gdb, &ws}) g->expect_guards("lora" + tag);
}

TEST(ParityLoraLinear, ForwardAndBackwardMatchCpu) {
  KTO_REQUIRE_GPU();
  uint32_t seed = 100;
  for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{33}, int64_t{127}}) {
    check_lora({rows, 128, 96, 8, false, GradStore::Overwrite}, seed += 10);
    check_lora({rows, 72, 40, 16, true, GradStore::Accumulate}, seed += 10);
  }
  check_lora({257, 1024, 512, 64, true, GradStore::Overwrite}, seed += 10);
}

}  // namespace
}  // namespace kto
