// Frozen base linear + LoRA adapter, forward and backward (PEFT lora.Linear.forward and its
// autograd, base weight frozen), every product a cuBLASLt call (gemm.h): bf16 operands, fp32
// accumulation; d_A, d_B accumulate into the fp32 gradients directly. The dropped-out input
// x * mask and g = scale · d_out · B [T, R] are bf16 scratch in the caller's workspace.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/gemm.h"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

using cuda::bf16;

// out = x * mask, element-wise (one thread per element, grid-stride), rounded once to bf16.
__global__ void mask_multiply_kernel(const bf16* x, const bf16* mask, bf16* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = cuda::to_bf16(cuda::to_f32(x[i]) * cuda::to_f32(mask[i]));
  }
}

// d_x += tmp * mask, element-wise in fp32.
__global__ void add_masked_kernel(bf16* d_x, const bf16* tmp, const bf16* mask, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    d_x[i] = cuda::to_bf16(cuda::to_f32(d_x[i]) + cuda::to_f32(tmp[i]) * cuda::to_f32(mask[i]));
  }
}

struct LoraScratch {
  bf16* dropped;  // [T, K]
  bf16* g;        // [T, R]
};

LoraScratch carve(const Tensor& workspace, int64_t rows, int64_t in) {
  char* base = static_cast<char*>(workspace.data);
  if (!base) return {nullptr, nullptr};
  return {reinterpret_cast<bf16*>(base), reinterpret_cast<bf16*>(base + cuda::align_bytes(rows * in * 2))};
}

// dropout(x): x itself without a mask, else x * mask written into `dropped`.
const bf16* lora_input(const Tensor& x, const Tensor& mask, bf16* dropped, CudaContext& ctx, const char* op) {
  if (!cuda::present(mask)) return x.as<bf16>();
  cuda::check_tensor(mask, "lora dropout_mask", DType::BF16, {x.shape[0], x.shape[1]});
  mask_multiply_kernel<<<cuda::grid_for(x.numel(), 256), 256, 0, cuda::stream_of(ctx)>>>(x.as<bf16>(), mask.as<bf16>(),
                                                                                          dropped, x.numel());
  KTO_CUDA_CHECK_LAUNCH(op);
  return dropped;
}

void check_lora(const Tensor& a, const Tensor& b, int64_t in, int64_t out_features) {
  const int64_t rank = a.shape[0];
  cuda::check_tensor(a, "lora A", DType::BF16, {rank, in});
  cuda::check_tensor(b, "lora B", DType::BF16, {out_features, rank});
}

// C[m, n] (+)= alpha · op(A) · op(B) with row-major operands; see gemm.h.
void product(CudaContext& ctx, const char* op, int64_t m, int64_t n, int64_t k, cuda::GemmOperand a,
             cuda::GemmOperand b, void* c, cuda::GemmOut c_type, float alpha, float beta) {
  cuda::Gemm g;
  g.m = m, g.n = n, g.k = k, g.a = a, g.b = b, g.c = c, g.ldc = n, g.c_type = c_type, g.alpha = alpha, g.beta = beta;
  cuda::gemm(g, ctx, op);
}

}  // namespace

int64_t lora_linear_workspace_bytes_cuda(int64_t n_tokens, int64_t in_features, int64_t rank) {
  return cuda::align_bytes(n_tokens * in_features * 2) + cuda::align_bytes(n_tokens * rank * 2);
}

void lora_linear_forward_cuda(const LoraLinearArgs& args, const Tensor& workspace, CudaContext& ctx) {
  const char* op = "lora_linear_forward_cuda";
  linear_forward_cuda({args.x, args.weight, args.bias, args.out}, ctx);
  if (!cuda::present(args.lora_a)) return;
  const int64_t rows = args.x.shape[0], in = args.x.shape[1], out_features = args.weight.shape[0];
  const int64_t rank = args.lora_a.shape[0];
  check_lora(args.lora_a, args.lora_b, in, out_features);
  cuda::check_tensor(args.xa, "lora xa", DType::BF16, {rows, rank});
  if (cuda::present(args.dropout_mask)) cuda::check_workspace(workspace, op, rows * in * 2);
  const LoraScratch scratch = carve(workspace, rows, in);
  const bf16* x_in = lora_input(args.x, args.dropout_mask, scratch.dropped, ctx, op);
  using cuda::Trans;
  product(ctx, op, rows, rank, in, {x_in, in, Trans::No}, {args.lora_a.data, in, Trans::Yes}, args.xa.data,
          cuda::GemmOut::Bf16, 1.0f, 0.0f);
  product(ctx, op, rows, out_features, rank, {args.xa.data, rank, Trans::No}, {args.lora_b.data, rank, Trans::Yes},
          args.out.data, cuda::GemmOut::Bf16, args.scale, 1.0f);
}

