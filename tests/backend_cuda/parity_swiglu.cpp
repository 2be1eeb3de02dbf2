// SwiGLU forward/backward and the residual add: CUDA bf16 against the fp32 CPU reference.
#include "backend/cuda/ops_cuda.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

using test::DeviceTensor;

TEST(ParitySwiglu, ForwardAndBackwardMatchCpu) {
  KTO_REQUIRE_GPU();
  for (const auto& [rows, width] : {std::pair<int64_t, int64_t>{1, 7}, {33, 7}, {127, 1024}, {4097, 96}}) {
    const std::string tag = str_cat(" [", rows, ", ", width, "]");
    std::vector<float> gate = test::random_bf16(rows * width, 1, 6.0f), up = test::random_bf16(rows * width, 2, 2.0f);
    std::vector<float> d_out = test::random_bf16(rows * width, 3), out(gate.size()), d_gate(gate.size()), d_up(gate.size());
    const Shape s{rows, width};
    swiglu_forward_cpu({test::host_view(gate, s), test::host_view(up, s), test::host_view(out, s)});
    swiglu_backward_cpu({test::host_view(gate, s), test::host_view(up, s), test::host_view(d_out, s),
                         test::host_view(d_gate, s), test::host_view(d_up, s)});
    DeviceTensor g_gate(DType::BF16, s, gate), g_up(DType::BF16, s, up), g_dout(DType::BF16, s, d_out);
    DeviceTensor g_out(DType::BF16, s), g_dgate(DType::BF16, s), g_dup(DType::BF16, s);
    swiglu_forward_cuda({g_gate.view(), g_up.view(), g_out.view()}, test::gpu());
    swiglu_backward_cuda({g_gate.view(), g_up.view(), g_dout.view(), g_dgate.view(), g_dup.view()}, test::gpu());
    const test::Tolerance tol = test::tolerance_for(DType::BF16);
    test::expect_close("swiglu out" + tag, g_out.download(), out, tol);
    test::expect_close("swiglu d_gate" + tag, g_dgate.download(), d_gate, tol);
    test::expect_close("swiglu d_up" + tag, g_dup.download(), d_up, tol);
    g_out.expect_guards("swiglu out");
    g_dgate.expect_guards("swiglu d_gate");
    g_dup.expect_guards("swiglu d_up");
  }
}

TEST(ParityAdd, MatchesCpu) {
  KTO_REQUIRE_GPU();
  const Shape s{33, 7};
  std::vector<float> a = test::random_bf16(s.numel(), 1), b = test::random_bf16(s.numel(), 2), out(a.size());
  add_forward_cpu({test::host_view(a, s), test::host_view(b, s), test::host_view(out, s)});
  DeviceTensor ga(DType::BF16, s, a), gb(DType::BF16, s, b), gout(DType::BF16, s);
  add_forward_cuda({ga.view(), gb.view(), gout.view()}, test::gpu());
  test::expect_close("add", gout.download(), out, test::tolerance_for(DType::BF16));
  gout.expect_guards("add out");
}

}  // namespace
}  // namespace kto
