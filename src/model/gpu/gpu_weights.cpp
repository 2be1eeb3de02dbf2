// Uploading the base weights and mirroring a LoRA adapter; see gpu_weights.h.
#include "model/gpu/gpu_weights.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "backend/cuda/ops_cuda.h"
#include "model/gpu/gpu_arena.h"
#include "util/error.h"
#include "util/log.h"

namespace kto {
namespace {

// f32 → bf16 bits, element-wise (OpenMP over a large tensor).
std::vector<uint16_t> to_bf16(const Tensor& t) {
  std::vector<uint16_t> out(static_cast<size_t>(t.numel()));
  const float* src = t.f32();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 20))
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = f32_to_bf16(src[i]);
  return out;
}

// Lays tensors out one after the other in a buffer: a first pass (no buffer) sizes it, a second
// places the views and, for bf16 weights, uploads the values (f32 gradients are zeroed after).
enum class PackKind { Bf16Values, F32Zeros };

class Packer {
 public:
  Packer(CudaContext& ctx, const DeviceBuffer* buffer, PackKind kind) : ctx_(ctx), buffer_(buffer), kind_(kind) {}

  // The device tensor for `host` (an empty view when `host` is empty).
  Tensor place(const HostTensor& host) {
    if (host.empty()) return Tensor{};
    const DType dtype = kind_ == PackKind::Bf16Values ? DType::BF16 : DType::F32;
    const size_t offset = take(static_cast<size_t>(host.numel()) * dtype_bits(dtype) / 8);
    if (!buffer_) return Tensor{};
    Tensor dst = buffer_->view(dtype, host.shape(), offset);
    if (kind_ == PackKind::Bf16Values) {
      const std::vector<uint16_t> bits = to_bf16(host.view());
      cuda_copy_to_device(ctx_, dst, bits.data());
    }
    return dst;
  }
  // An NF4 weight's buffers as they are (bytes), each in its own aligned slot.
  Nf4View nf4(const Nf4Tensor& w) {
    Nf4View v = w.view();
    for (Tensor* t : {&v.packed, &v.absmax, &v.nested_absmax, &v.nested_code, &v.code}) {
      if (!t->data) continue;
      const size_t offset = take(t->nbytes());
      if (!buffer_) {
        *t = Tensor{};
        continue;
      }
      const Tensor dst = buffer_->view(t->dtype, t->shape, offset);
      cuda_copy_to_device(ctx_, dst, t->data);
      *t = dst;
    }
    return v;
  }
  // Room for a [shape] tensor of `dtype` that is written on the device later.
  Tensor reserve(DType dtype, Shape shape) {
    const size_t offset = take(static_cast<size_t>(shape.numel()) * dtype_bits(dtype) / 8);
    return buffer_ ? buffer_->view(dtype, shape, offset) : Tensor{};
  }
  Tensor f32(const HostTensor& host) {
    const size_t offset = take(static_cast<size_t>(host.numel()) * 4);
    if (!buffer_) return Tensor{};
    Tensor dst = buffer_->view(DType::F32, host.shape(), offset);
    cuda_copy_to_device(ctx_, dst, host.f32());
    return dst;
  }
  size_t used() const { return used_; }
  bool values() const { return kind_ == PackKind::Bf16Values; }

 private:
  size_t take(size_t bytes) {
    const size_t offset = used_;
    used_ += gpu_aligned(bytes);
    return offset;
  }
  CudaContext& ctx_;
  const DeviceBuffer* buffer_;
  PackKind kind_;
  size_t used_ = 0;
};

std::array<const HostTensor*, kLoraModuleCount> projections(const LayerWeights& lw) {
  return {&lw.q_proj, &lw.k_proj, &lw.v_proj, &lw.o_proj, &lw.gate_proj, &lw.up_proj, &lw.down_proj};
}
std::array<const HostTensor*, kLoraModuleCount> biases(const LayerWeights& lw) {
  return {&lw.q_bias, &lw.k_bias, &lw.v_bias, &lw.o_bias, &lw.gate_bias, &lw.up_bias, &lw.down_bias};
}

