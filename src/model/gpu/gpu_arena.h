// A bump allocator over one device buffer, for the GPU model's per-pass tensors (DESIGN.md §3:
// memory is planned, not discovered). Every pass carves its tensors in a fixed order; the same
// carving code run against a counting arena (no memory) gives the bytes the pass needs, so the
// size comes from the code that uses it instead of a formula that could drift from it.
// Not thread-safe; views stay valid until reset() or the arena is reallocated.
#pragma once

#include <cstddef>
#include <string>

#include "backend/cuda/context.h"
#include "tensor/tensor.h"

namespace kto {

// Every device tensor of the GPU model starts on a 256-byte boundary (arenas and weight buffers).
constexpr size_t gpu_aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

class GpuArena {
 public:
  // A counting arena: take() returns views with no memory, used() sums what was asked for.
  GpuArena() = default;

  // Makes room for `bytes` (reallocating only when the current buffer is smaller; every earlier
  // view becomes invalid then) and resets. OutOfMemory names the arena.
  void reserve(const CudaContext& ctx, const std::string& name, size_t bytes);
  void reset() { used_ = 0; }

  // The next [shape] tensor of `dtype`, 256-byte aligned. A real arena asserts that it fits
  // (a pass that outgrows its plan is a bug).
  Tensor take(DType dtype, Shape shape);

  size_t used() const { return used_; }
  size_t capacity() const { return buffer_.bytes(); }
  bool counting() const { return counting_; }

 private:
  DeviceBuffer buffer_;
  size_t used_ = 0;
  bool counting_ = true;
};

// Runs `carve(arena)` against a counting arena and returns the bytes it takes.
template <typename Carve>
size_t gpu_arena_measure(Carve&& carve) {
  GpuArena counter;
  carve(counter);
  return counter.used();
}

}  // namespace kto
