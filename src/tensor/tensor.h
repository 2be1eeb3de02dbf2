// Shapes, non-owning tensor views and owning host tensors.
//
// Dimension glossary used across the code base (host code spells them out):
//   T tokens of a packed micro-batch   S sequences          D hidden size (model width)
//   H query heads   Hkv key/value heads   Dh head dim    F ffn (intermediate) size
//   V vocabulary    R LoRA rank           L layers
// Activations are row-major [T, width] over all tokens of a packed batch (DESIGN.md §3).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "tensor/dtype.h"
#include "util/error.h"

namespace kto {

constexpr int kMaxRank = 4;

struct Shape {
  std::array<int64_t, kMaxRank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  int64_t operator[](int i) const { return dims[static_cast<size_t>(i)]; }
  int64_t numel() const;
  bool operator==(const Shape& other) const;
  std::string str() const;  // "[2, 64]"
};

enum class Device : uint8_t { Cpu, Cuda };

// A view: pointer + dtype + shape, row-major contiguous. Does not own memory.
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Shape shape;
  Device device = Device::Cpu;

  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_bits(dtype) / 8; }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }
  float* f32() const {
    KTO_ASSERT(dtype == DType::F32, "tensor is ", dtype_name(dtype), ", not f32");
    return static_cast<float*>(data);
  }
};

// Owning, 64-byte aligned, zero-initialised host memory with a Tensor view.
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType dtype, Shape shape);

  Tensor view() const { return {data_.get(), dtype_, shape_, Device::Cpu}; }
  float* f32() const { return view().f32(); }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return shape_.numel(); }
  bool empty() const { return !data_; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  DType dtype_ = DType::F32;
  Shape shape_;
};

}  // namespace kto
