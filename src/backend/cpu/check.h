// Argument checks and the parallelism threshold shared by the CPU ops: shape/dtype mismatches are programming errors of the
// caller (the model layer validates user input before it reaches an op), so they assert.
#pragma once

#include <initializer_list>

#include "tensor/tensor.h"
#include "util/error.h"

namespace kto::cpu {

// Below this many element-operations an op runs on the calling thread: waking an OpenMP team
// costs more than tiny ops (decode steps of small models) and hurts badly on a loaded machine.
constexpr int64_t kParallelMinWork = int64_t{1} << 15;

inline bool present(const Tensor& t) { return t.data != nullptr; }

// Asserts that `t` is a host tensor of `dtype` with exactly `dims`.
inline void check_tensor(const Tensor& t, const char* name, DType dtype, std::initializer_list<int64_t> dims) {
  Shape want(dims);
  KTO_ASSERT(t.data != nullptr, name, " is missing");
  KTO_ASSERT(t.device == Device::Cpu, name, " is not a host tensor");
  KTO_ASSERT(t.dtype == dtype, name, " is ", dtype_name(t.dtype), ", expected ", dtype_name(dtype));
  KTO_ASSERT(t.shape == want, name, " has shape ", t.shape.str(), ", expected ", want.str());
}

}  // namespace kto::cpu