// The same order for every kind: gpu_grads_add_to_host walks it again.
void pack_weights(Packer& p, const ModelConfig& config, const Weights& w, const HostTensor* inv_freq, GpuWeights& out) {
  out.embed = p.place(w.embed);
  out.final_norm = p.place(w.final_norm);
  out.head = w.head_tied() ? out.embed : p.place(w.lm_head);
  if (inv_freq) out.inv_freq = p.f32(*inv_freq);
  out.layers.assign(static_cast<size_t>(config.n_layers), {});
  int64_t largest_nf4 = 0;
  for (const LayerWeights& lw : w.layers) {
    for (const Nf4Tensor& q : lw.nf4) largest_nf4 = std::max(largest_nf4, q.empty() ? 0 : q.rows * q.cols);
  }
  if (largest_nf4 > 0 && p.values()) out.dequant = p.reserve(DType::BF16, Shape{largest_nf4});
  for (size_t l = 0; l < out.layers.size(); ++l) {
    const LayerWeights& lw = w.layers[l];
    GpuLayerWeights& g = out.layers[l];
    g.input_norm = p.place(lw.input_norm);
    g.post_attention_norm = p.place(lw.post_attention_norm);
    g.q_norm = p.place(lw.q_norm);
    g.k_norm = p.place(lw.k_norm);
    const auto proj = projections(lw), bias = biases(lw);
    for (size_t m = 0; m < kLoraModuleCount; ++m) {
      if (lw.nf4[m].empty()) g.proj[m] = p.place(*proj[m]);
      else if (p.values()) g.nf4[m] = p.nf4(lw.nf4[m]);  // frozen: never a gradient
      g.bias[m] = p.place(*bias[m]);
    }
  }
}

GpuWeights pack(CudaContext& ctx, const ModelConfig& config, const Weights& weights, const HostTensor* inv_freq,
                PackKind kind, const char* name) {
  GpuWeights out;
  Packer sizer(ctx, nullptr, kind);
  pack_weights(sizer, config, weights, inv_freq, out);
  out.buffer = DeviceBuffer(ctx, name, sizer.used());
  Packer packer(ctx, &out.buffer, kind);
  pack_weights(packer, config, weights, inv_freq, out);
  return out;
}

// (host tensor, device view) for every weight, in pack order; a tied head appears once.
std::vector<std::pair<const HostTensor*, Tensor>> weight_pairs(const Weights& w, const GpuWeights& g) {
  std::vector<std::pair<const HostTensor*, Tensor>> out{{&w.embed, g.embed}, {&w.final_norm, g.final_norm}};
  if (!w.head_tied()) out.emplace_back(&w.lm_head, g.head);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& lw = w.layers[l];
    const GpuLayerWeights& gl = g.layers[l];
    for (auto [h, t] : {std::pair{&lw.input_norm, gl.input_norm}, std::pair{&lw.post_attention_norm, gl.post_attention_norm},
                        std::pair{&lw.q_norm, gl.q_norm}, std::pair{&lw.k_norm, gl.k_norm}}) {
      out.emplace_back(h, t);
    }
    const auto proj = projections(lw), bias = biases(lw);
    for (size_t m = 0; m < kLoraModuleCount; ++m) out.emplace_back(proj[m], gl.proj[m]), out.emplace_back(bias[m], gl.bias[m]);
  }
  std::erase_if(out, [](const auto& p) { return p.first->empty(); });
  return out;
}

}  // namespace

GpuWeights gpu_weights_upload(CudaContext& ctx, const ModelConfig& config, const Weights& weights,
                              const HostTensor& inv_freq) {
  return pack(ctx, config, weights, &inv_freq, PackKind::Bf16Values,
              weights_have_nf4(weights) ? "model weights (NF4 projections, bf16 rest)" : "model weights (bf16)");
}

Tensor gpu_projection(CudaContext& ctx, const GpuWeights& weights, int64_t layer, LoraModule module) {
  const GpuLayerWeights& w = weights.layers[static_cast<size_t>(layer)];
  const size_t m = static_cast<size_t>(module);
  if (!w.nf4[m].present()) return w.proj[m];
  const Nf4View& q = w.nf4[m];
  const Tensor out{weights.dequant.data, DType::BF16, Shape{q.rows, q.cols}, Device::Cuda};
  nf4_dequantize_cuda(q, out, ctx);
  return out;
}

