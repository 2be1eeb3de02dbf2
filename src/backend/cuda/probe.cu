// Whether this binary holds kernels the current GPU can run: a CUDA build carries SASS for the
// architectures it was compiled for (plus PTX of the newest, which the driver compiles for newer
// GPUs); for anything else every launch would fail with "no kernel image". Asking the runtime for
// a kernel's attributes finds that out before the first real op, with a message saying what to do.
#include "backend/cuda/context_impl.h"

namespace kto {
namespace {

__global__ void probe_kernel() {}

}  // namespace

namespace cuda {

void require_kernel_image(const cudaDeviceProp& props) {
  cudaFuncAttributes attributes{};
  const cudaError_t err = cudaFuncGetAttributes(&attributes, probe_kernel);
  if (err == cudaSuccess) return;
  (void)cudaGetLastError();
  if (err == cudaErrorNoKernelImageForDevice || err == cudaErrorInvalidDeviceFunction) {
    fail(ErrorKind::Unsupported, "this kto was built for CUDA architectures ", cuda_built_architectures(), " but ",
         props.name, " is sm_", props.major, props.minor, ": rebuild with -DCMAKE_CUDA_ARCHITECTURES=", props.major,
         props.minor, " (or use device: cpu)");
  }
  throw_cuda_error(err, "cudaFuncGetAttributes(probe_kernel)", "CudaContext", __FILE__, __LINE__);
}

}  // namespace cuda
}  // namespace kto
