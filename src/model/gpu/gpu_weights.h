// The GPU model's resident state: the frozen base weights as bf16 device tensors (one planned
// buffer, DESIGN.md §4) and a device mirror of a LoRA adapter (bf16 working copies of A and B
// that the projections read, fp32 gradients they accumulate into). The fp32 master weights and
// the optimizer stay with the host LoraAdapter; the mirror re-uploads when its version changes.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backend/cuda/context.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/weights.h"
#include "tensor/nf4.h"
#include "tensor/tensor.h"

namespace kto {

// Views into GpuWeights::buffer, shaped as LayerWeights; absent tensors have no data.
struct GpuLayerWeights {
  Tensor input_norm, post_attention_norm;  // [D] bf16
  Tensor q_norm, k_norm;                   // [Dh] bf16 (Qwen3)
  std::array<Tensor, kLoraModuleCount> proj;  // per LoraModule: [out, in] bf16 (absent when NF4)
  std::array<Nf4View, kLoraModuleCount> nf4;  // per LoraModule: the 4-bit weight as stored (QLoRA)
  std::array<Tensor, kLoraModuleCount> bias;  // per LoraModule: [out] bf16, optional
};

struct GpuWeights {
  DeviceBuffer buffer;
  Tensor embed;       // [V, D] bf16
  Tensor final_norm;  // [D] bf16
  Tensor head;        // [V, D] bf16: lm_head, or the embedding when tied
  Tensor inv_freq;    // [Dh/2] f32
  Tensor dequant;     // [largest NF4 projection] bf16: where one NF4 projection is dequantised
  std::vector<GpuLayerWeights> layers;
};

// The bf16 [out, in] weight of a projection, for an op about to read it: the resident tensor, or
// for an NF4 projection its values dequantised into `weights.dequant` (valid until the next call;
// every op runs on ctx's stream, so the next dequantisation waits for this weight's readers).
Tensor gpu_projection(CudaContext& ctx, const GpuWeights& weights, int64_t layer, LoraModule module);

// Converts every weight to bf16 (round to nearest even, as torch's .to(bfloat16)) and copies it
// into one device buffer; NF4 projections are copied as stored (4 bits a weight plus their block
// scales) and dequantised one at a time when used (gpu_projection), never the whole base at once.
// OutOfMemory names the buffer, the bytes needed and free.
GpuWeights gpu_weights_upload(CudaContext& ctx, const ModelConfig& config, const Weights& weights,
                              const HostTensor& inv_freq);

// Full fine-tuning: re-uploads every weight's bf16 copy after the host weights changed.
void gpu_weights_refresh(CudaContext& ctx, GpuWeights& device, const Weights& weights);
// fp32 gradients shaped as `weights` (the GpuWeights views are F32 here; a tied head aliases the
// embedding's), zeroed; and their sum into host gradients (grads += device).
GpuWeights gpu_grads_allocate(CudaContext& ctx, const ModelConfig& config, const Weights& weights);
void gpu_grads_zero(CudaContext& ctx, const GpuWeights& grads);
void gpu_grads_add_to_host(CudaContext& ctx, const GpuWeights& device, Weights& host);

struct GpuLoraModule {
  Tensor a, b;      // [R, in], [out, R] bf16 working copies; absent when not targeted
  Tensor d_a, d_b;  // [R, in], [out, R] f32 gradients, accumulated by the backward
};

struct GpuLora {
  uint64_t version = 0;  // of the adapter last uploaded; 0 = none
  float scale = 1.0f;
  double dropout = 0.0;
  int64_t max_rank = 0;
  DeviceBuffer params, grads;
  std::vector<std::array<GpuLoraModule, kLoraModuleCount>> layers;  // [L]

  const GpuLoraModule* find(int64_t layer, LoraModule module) const;
};

// Makes `mirror` hold `adapter`'s weights: uploads them unless adapter.version is the mirror's
// (version 0 always uploads). Reallocates only when the adapter's shapes change.
void gpu_lora_sync(CudaContext& ctx, GpuLora& mirror, const LoraAdapter& adapter);
void gpu_lora_zero_grads(CudaContext& ctx, GpuLora& mirror);
// adapter.d_a / d_b += the mirror's gradients (waits for the device).
void gpu_lora_add_grads(CudaContext& ctx, const GpuLora& mirror, LoraAdapter& adapter);

}  // namespace kto
