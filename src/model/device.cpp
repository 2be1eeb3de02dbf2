// device_resolve and the GPU report; the only place outside model/gpu/ that asks whether the
// CUDA backend was built (KTO_WITH_CUDA).
#include "model/device.h"

#include <cstdio>
#include <cstdlib>

#include "model/accelerator.h"
#include "util/error.h"

#if KTO_WITH_CUDA
#include "backend/cuda/context.h"
#endif

namespace kto {
namespace {

[[maybe_unused]] [[noreturn]] void no_cuda_build(const std::string& request) {
  fail(ErrorKind::Unsupported, "device '", request,
       "': this kto was built without the CUDA backend (nvcc was not found at build time); install the CUDA "
       "toolkit and rebuild (cmake -DKTO_CUDA=ON), or use device: cpu");
}

}  // namespace

bool device_cuda_built() { return KTO_WITH_CUDA != 0; }

DeviceChoice device_resolve(const std::string& request) {
  if (request == "cpu") return {DeviceKind::Cpu, 0};
  if (request == "auto" || request.empty()) {
    const char* env = std::getenv("KTO_DEVICE");
    if (env && *env && std::string(env) != "auto") return device_resolve(env);
#if KTO_WITH_CUDA
    if (cuda_device_count() > 0) return {DeviceKind::Cuda, 0};
#endif
    return {DeviceKind::Cpu, 0};
  }
  int index = 0;
  if (request != "cuda") {
    char extra = 0;
    if (std::sscanf(request.c_str(), "cuda:%d%c", &index, &extra) != 1 || index < 0) {
      fail(ErrorKind::InvalidArgument, "unknown device '", request, "': use auto, cpu, cuda or cuda:N");
    }
  }
#if KTO_WITH_CUDA
  const int n = cuda_device_count();
  if (n == 0) {
    fail(ErrorKind::Cuda, "device '", request, "': no CUDA GPU is visible (no NVIDIA driver, or CUDA_VISIBLE_DEVICES "
         "hides them); run on a machine with a GPU, or use device: cpu");
  }
  if (index >= n) {
    fail(ErrorKind::Cuda, "device '", request, "': only ", n, " GPU(s) visible (cuda:0 .. cuda:", n - 1, ")");
  }
  return {DeviceKind::Cuda, index};
#else
  no_cuda_build(request);
#endif
}

std::string device_name(const DeviceChoice& choice) {
  return choice.kind == DeviceKind::Cpu ? "cpu" : "cuda:" + std::to_string(choice.index);
}

std::vector<std::string> device_gpu_lines() {
  std::vector<std::string> lines;
#if KTO_WITH_CUDA
  for (int i = 0; i < cuda_device_count(); ++i) {
    const CudaDeviceInfo info = cuda_device_info(i);
    char line[512];
    std::snprintf(line, sizeof line, "cuda:%d %s (sm_%d%d, %.1f GiB, %.1f GiB free, driver CUDA %s, runtime %s)", i,
                  info.name.c_str(), info.cc_major, info.cc_minor, static_cast<double>(info.total_bytes) / (1 << 30),
                  static_cast<double>(info.free_bytes) / (1 << 30), cuda_version_string(info.driver_version).c_str(),
                  cuda_version_string(info.runtime_version).c_str());
    lines.emplace_back(line);
  }
#endif
  return lines;
}

int64_t device_free_bytes(const DeviceChoice& choice) {
  if (choice.kind != DeviceKind::Cuda) return 0;
#if KTO_WITH_CUDA
  return cuda_device_info(choice.index).free_bytes;
#else
  return 0;
#endif
}

#if !KTO_WITH_CUDA
std::unique_ptr<ModelAccelerator> accelerator_create_cuda(const ModelConfig&, const Weights&, const HostTensor&, int) {
  no_cuda_build("cuda");
}
#endif

}  // namespace kto
