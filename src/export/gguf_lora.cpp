// GGUF LoRA adapter export, as llama.cpp's convert_lora_to_gguf.py writes one: general.type
// "adapter", adapter.type "lora", adapter.lora.alpha, no architecture hyper-parameters, tensors
// "<gguf base name>.lora_a" / ".lora_b" whose B rows are permuted like the base q/k weights for
// the llama architecture (LoraTorchTensor.permute). llama.cpp scales by alpha / rank (rank =
// lora_b's ne[0]), so rsLoRA's alpha/√r is written as alpha' = alpha·√r (formats.md trap 8).
#include <cmath>

#include "export/gguf_export.h"
#include "export/gguf_internal.h"
#include "export/gguf_quant.h"
#include "util/error.h"
#include "util/log.h"

namespace kto {
namespace {

const char* gguf_module_name(LoraModule m) {
  switch (m) {
    case LoraModule::Q: return "attn_q";
    case LoraModule::K: return "attn_k";
    case LoraModule::V: return "attn_v";
    case LoraModule::O: return "attn_output";
    case LoraModule::Gate: return "ffn_gate";
    case LoraModule::Up: return "ffn_up";
    case LoraModule::Down: return "ffn_down";
  }
  return "?";
}

// convert_hf_to_gguf's prepare_tensors for a LoRA tensor: 2-D → the outtype; q8_0 needs
// ncols % 32 == 0, else F16 (its QuantError fallback).
GgmlType lora_type(GgufOutType out, int64_t n_cols) {
  switch (out) {
    case GgufOutType::F32: return GgmlType::F32;
    case GgufOutType::F16: return GgmlType::F16;
    case GgufOutType::BF16: return GgmlType::BF16;
    case GgufOutType::Q8_0: return n_cols % 32 == 0 ? GgmlType::Q8_0 : GgmlType::F16;
    default:
      fail(ErrorKind::Unsupported, "GGUF LoRA tensors are written as f32, f16, bf16 or q8_0 (convert_lora_to_gguf's "
           "choices), not ", gguf_outtype_name(out));
  }
}

}  // namespace

void gguf_export_lora(const ModelConfig& config, const LoraAdapter& adapter, const std::string& output,
                      GgufOutType outtype, const std::string& name) {
  const std::string arch = gguf_arch(config);
  const LoraConfig& c = adapter.config;
  const double alpha = c.use_rslora ? c.alpha * std::sqrt(static_cast<double>(c.rank)) : c.alpha;
  if (c.use_rslora) {
    log_info("rsLoRA adapter: writing adapter.lora.alpha = ", alpha, " (alpha·√r) so that llama.cpp's alpha/r "
             "equals the trained scale alpha/√r = ", c.scale());
  }
  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("general.type", "adapter");
  w.add_string("adapter.type", "lora");
  w.add_string("general.name", name);
  w.add_f32("adapter.lora.alpha", static_cast<float>(alpha));
  w.add_u32("general.quantization_version", 2);
  const bool permute = arch == "llama";
  for (size_t i = 0; i < adapter.layers.size(); ++i) {
    for (LoraModule m : kLoraModules) {
      const LoraWeights* lw = adapter.find(static_cast<int64_t>(i), m);
      if (!lw) continue;
      const std::string base = str_cat("blk.", i, ".", gguf_module_name(m), ".weight");
      const Tensor a = lw->a.view(), b = lw->b.view();
      const int64_t rank = a.shape[0], in = a.shape[1], out = b.shape[0];
      const GgmlType ta = lora_type(outtype, in), tb = lora_type(outtype, rank);
      w.add_tensor(base + ".lora_a", {in, rank}, ta, [a, ta, rank, in](std::vector<uint8_t>& o) {
        gguf_quantize(ta, a.f32(), rank, in, o);
      });
      const int64_t heads = !permute ? 0 : m == LoraModule::Q ? config.n_heads : m == LoraModule::K ? config.n_heads_kv : 0;
      w.add_tensor(base + ".lora_b", {rank, out}, tb, [b, tb, rank, out, heads](std::vector<uint8_t>& o) {
        if (heads > 0) {
          const std::vector<float> p = gguf_llama_permute(b.f32(), out, rank, heads);
          gguf_quantize(tb, p.data(), out, rank, o);
        } else {
          gguf_quantize(tb, b.f32(), out, rank, o);
        }
      });
    }
  }
  w.write(output);
  log_info("wrote ", output, " (LoRA adapter, ", gguf_outtype_name(outtype), ", architecture ", arch, ")");
}

}  // namespace kto
