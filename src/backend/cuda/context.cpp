// CudaContext, DeviceBuffer and host<->device copies; the CUDA and cuBLAS error messages of the
// whole backend. Host code (g++), linked against cudart and cuBLAS.
#include <atomic>
#include <utility>

#include "backend/cuda/context_impl.h"

namespace kto {
namespace cuda {

void throw_cuda_error(int code, const char* call, const char* op, const char* file, int line) {
  const auto err = static_cast<cudaError_t>(code);
  const ErrorKind kind = err == cudaErrorMemoryAllocation ? ErrorKind::OutOfMemory : ErrorKind::Cuda;
  fail(kind, op, ": ", call, " failed with ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") at ", file,
       ":", line);
}

void throw_cublas_error(int status, const char* call, const char* op, const char* file, int line) {
  const auto st = static_cast<cublasStatus_t>(status);
  const ErrorKind kind = st == CUBLAS_STATUS_ALLOC_FAILED ? ErrorKind::OutOfMemory : ErrorKind::Cuda;
  fail(kind, op, ": ", call, " failed with ", cublasGetStatusName(st), " (", cublasGetStatusString(st), ") at ", file,
       ":", line);
}

void require_shared_memory(const CudaContext& ctx, const void* kernel, int64_t bytes, const char* op) {
  const cudaDeviceProp& props = ctx.impl().props;
  if (bytes > static_cast<int64_t>(props.sharedMemPerBlockOptin)) {
    fail(ErrorKind::Unsupported, op, ": needs ", bytes, " bytes of shared memory per block, ", props.name, " has ",
         props.sharedMemPerBlockOptin, "; use a smaller head_dim or the CPU backend");
  }
  if (bytes <= 48 * 1024) return;
  KTO_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), op);
}

}  // namespace cuda

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the non-sticky error so later calls start clean
    return 0;
  }
  return n;
}

CudaDeviceInfo cuda_device_info(int device) {
  const int n = cuda_device_count();
  if (device < 0 || device >= n) {
    fail(ErrorKind::Cuda, "CUDA device ", device, " does not exist: ", n, " device(s) visible");
  }
  cudaDeviceProp props{};
  KTO_CUDA_CHECK(cudaGetDeviceProperties(&props, device), "cuda_device_info");
  CudaDeviceInfo info;
  info.index = device;
  info.name = props.name;
  info.cc_major = props.major, info.cc_minor = props.minor;
  info.multiprocessors = props.multiProcessorCount;
  info.total_bytes = static_cast<int64_t>(props.totalGlobalMem);
  int previous = 0;
  KTO_CUDA_CHECK(cudaGetDevice(&previous), "cuda_device_info");
  KTO_CUDA_CHECK(cudaSetDevice(device), "cuda_device_info");
  size_t free_bytes = 0, total_bytes = 0;
  KTO_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes), "cuda_device_info");
  KTO_CUDA_CHECK(cudaSetDevice(previous), "cuda_device_info");
  info.free_bytes = static_cast<int64_t>(free_bytes);
  KTO_CUDA_CHECK(cudaDriverGetVersion(&info.driver_version), "cuda_device_info");
  KTO_CUDA_CHECK(cudaRuntimeGetVersion(&info.runtime_version), "cuda_device_info");
  return info;
}

const char* cuda_built_architectures() { return KTO_CUDA_ARCHITECTURES; }

std::string cuda_version_string(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

CudaContext::CudaContext(int device) : impl_(std::make_unique<Impl>()) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    fail(ErrorKind::Cuda, "no CUDA GPU is visible (cudaGetDeviceCount: ",
         err == cudaSuccess ? "0 devices" : cudaGetErrorString(err),
         "): run on a machine with an NVIDIA GPU and driver, check CUDA_VISIBLE_DEVICES, or use the CPU backend");
  }
  if (device < 0 || device >= n) {
    fail(ErrorKind::Cuda, "CUDA device ", device, " does not exist: ", n, " device(s) visible (0 .. ", n - 1, ")");
  }
  Impl& s = *impl_;
  s.device = device;
  KTO_CUDA_CHECK(cudaSetDevice(device), "CudaContext");
  KTO_CUDA_CHECK(cudaGetDeviceProperties(&s.props, device), "CudaContext");
  if (s.props.major < 8) {
    fail(ErrorKind::Unsupported, "GPU ", device, " (", s.props.name, ") has compute capability ", s.props.major, ".",
         s.props.minor, "; kto.cpp's CUDA backend needs 8.0 (Ampere) or newer for bf16: use device: cpu");
  }
  cuda::require_kernel_image(s.props);
  KTO_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "CudaContext");
  KTO_CUBLAS_CHECK(cublasLtCreate(&s.lt), "CudaContext");
  KTO_CUBLAS_CHECK(cublasCreate(&s.blas), "CudaContext");
  KTO_CUBLAS_CHECK(cublasSetStream(s.blas, s.stream), "CudaContext");
  // 32 MiB: what cuBLAS recommends for Hopper; smaller GPUs use less of it.
  s.gemm_workspace = DeviceBuffer(*this, "cuBLAS workspace", size_t{32} << 20);
  KTO_CUBLAS_CHECK(cublasSetWorkspace(s.blas, s.gemm_workspace.data(), s.gemm_workspace.bytes()), "CudaContext");
}