// Order: d_x through W; g = scale · d_out · B; d_A += gᵀ · dropout(x); d_B += scale · d_outᵀ · xa;
// d_x += (g · A) * mask (through the workspace when masked, after d_A has read it).
void lora_linear_backward_cuda(const LoraLinearBackwardArgs& args, const Tensor& workspace, CudaContext& ctx) {
  const char* op = "lora_linear_backward_cuda";
  using cuda::GemmOut;
  using cuda::Trans;
  const int64_t rows = args.x.shape[0], in = args.x.shape[1], out_features = args.weight.shape[0];
  cuda::check_tensor(args.x, "lora_linear_backward x", DType::BF16, {rows, in});
  cuda::check_tensor(args.weight, "lora_linear_backward weight", DType::BF16, {out_features, in});
  cuda::check_tensor(args.d_out, "lora_linear_backward d_out", DType::BF16, {rows, out_features});
  const bool want_dx = cuda::present(args.d_x);
  if (want_dx) cuda::check_tensor(args.d_x, "lora_linear_backward d_x", DType::BF16, {rows, in});
  const float beta = args.store == GradStore::Accumulate ? 1.0f : 0.0f;
  if (want_dx) {
    product(ctx, op, rows, in, out_features, {args.d_out.data, out_features, Trans::No},
            {args.weight.data, in, Trans::No}, args.d_x.data, GemmOut::Bf16, 1.0f, beta);
  }
  if (!cuda::present(args.lora_a) || rows == 0) return;
  const int64_t rank = args.lora_a.shape[0];
  check_lora(args.lora_a, args.lora_b, in, out_features);
  cuda::check_tensor(args.xa, "lora_linear_backward xa", DType::BF16, {rows, rank});
  cuda::check_tensor(args.d_lora_a, "lora_linear_backward d_lora_a", DType::F32, {rank, in});
  cuda::check_tensor(args.d_lora_b, "lora_linear_backward d_lora_b", DType::F32, {out_features, rank});
  cuda::check_workspace(workspace, op, lora_linear_workspace_bytes_cuda(rows, in, rank));
  const LoraScratch scratch = carve(workspace, rows, in);
  product(ctx, op, rows, rank, out_features, {args.d_out.data, out_features, Trans::No},
          {args.lora_b.data, rank, Trans::No}, scratch.g, GemmOut::Bf16, args.scale, 0.0f);
  const bf16* x_in = lora_input(args.x, args.dropout_mask, scratch.dropped, ctx, op);
  product(ctx, op, rank, in, rows, {scratch.g, rank, Trans::Yes}, {x_in, in, Trans::No}, args.d_lora_a.data,
          GemmOut::F32, 1.0f, 1.0f);
  product(ctx, op, out_features, rank, rows, {args.d_out.data, out_features, Trans::Yes}, {args.xa.data, rank, Trans::No},
          args.d_lora_b.data, GemmOut::F32, args.scale, 1.0f);
  if (!want_dx) return;
  if (!cuda::present(args.dropout_mask)) {
    product(ctx, op, rows, in, rank, {scratch.g, rank, Trans::No}, {args.lora_a.data, in, Trans::No}, args.d_x.data,
            GemmOut::Bf16, 1.0f, 1.0f);
    return;
  }
  product(ctx, op, rows, in, rank, {scratch.g, rank, Trans::No}, {args.lora_a.data, in, Trans::No}, scratch.dropped,
          GemmOut::Bf16, 1.0f, 0.0f);
  add_masked_kernel<<<cuda::grid_for(rows * in, 256), 256, 0, cuda::stream_of(ctx)>>>(
      args.d_x.as<bf16>(), scratch.dropped, args.dropout_mask.as<bf16>(), rows * in);
  KTO_CUDA_CHECK_LAUNCH(op);
}

}  // namespace kto
