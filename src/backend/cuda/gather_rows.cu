// Row gather from two sources, for passes that reuse keys and values computed earlier: out[r] =
// a[index[r]] when index[r] >= 0, else b[-1 - index[r]] (rows of equal width; bf16 or any 2-byte
// dtype is copied as bits). Threads: a warp per row, 16-byte copies when the row's bytes allow,
// else 2-byte copies. Exact (a copy).
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/ops_cuda.h"

namespace kto {
namespace {

constexpr int kRowsPerBlock = 8;

template <typename Word>
__global__ void gather_rows_kernel(const Word* a, const Word* b, const int32_t* index, Word* out, int64_t n_rows,
                                   int64_t words) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= n_rows) return;
  const int32_t i = index[row];
  const Word* src = i >= 0 ? a + int64_t{i} * words : b + int64_t{-1 - i} * words;
  Word* dst = out + row * words;
  for (int64_t w = threadIdx.x % 32; w < words; w += 32) dst[w] = src[w];
}

}  // namespace

void gather_rows_cuda(const GatherRowsArgs& args, CudaContext& ctx) {
  const Tensor& out = args.out;
  KTO_ASSERT(out.device == Device::Cuda && out.shape.rank == 2 && dtype_bits(out.dtype) == 16,
             "gather_rows: out must be a [N, W] 2-byte device tensor, got ", out.shape.str());
  KTO_ASSERT(args.index.dtype == DType::I32 && args.index.numel() == out.shape[0], "gather_rows: index must be [N] i32");
  for (const Tensor* t : {&args.a, &args.b}) {
    KTO_ASSERT(!t->data || (t->dtype == out.dtype && t->shape.rank == 2 && t->shape[1] == out.shape[1]),
               "gather_rows: sources must be [*, W] of out's dtype");
  }
  const int64_t n_rows = out.shape[0], bytes = out.shape[1] * 2;
  if (n_rows == 0) return;
  const void* b = args.b.data ? args.b.data : args.a.data;
  const int blocks = static_cast<int>((n_rows + kRowsPerBlock - 1) / kRowsPerBlock);
  const auto aligned16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (bytes % 16 == 0 && aligned16(args.a.data) && aligned16(b) && aligned16(out.data)) {
    gather_rows_kernel<<<blocks, 32 * kRowsPerBlock, 0, cuda::stream_of(ctx)>>>(
        static_cast<const uint4*>(args.a.data), static_cast<const uint4*>(b), args.index.as<int32_t>(),
        static_cast<uint4*>(out.data), n_rows, bytes / 16);
  } else {
    gather_rows_kernel<<<blocks, 32 * kRowsPerBlock, 0, cuda::stream_of(ctx)>>>(
        static_cast<const uint16_t*>(args.a.data), static_cast<const uint16_t*>(b), args.index.as<int32_t>(),
        static_cast<uint16_t*>(out.data), n_rows, bytes / 2);
  }
  KTO_CUDA_CHECK_LAUNCH("gather_rows_cuda");
}

}  // namespace kto