void gpu_weights_refresh(CudaContext& ctx, GpuWeights& device, const Weights& weights) {
  for (const auto& [host, t] : weight_pairs(weights, device)) {
    const std::vector<uint16_t> bits = to_bf16(host->view());
    cuda_copy_to_device(ctx, t, bits.data());
  }
}

GpuWeights gpu_grads_allocate(CudaContext& ctx, const ModelConfig& config, const Weights& weights) {
  GpuWeights out = pack(ctx, config, weights, nullptr, PackKind::F32Zeros, "full fine-tuning gradients (f32)");
  gpu_grads_zero(ctx, out);
  return out;
}

void gpu_grads_zero(CudaContext& ctx, const GpuWeights& grads) {
  cuda_fill_zero(ctx, grads.buffer.view(DType::U8, Shape{static_cast<int64_t>(grads.buffer.bytes())}));
}

void gpu_grads_add_to_host(CudaContext& ctx, const GpuWeights& device, Weights& host) {
  std::vector<float> staging;
  for (const auto& [h, t] : weight_pairs(host, device)) {
    staging.resize(static_cast<size_t>(t.numel()));
    cuda_copy_to_host(ctx, staging.data(), t);
    float* dst = const_cast<HostTensor*>(h)->f32();
    for (size_t i = 0; i < staging.size(); ++i) dst[i] += staging[i];
  }
}

const GpuLoraModule* GpuLora::find(int64_t layer, LoraModule module) const {
  const GpuLoraModule& m = layers[static_cast<size_t>(layer)][static_cast<size_t>(module)];
  return m.a.data ? &m : nullptr;
}

namespace {

// Visits every targeted module of `adapter` with its host weights and mirror slot.
void for_each_module(const LoraAdapter& adapter, GpuLora& mirror,
                     const std::function<void(const LoraWeights&, GpuLoraModule&)>& visit) {
  for (size_t l = 0; l < adapter.layers.size(); ++l) {
    for (size_t m = 0; m < kLoraModuleCount; ++m) {
      const LoraWeights& w = adapter.layers[l].modules[m];
      if (w.enabled()) visit(w, mirror.layers[l][m]);
    }
  }
}

bool same_layout(const GpuLora& mirror, const LoraAdapter& adapter) {
  if (mirror.layers.size() != adapter.layers.size()) return false;
  bool same = true;
  for (size_t l = 0; l < adapter.layers.size() && same; ++l) {
    for (size_t m = 0; m < kLoraModuleCount; ++m) {
      const LoraWeights& w = adapter.layers[l].modules[m];
      const GpuLoraModule& g = mirror.layers[l][m];
      if (w.enabled() != (g.a.data != nullptr) || (w.enabled() && (!(w.a.shape() == g.a.shape) ||
                                                                   !(w.b.shape() == g.b.shape)))) {
        same = false;
      }
    }
  }
  return same;
}

void allocate(CudaContext& ctx, GpuLora& mirror, const LoraAdapter& adapter) {
  mirror = GpuLora{};
  mirror.layers.assign(adapter.layers.size(), {});
  size_t param_bytes = 0, grad_bytes = 0;
  for_each_module(adapter, mirror, [&](const LoraWeights& w, GpuLoraModule&) {
    param_bytes += gpu_aligned(static_cast<size_t>(w.a.numel()) * 2) + gpu_aligned(static_cast<size_t>(w.b.numel()) * 2);
    grad_bytes += gpu_aligned(static_cast<size_t>(w.a.numel()) * 4) + gpu_aligned(static_cast<size_t>(w.b.numel()) * 4);
  });
  mirror.params = DeviceBuffer(ctx, "LoRA weights (bf16)", param_bytes);
  mirror.grads = DeviceBuffer(ctx, "LoRA gradients (f32)", grad_bytes);
  size_t p = 0, g = 0;
  for_each_module(adapter, mirror, [&](const LoraWeights& w, GpuLoraModule& m) {
    m.a = mirror.params.view(DType::BF16, w.a.shape(), p), p += gpu_aligned(static_cast<size_t>(w.a.numel()) * 2);
    m.b = mirror.params.view(DType::BF16, w.b.shape(), p), p += gpu_aligned(static_cast<size_t>(w.b.numel()) * 2);
    m.d_a = mirror.grads.view(DType::F32, w.a.shape(), g), g += gpu_aligned(static_cast<size_t>(w.a.numel()) * 4);
    m.d_b = mirror.grads.view(DType::F32, w.b.shape(), g), g += gpu_aligned(static_cast<size_t>(w.b.numel()) * 4);
    mirror.max_rank = std::max(mirror.max_rank, w.a.shape()[0]);
  });
  cuda_fill_zero(ctx, Tensor{mirror.grads.data(), DType::U8, Shape{static_cast<int64_t>(grad_bytes)}, Device::Cuda});
}

}  // namespace

