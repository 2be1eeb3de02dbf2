// What the model-level GPU tests share: skipping without a GPU and the device they run on.
#pragma once

#include <gtest/gtest.h>

#include "model/device.h"

// Skips the test when no CUDA GPU is visible (the CPU-only CI runs these binaries too).
#define KTO_REQUIRE_GPU()                                                           \
  do {                                                                              \
    if (::kto::device_gpu_lines().empty()) GTEST_SKIP() << "no CUDA GPU visible: skipped"; \
  } while (0)

namespace kto::test {
inline constexpr DeviceChoice kGpu{DeviceKind::Cuda, 0};
}  // namespace kto::test
