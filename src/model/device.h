// Choosing where a model runs: the `device` setting of configs and `--device` of the verbs
// ("auto", "cpu", "cuda", "cuda:N"), and what `kto inspect` and the banners say about GPUs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kto {

enum class DeviceKind : uint8_t { Cpu, Cuda };

struct DeviceChoice {
  DeviceKind kind = DeviceKind::Cpu;
  int index = 0;  // GPU ordinal (CUDA_VISIBLE_DEVICES applies)
};

// "auto" is $KTO_DEVICE when set, else the first GPU when this build has the CUDA backend and one
// is visible, else the CPU.
// Throws Error(InvalidArgument) for an unknown name, Error(Unsupported) for "cuda" in a build
// without CUDA, Error(Cuda) for "cuda" / "cuda:N" when no such GPU is visible, each saying what
// to do.
DeviceChoice device_resolve(const std::string& request);
std::string device_name(const DeviceChoice& choice);  // "cpu", "cuda:0"

bool device_cuda_built();
// One line per visible GPU (name, compute capability, memory total/free, driver and runtime
// CUDA versions); empty without GPUs or without the CUDA backend.
std::vector<std::string> device_gpu_lines();
// Bytes free on GPU `choice` now (cudaMemGetInfo, which first creates this process's CUDA context:
// the context is already taken from it); 0 for the CPU or without the CUDA backend.
int64_t device_free_bytes(const DeviceChoice& choice);

}  // namespace kto
