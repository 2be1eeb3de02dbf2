// Weights as whole objects: zero-filled twins (full fine-tuning's gradients), deep copies, and
// the unsharded float32 model.safetensors transformers' save_pretrained writes (state-dict
// names, a tied lm_head left out as save_pretrained does).
#include <cstring>
#include <functional>

#include "formats/safetensors.h"
#include "model/weights.h"

namespace kto {
namespace {

// Calls fn(src_tensor, dst_tensor) for every tensor slot of a Weights pair, dst resized alike.
void for_each_slot(const Weights& src, Weights& dst, const std::function<void(const HostTensor&, HostTensor&)>& fn) {
  fn(src.embed, dst.embed);
  dst.layers.resize(src.layers.size());
  for (size_t i = 0; i < src.layers.size(); ++i) {
    const LayerWeights& s = src.layers[i];
    LayerWeights& d = dst.layers[i];
    for (auto [a, b] : {std::pair{&s.input_norm, &d.input_norm}, {&s.q_proj, &d.q_proj}, {&s.q_bias, &d.q_bias},
                        {&s.k_proj, &d.k_proj}, {&s.k_bias, &d.k_bias}, {&s.v_proj, &d.v_proj}, {&s.v_bias, &d.v_bias},
                        {&s.o_proj, &d.o_proj}, {&s.o_bias, &d.o_bias}, {&s.q_norm, &d.q_norm}, {&s.k_norm, &d.k_norm},
                        {&s.post_attention_norm, &d.post_attention_norm}, {&s.gate_proj, &d.gate_proj},
                        {&s.gate_bias, &d.gate_bias}, {&s.up_proj, &d.up_proj}, {&s.up_bias, &d.up_bias},
                        {&s.down_proj, &d.down_proj}, {&s.down_bias, &d.down_bias}}) {
      fn(*a, *b);
    }
  }
  fn(src.final_norm, dst.final_norm);
  fn(src.lm_head, dst.lm_head);
}

}  // namespace

Weights weights_zeros_like(const Weights& weights) {
  Weights out;
  for_each_slot(weights, out, [](const HostTensor& src, HostTensor& dst) {
    dst = src.empty() ? HostTensor() : HostTensor(src.dtype(), src.shape());
  });
  return out;
}

Weights weights_copy(const Weights& weights) {
  Weights out;
  for_each_slot(weights, out, [](const HostTensor& src, HostTensor& dst) {
    if (src.empty()) return;
    dst = HostTensor(src.dtype(), src.shape());
    std::memcpy(dst.view().data, src.view().data, src.view().nbytes());
  });
  for (size_t l = 0; l < weights.layers.size(); ++l) {  // NF4 projections, buffer by buffer
    for (size_t i = 0; i < out.layers[l].nf4.size(); ++i) {
      const Nf4Tensor& s = weights.layers[l].nf4[i];
      Nf4Tensor& d = out.layers[l].nf4[i];
      d.nested_offset = s.nested_offset, d.rows = s.rows, d.cols = s.cols, d.blocksize = s.blocksize;
      d.nested_blocksize = s.nested_blocksize, d.dtype = s.dtype;
      for (auto [a, b] : {std::pair{&s.packed, &d.packed}, {&s.absmax, &d.absmax}, {&s.nested_absmax, &d.nested_absmax},
                          {&s.nested_code, &d.nested_code}, {&s.code, &d.code}}) {
        if (a->empty()) continue;
        *b = HostTensor(a->dtype(), a->shape());
        std::memcpy(b->view().data, a->view().data, a->view().nbytes());
      }
    }
  }
  return out;
}

void weights_save_safetensors(const Weights& weights, const std::string& path) {
  std::vector<SafetensorsWriteTensor> tensors;
  for (const NamedTensor& p : weights.parameters()) {
    std::vector<int64_t> shape(p.tensor.shape.dims.begin(), p.tensor.shape.dims.begin() + p.tensor.shape.rank);
    tensors.push_back({p.name, "F32", shape, p.tensor.data, p.tensor.nbytes()});
  }
  safetensors_write(path, std::move(tensors));
}

}  // namespace kto
