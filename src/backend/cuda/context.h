// The CUDA backend's per-device state and device memory, as the rest of the program sees them:
// no CUDA header here, so model/ and train/ include it with the host compiler. A CudaContext owns
// one stream (every op of the backend is enqueued on it, in call order), the cuBLAS/cuBLASLt
// handles and the cuBLASLt workspace, all created once; ops allocate nothing (ops_cuda.h).
// Not thread-safe: one context per device per thread. The calling thread's current device must be
// the context's (the constructor makes it current; call make_current() after switching).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "tensor/tensor.h"

namespace kto {

// Number of CUDA devices visible to this process; 0 when there is no GPU or no driver (never throws).
int cuda_device_count();

// What `kto inspect` and the start banner report about a GPU.
struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability
  int64_t total_bytes = 0, free_bytes = 0;
  int driver_version = 0;   // the CUDA version the driver supports, e.g. 13000
  int runtime_version = 0;  // the CUDA runtime this binary uses
  int multiprocessors = 0;
};
// Throws Error(Cuda) when the device does not exist.
CudaDeviceInfo cuda_device_info(int device);
// The architectures the CUDA backend was compiled for ("80;86;89;90;120").
const char* cuda_built_architectures();
// "13.0" from 13000.
std::string cuda_version_string(int version);

class CudaContext {
 public:
  // Throws Error(Cuda) with what to do when no GPU or driver is visible or `device` does not exist,
  // Error(Unsupported) when the GPU is older than Ampere (compute capability 8.0: bf16 tensor
  // cores) or this binary holds no kernels for its architecture, Error(OutOfMemory) when the
  // handles or workspace do not fit.
  explicit CudaContext(int device = 0);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const;
  std::string device_name() const;
  void make_current() const;
  // Waits for every op enqueued so far; an error of an earlier kernel surfaces here as
  // Error(Cuda) naming `what` (the caller's step, e.g. "train step 12").
  void synchronize(const char* what) const;

  struct Impl;  // backend-internal (backend/cuda/context_impl.h)
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Owning device memory, allocated once up front (cudaMalloc, 256-byte aligned). Allocation failure
// throws Error(OutOfMemory) naming the buffer, the bytes needed and the bytes free on the device.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const CudaContext& ctx, std::string name, size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  const std::string& name() const { return name_; }
  // A device view of the first shape.numel() elements at byte `offset` (asserts it fits).
  Tensor view(DType dtype, Shape shape, size_t offset = 0) const;

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  std::string name_;
};

// Bytes held by DeviceBuffers of this process (all devices), now and at most since the last
// reset: what torch.cuda.memory_allocated / max_memory_allocated report for PyTorch.
struct CudaMemoryStats {
  int64_t allocated = 0;
  int64_t peak = 0;
};
CudaMemoryStats cuda_memory_stats();
void cuda_memory_reset_peak();

// Copies between host memory and a device tensor on the context's stream, then waits (for
// tests, loading and metrics; the training loop keeps data on the device).
void cuda_copy_to_device(CudaContext& ctx, const Tensor& dst, const void* host_src);
void cuda_copy_to_host(CudaContext& ctx, void* host_dst, const Tensor& src);
// Device-to-device copy of src into dst (same byte size), enqueued without waiting.
void cuda_copy_device(CudaContext& ctx, const Tensor& dst, const Tensor& src);
// Zero-fills a device tensor, enqueued without waiting.
void cuda_fill_zero(CudaContext& ctx, const Tensor& dst);

}  // namespace kto