namespace {

// Every targeted module's (host weights, mirror slot), in layer and module order.
std::vector<std::pair<LoraWeights*, GpuLoraModule*>> module_list(const LoraAdapter& adapter, GpuLora& mirror) {
  std::vector<std::pair<LoraWeights*, GpuLoraModule*>> out;
  for (size_t l = 0; l < adapter.layers.size(); ++l) {
    for (size_t m = 0; m < kLoraModuleCount; ++m) {
      const LoraWeights& w = adapter.layers[l].modules[m];
      if (w.enabled()) out.emplace_back(const_cast<LoraWeights*>(&w), &mirror.layers[l][m]);
    }
  }
  return out;
}

size_t offset_in(const DeviceBuffer& buffer, const Tensor& t) {
  return static_cast<size_t>(static_cast<const char*>(t.data) - static_cast<const char*>(buffer.data()));
}

}  // namespace

void gpu_lora_sync(CudaContext& ctx, GpuLora& mirror, const LoraAdapter& adapter) {
  if (adapter.version != 0 && adapter.version == mirror.version) return;
  if (!same_layout(mirror, adapter) || !mirror.params.data()) allocate(ctx, mirror, adapter);
  // One host image of the whole bf16 buffer, converted in parallel, then one copy.
  std::vector<uint16_t> image(mirror.params.bytes() / 2, 0);
  const auto modules = module_list(adapter, mirror);
  const int64_t n = static_cast<int64_t>(modules.size());
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < n; ++i) {
    const auto [w, g] = modules[static_cast<size_t>(i)];
    for (auto [host, device] : {std::pair{&w->a, &g->a}, std::pair{&w->b, &g->b}}) {
      uint16_t* dst = image.data() + offset_in(mirror.params, *device) / 2;
      const float* src = host->f32();
      for (int64_t k = 0; k < host->numel(); ++k) dst[k] = f32_to_bf16(src[k]);
    }
  }
  cuda_copy_to_device(ctx, mirror.params.view(DType::U8, Shape{static_cast<int64_t>(mirror.params.bytes())}), image.data());
  mirror.scale = adapter.scale();
  mirror.dropout = adapter.config.dropout;
  mirror.version = adapter.version;
}

void gpu_lora_zero_grads(CudaContext& ctx, GpuLora& mirror) {
  if (!mirror.grads.data()) return;
  cuda_fill_zero(ctx, Tensor{mirror.grads.data(), DType::U8, Shape{static_cast<int64_t>(mirror.grads.bytes())},
                             Device::Cuda});
}

void gpu_lora_add_grads(CudaContext& ctx, const GpuLora& mirror, LoraAdapter& adapter) {
  // One copy of the whole fp32 gradient buffer, then the adds in parallel.
  std::vector<float> image(mirror.grads.bytes() / 4);
  cuda_copy_to_host(ctx, image.data(), mirror.grads.view(DType::U8, Shape{static_cast<int64_t>(mirror.grads.bytes())}));
  const auto modules = module_list(adapter, const_cast<GpuLora&>(mirror));
  const int64_t n = static_cast<int64_t>(modules.size());
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < n; ++i) {
    const auto [w, g] = modules[static_cast<size_t>(i)];
    for (auto [host, device] : {std::pair{&w->d_a, &g->d_a}, std::pair{&w->d_b, &g->d_b}}) {
      const float* src = image.data() + offset_in(mirror.grads, *device) / 4;
      float* dst = host->f32();
      for (int64_t k = 0; k < host->numel(); ++k) dst[k] += src[k];
    }
  }
}

}  // namespace kto
