// Shape helpers and the aligned host allocation behind HostTensor.
#include "tensor/tensor.h"

#include <cstdlib>
#include <cstring>

namespace kto {

Shape::Shape(std::initializer_list<int64_t> d) {
  KTO_ASSERT(d.size() <= static_cast<size_t>(kMaxRank), "rank ", d.size(), " > ", kMaxRank);
  for (int64_t v : d) dims[static_cast<size_t>(rank++)] = v;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= dims[static_cast<size_t>(i)];
  return n;
}

bool Shape::operator==(const Shape& other) const {
  if (rank != other.rank) return false;
  for (int i = 0; i < rank; ++i) {
    if (dims[static_cast<size_t>(i)] != other.dims[static_cast<size_t>(i)]) return false;
  }
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[static_cast<size_t>(i)]);
  return s + "]";
}

void HostTensor::Free::operator()(void* p) const { std::free(p); }

HostTensor::HostTensor(DType dtype, Shape shape) : dtype_(dtype), shape_(shape) {
  size_t bytes = (static_cast<size_t>(shape.numel()) * dtype_bits(dtype) + 7) / 8;
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail(ErrorKind::OutOfMemory, "cannot allocate ", bytes, " bytes for a ", shape.str(), " tensor");
  std::memset(p, 0, rounded);
  data_.reset(p);
}

}  // namespace kto
