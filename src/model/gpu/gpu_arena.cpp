// GpuArena: see gpu_arena.h.
#include "model/gpu/gpu_arena.h"

#include "util/error.h"

namespace kto {

void GpuArena::reserve(const CudaContext& ctx, const std::string& name, size_t bytes) {
  counting_ = false;
  used_ = 0;
  if (buffer_.bytes() >= bytes && buffer_.data()) return;
  buffer_ = DeviceBuffer();  // free first: the old and new buffers need not fit together
  buffer_ = DeviceBuffer(ctx, name, bytes);
}

Tensor GpuArena::take(DType dtype, Shape shape) {
  const size_t bytes = (static_cast<size_t>(shape.numel()) * dtype_bits(dtype) + 7) / 8;
  const size_t offset = used_;
  used_ += gpu_aligned(bytes);
  if (counting_) return Tensor{nullptr, dtype, shape, Device::Cuda};
  KTO_ASSERT(used_ <= buffer_.bytes(), buffer_.name(), ": a pass took ", used_, " bytes of its planned ",
             buffer_.bytes());
  return buffer_.view(dtype, shape, offset);
}

}  // namespace kto
