// Error handling of the CUDA backend: without a GPU, creating a context fails with a clear
// Error(Cuda) (this test runs in CI, where there is none); with one, a bad device index fails the
// same way and an impossible allocation is Error(OutOfMemory) naming the buffer, bytes and free memory.
#include <gtest/gtest.h>

#include "backend/cuda/context.h"
#include "cuda_test_util.h"

namespace kto {
namespace {

TEST(CudaErrors, NoGpuGivesClearError) {
  if (test::gpu_available()) GTEST_SKIP() << "a GPU is visible";
  try {
    CudaContext ctx(0);
    FAIL() << "expected kto::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Cuda);
    EXPECT_NE(std::string(e.what()).find("no CUDA GPU is visible"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("CPU backend"), std::string::npos) << e.what();
  }
}

TEST(CudaErrors, MissingDeviceIndexGivesClearError) {
  KTO_REQUIRE_GPU();
  try {
    CudaContext ctx(cuda_device_count());
    FAIL() << "expected kto::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Cuda);
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

TEST(CudaErrors, OutOfMemoryNamesBufferBytesAndFree) {
  KTO_REQUIRE_GPU();
  const size_t huge = size_t{1} << 50;  // 1 PiB
  try {
    DeviceBuffer buffer(test::gpu(), "activation arena", huge);
    FAIL() << "expected kto::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::OutOfMemory) << message;
    EXPECT_NE(message.find("activation arena"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(huge)), std::string::npos) << message;
    EXPECT_NE(message.find("free"), std::string::npos) << message;
  }
  // The failed allocation leaves the context usable.
  DeviceBuffer small(test::gpu(), "after oom", 1024);
  test::gpu().synchronize("after oom");
}

}  // namespace
}  // namespace kto
