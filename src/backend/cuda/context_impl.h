// Backend-internal: what a CudaContext holds, the error-checking macros every op uses, and the
// argument checks shared by the entry points. Includes CUDA headers: only backend/cuda/ sees it.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <initializer_list>

#include "backend/cuda/context.h"
#include "util/error.h"

namespace kto {

struct CudaContext::Impl {
  int device = 0;
  cudaDeviceProp props{};
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  DeviceBuffer gemm_workspace;  // cuBLASLt / cuBLAS scratch, allocated once

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl();  // waits for the stream, then releases in reverse order (also after a failed constructor)
};

namespace cuda {

// Throws Error(Cuda) (Error(OutOfMemory) for allocation failures): "<op>: <call> failed with
// <cudaErrorName> (<description>) at <file>:<line>".
[[noreturn]] void throw_cuda_error(int code, const char* call, const char* op, const char* file, int line);
[[noreturn]] void throw_cublas_error(int status, const char* call, const char* op, const char* file, int line);

inline cudaStream_t stream_of(const CudaContext& ctx) { return ctx.impl().stream; }

inline bool present(const Tensor& t) { return t.data != nullptr; }

// Asserts that `t` is a device tensor of `dtype` with exactly `dims` (caller bugs, as on the CPU).
inline void check_tensor(const Tensor& t, const char* name, DType dtype, std::initializer_list<int64_t> dims) {
  Shape want(dims);
  KTO_ASSERT(t.data != nullptr, name, " is missing");
  KTO_ASSERT(t.device == Device::Cuda, name, " is not a device tensor");
  KTO_ASSERT(t.dtype == dtype, name, " is ", dtype_name(t.dtype), ", expected ", dtype_name(dtype));
  KTO_ASSERT(t.shape == want, name, " has shape ", t.shape.str(), ", expected ", want.str());
}

// Asserts that `workspace` is a device buffer of at least `bytes` bytes.
inline void check_workspace(const Tensor& workspace, const char* op, int64_t bytes) {
  if (bytes == 0) return;
  KTO_ASSERT(workspace.data != nullptr && workspace.device == Device::Cuda, op, ": workspace missing");
  KTO_ASSERT(static_cast<int64_t>(workspace.nbytes()) >= bytes, op, ": workspace has ", workspace.nbytes(),
             " bytes, needs ", bytes);
}

// Byte size rounded up so that consecutive workspace parts stay 256-byte aligned.
constexpr int64_t align_bytes(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// Launches that need more than the default 48 KiB of shared memory: raises the kernel's limit
// once per process, or throws Error(Unsupported) naming `op` when the device has too little.
void require_shared_memory(const CudaContext& ctx, const void* kernel, int64_t bytes, const char* op);

// Throws Error(Unsupported) naming the architectures to build for when this binary has no kernels
// the GPU can run (probe.cu).
void require_kernel_image(const cudaDeviceProp& props);

}  // namespace cuda
}  // namespace kto

#define KTO_CUDA_CHECK(call, op)                                                                       \
  do {                                                                                                \
    const cudaError_t kto_err_ = (call);                                                              \
    if (kto_err_ != cudaSuccess) ::kto::cuda::throw_cuda_error(kto_err_, #call, (op), __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: launch-configuration errors (and earlier sticky faults) become errors.
#define KTO_CUDA_CHECK_LAUNCH(op) KTO_CUDA_CHECK(cudaGetLastError(), op)

#define KTO_CUBLAS_CHECK(call, op)                                                                       \
  do {                                                                                                  \
    const cublasStatus_t kto_st_ = (call);                                                              \
    if (kto_st_ != CUBLAS_STATUS_SUCCESS) ::kto::cuda::throw_cublas_error(kto_st_, #call, (op), __FILE__, __LINE__); \
  } while (0)