CudaContext::Impl::~Impl() {
  if (stream) (void)cudaStreamSynchronize(stream);
  gemm_workspace = DeviceBuffer();
  if (blas) (void)cublasDestroy(blas);
  if (lt) (void)cublasLtDestroy(lt);
  if (stream) (void)cudaStreamDestroy(stream);
}

CudaContext::~CudaContext() = default;

int CudaContext::device() const { return impl_->device; }

std::string CudaContext::device_name() const { return impl_->props.name; }

void CudaContext::make_current() const { KTO_CUDA_CHECK(cudaSetDevice(impl_->device), "CudaContext::make_current"); }

void CudaContext::synchronize(const char* what) const {
  KTO_CUDA_CHECK(cudaStreamSynchronize(impl_->stream), what);
}

namespace {
std::atomic<int64_t> g_allocated{0}, g_peak{0};

void note_allocation(int64_t delta) {
  const int64_t now = g_allocated.fetch_add(delta) + delta;
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace

CudaMemoryStats cuda_memory_stats() { return {g_allocated.load(), g_peak.load()}; }
void cuda_memory_reset_peak() { g_peak.store(g_allocated.load()); }

DeviceBuffer::DeviceBuffer(const CudaContext& ctx, std::string name, size_t bytes) : bytes_(bytes), name_(std::move(name)) {
  (void)ctx;  // the context's device is current (context.h)
  if (bytes == 0) return;
  const cudaError_t err = cudaMalloc(&data_, bytes);
  if (err == cudaSuccess) {
    note_allocation(static_cast<int64_t>(bytes));
    return;
  }
  (void)cudaGetLastError();
  data_ = nullptr;
  size_t free_bytes = 0, total_bytes = 0;
  (void)cudaMemGetInfo(&free_bytes, &total_bytes);
  const ErrorKind kind = err == cudaErrorMemoryAllocation ? ErrorKind::OutOfMemory : ErrorKind::Cuda;
  fail(kind, "cannot allocate ", name_, " on GPU ", ctx.device(), ": needs ", bytes, " bytes (", bytes >> 20,
       " MiB), ", free_bytes, " bytes (", free_bytes >> 20, " MiB) free of ", total_bytes >> 20, " MiB (",
       cudaGetErrorName(err), "); lower per_device_train_batch_size or max_length (activations grow with the "
       "tokens of a micro-batch), close other programs on this GPU, or use one with more memory");
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) {
    (void)cudaFree(data_);
    note_allocation(-static_cast<int64_t>(bytes_));
  }
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)), name_(std::move(other.name_)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) {
      (void)cudaFree(data_);
      note_allocation(-static_cast<int64_t>(bytes_));
    }
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    name_ = std::move(other.name_);
  }
  return *this;
}

Tensor DeviceBuffer::view(DType dtype, Shape shape, size_t offset) const {
  const size_t need = (static_cast<size_t>(shape.numel()) * dtype_bits(dtype) + 7) / 8;
  KTO_ASSERT(offset + need <= bytes_, name_, ": view of ", need, " bytes at ", offset, " exceeds ", bytes_);
  return Tensor{static_cast<char*>(data_) + offset, dtype, shape, Device::Cuda};
}

void cuda_copy_to_device(CudaContext& ctx, const Tensor& dst, const void* host_src) {
  KTO_ASSERT(dst.device == Device::Cuda, "cuda_copy_to_device: destination is not a device tensor");
  if (dst.nbytes() == 0) return;
  KTO_CUDA_CHECK(cudaMemcpyAsync(dst.data, host_src, dst.nbytes(), cudaMemcpyHostToDevice, cuda::stream_of(ctx)),
                 "cuda_copy_to_device");
  ctx.synchronize("cuda_copy_to_device");
}

void cuda_copy_to_host(CudaContext& ctx, void* host_dst, const Tensor& src) {
  KTO_ASSERT(src.device == Device::Cuda, "cuda_copy_to_host: source is not a device tensor");
  if (src.nbytes() == 0) return;
  KTO_CUDA_CHECK(cudaMemcpyAsync(host_dst, src.data, src.nbytes(), cudaMemcpyDeviceToHost, cuda::stream_of(ctx)),
                 "cuda_copy_to_host");
  ctx.synchronize("cuda_copy_to_host");
}

void cuda_copy_device(CudaContext& ctx, const Tensor& dst, const Tensor& src) {
  KTO_ASSERT(dst.device == Device::Cuda && src.device == Device::Cuda && dst.nbytes() == src.nbytes(),
             "cuda_copy_device: needs two device tensors of the same byte size");
  if (dst.nbytes() == 0) return;
  KTO_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, dst.nbytes(), cudaMemcpyDeviceToDevice, cuda::stream_of(ctx)),
                 "cuda_copy_device");
}

void cuda_fill_zero(CudaContext& ctx, const Tensor& dst) {
  KTO_ASSERT(dst.device == Device::Cuda, "cuda_fill_zero: not a device tensor");
  if (dst.nbytes() == 0) return;
  KTO_CUDA_CHECK(cudaMemsetAsync(dst.data, 0, dst.nbytes(), cuda::stream_of(ctx)), "cuda_fill_zero");
}

}  // namespace kto
