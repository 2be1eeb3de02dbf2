// GGUF model export: general.* and {arch}.* keys as convert_hf_to_gguf's TextModel /
// LlamaModel / Qwen2Model.set_gguf_parameters write them, llama.cpp tensor names
// (gguf-py tensor_mapping), LlamaModel.permute for q/k rows, llama3 rope_freqs
// (LlamaModel.generate_extra_tensors) and the per-tensor types of prepare_tensors /
// llama-quant.cpp (llama_tensor_get_type_impl, tensor_type_fallback).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "export/gguf_export.h"
#include "export/gguf_internal.h"
#include "export/gguf_quant.h"
#include "export/gguf_tokenizer.h"
#include "export/modelfile.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {
namespace {

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
bool use_more_bits(int64_t layer, int64_t n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

GgmlType shape_fallback(GgmlType type, int64_t n_cols) {
  if (n_cols % ggml_type_block_elems(type) == 0) return type;
  GgmlType out = type;
  switch (type) {
    case GgmlType::Q4_K: out = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: out = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: out = GgmlType::Q8_0; break;
    default: break;
  }
  return n_cols % ggml_type_block_elems(out) == 0 ? out : GgmlType::F16;
}

// The llama3 rope_freqs factors in float32, as LlamaModel.generate_extra_tensors computes them.
std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  const RopeConfig& r = c.rope;
  const auto dim = static_cast<float>(c.head_dim);
  const auto base = static_cast<float>(r.theta);
  const double old_ctx = static_cast<double>(r.original_max_position);
  const double low_wavelen = old_ctx / r.low_freq_factor, high_wavelen = old_ctx / r.high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(i) / dim);
    const float wavelen = static_cast<float>(2 * M_PI) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(static_cast<float>(r.factor));
    } else {
      const float smooth = (static_cast<float>(old_ctx) / wavelen - static_cast<float>(r.low_freq_factor)) /
                           static_cast<float>(r.high_freq_factor - r.low_freq_factor);
      out.push_back(1.0f / ((1.0f - smooth) / static_cast<float>(r.factor) + smooth));
    }
  }
  return out;
}

void add_arch_keys(GgufWriter& w, const ModelConfig& c, const std::string& arch, const nlohmann::json& cfg) {
  auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.add_u32(arch + ".block_count", u32(c.n_layers));
  w.add_u32(arch + ".context_length", u32(c.max_position_embeddings));
  w.add_u32(arch + ".embedding_length", u32(c.hidden_size));
  w.add_u32(arch + ".feed_forward_length", u32(c.intermediate_size));
  w.add_u32(arch + ".attention.head_count", u32(c.n_heads));
  w.add_u32(arch + ".attention.head_count_kv", u32(c.n_heads_kv));
  if (c.rope.type == RopeType::Linear) {
    w.add_string(arch + ".rope.scaling.type", "linear");
    w.add_f32(arch + ".rope.scaling.factor", static_cast<float>(c.rope.factor));
  }
  w.add_f32(arch + ".rope.freq_base", static_cast<float>(c.rope.theta));
  w.add_f32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  if (cfg.contains("head_dim") && !cfg["head_dim"].is_null()) {
    w.add_u32(arch + ".attention.key_length", u32(c.head_dim));
    w.add_u32(arch + ".attention.value_length", u32(c.head_dim));
  }
  if (arch == "llama") {
    w.add_u32(arch + ".vocab_size", u32(c.vocab_size));
    w.add_u32(arch + ".rope.dimension_count", u32(c.head_dim));
  }
}

std::vector<int64_t> ne_of(const HostTensor& t) {
  return t.shape().rank == 1 ? std::vector<int64_t>{t.shape()[0]} : std::vector<int64_t>{t.shape()[1], t.shape()[0]};
}

struct ModelTensors {
  GgufWriter& writer;
  GgufOutType out;
  int64_t n_layers;
  bool tied;

  // A norm, bias or other 1-D tensor: always F32.
  void add_f32(const std::string& name, const HostTensor& t) {
    if (t.empty()) return;
    const Tensor v = t.view();
    writer.add_tensor(name, ne_of(t), GgmlType::F32,
                      [v](std::vector<uint8_t>& o) { gguf_quantize(GgmlType::F32, v.f32(), 1, v.numel(), o); });
  }
  // A 2-D weight [rows, cols]; rows permuted for llama rope when permute_heads > 0.
  void add_weight(const std::string& name, const HostTensor& t, GgufTensorRole role, int64_t layer,
                  int64_t permute_heads = 0) {
    if (t.empty()) return;
    const Tensor v = t.view();
    const int64_t rows = v.shape[0], cols = v.shape[1];
    const GgmlType type = gguf_weight_type(out, role, layer, n_layers, cols, tied);
    writer.add_tensor(name, ne_of(t), type, [v, rows, cols, type, permute_heads](std::vector<uint8_t>& o) {
      if (permute_heads > 0) {
        const std::vector<float> p = gguf_llama_permute(v.f32(), rows, cols, permute_heads);
        gguf_quantize(type, p.data(), rows, cols, o);
      } else {
        gguf_quantize(type, v.f32(), rows, cols, o);
      }
    });
  }
  void add_bias(const std::string& name, const HostTensor& t, int64_t permute_heads) {
    if (t.empty()) return;
    if (permute_heads == 0) return add_f32(name, t);
    const Tensor v = t.view();
    writer.add_tensor(name, ne_of(t), GgmlType::F32, [v, permute_heads](std::vector<uint8_t>& o) {
      const std::vector<float> p = gguf_llama_permute(v.f32(), v.numel(), 1, permute_heads);
      gguf_quantize(GgmlType::F32, p.data(), 1, v.numel(), o);
    });
  }
};

}  // namespace

std::optional<GgufOutType> gguf_outtype_parse(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  for (GgufOutType t : {GgufOutType::F32, GgufOutType::F16, GgufOutType::BF16, GgufOutType::Q8_0, GgufOutType::Q4_K_M,
                        GgufOutType::Q5_K_M, GgufOutType::Q6_K}) {
    if (lower == gguf_outtype_name(t)) return t;
  }
  return std::nullopt;
}

const char* gguf_outtype_name(GgufOutType type) {
  switch (type) {
    case GgufOutType::F32: return "f32";
    case GgufOutType::F16: return "f16";
    case GgufOutType::BF16: return "bf16";
    case GgufOutType::Q8_0: return "q8_0";
    case GgufOutType::Q4_K_M: return "q4_k_m";
    case GgufOutType::Q5_K_M: return "q5_k_m";
    case GgufOutType::Q6_K: return "q6_k";
  }
  return "?";
}

uint32_t gguf_file_type(GgufOutType type) {
  switch (type) {
    case GgufOutType::F32: return 0;
    case GgufOutType::F16: return 1;
    case GgufOutType::BF16: return 32;
    case GgufOutType::Q8_0: return 7;
    case GgufOutType::Q4_K_M: return 15;
    case GgufOutType::Q5_K_M: return 17;
    case GgufOutType::Q6_K: return 18;
  }
  return 0;
}

std::string gguf_arch(const ModelConfig& config) {
  if (config.model_type == "llama" || config.model_type == "mistral") return "llama";
  if (config.model_type == "qwen2" || config.model_type == "qwen3") return config.model_type;
  fail(ErrorKind::Unsupported, config.source, ": model_type ", config.model_type,
       " has no GGUF export yet (supported: llama, mistral, qwen2, qwen3)");
}

GgmlType gguf_weight_type(GgufOutType out, GgufTensorRole role, int64_t layer, int64_t n_layers, int64_t n_cols,
                          bool tied) {
  switch (out) {
    case GgufOutType::F32: return GgmlType::F32;
    case GgufOutType::F16: return GgmlType::F16;
    case GgufOutType::BF16: return GgmlType::BF16;
    case GgufOutType::Q8_0: return n_cols % 32 == 0 ? GgmlType::Q8_0 : GgmlType::F16;
    default: break;
  }
  const bool k_m = out == GgufOutType::Q4_K_M || out == GgufOutType::Q5_K_M;
  const GgmlType base = out == GgufOutType::Q4_K_M ? GgmlType::Q4_K
                        : out == GgufOutType::Q5_K_M ? GgmlType::Q5_K : GgmlType::Q6_K;
  GgmlType type = base;
  if (role == GgufTensorRole::Output || (tied && role == GgufTensorRole::TokenEmbd)) {
    type = n_cols % ggml_type_block_elems(base) != 0 ? GgmlType::Q8_0 : GgmlType::Q6_K;
  } else if (k_m && (role == GgufTensorRole::AttnV || role == GgufTensorRole::FfnDown) && use_more_bits(layer, n_layers)) {
    type = GgmlType::Q6_K;
  }
  return shape_fallback(type, n_cols);
}

std::vector<float> gguf_llama_permute(const float* data, int64_t rows, int64_t cols, int64_t n_heads) {
  KTO_ASSERT(rows % (2 * n_heads) == 0, "rows ", rows, " not divisible into ", n_heads, " rope heads");
  const int64_t half = rows / n_heads / 2;
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t part = 0; part < 2; ++part) {
        const int64_t src = h * 2 * half + part * half + i, dst = h * 2 * half + 2 * i + part;
        std::copy(data + src * cols, data + (src + 1) * cols, out.begin() + dst * cols);
      }
    }
  }
  return out;
}

void gguf_export_model(const ModelConfig& config, const Weights& weights, const std::string& model_dir,
                       const GgufExportOptions& options) {
  const std::string arch = gguf_arch(config);
  if (weights_have_nf4(weights)) {
    fail(ErrorKind::Unsupported, "GGUF export of NF4 projections: dequantise them first (weights_dequantize_nf4)");
  }
  const std::string cfg_path = path_join(model_dir, "config.json");
  const nlohmann::json cfg = file_exists(cfg_path) ? json_read_file(cfg_path) : nlohmann::json::object();
  for (int64_t w : config.layer_window) {
    if (w > 0 && w < config.max_position_embeddings) {
      log_warn("the model uses sliding-window attention (window ", w, "); llama.cpp's ", arch,
               " architecture attends to the whole context, so outputs differ past ", w, " tokens");
      break;
    }
  }
  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("general.type", "model");
  std::string name = options.name;
  if (name.empty()) name = std::filesystem::path(model_dir).lexically_normal().filename().string();
  if (name.empty() || name == ".") name = std::filesystem::absolute(model_dir).lexically_normal().parent_path().filename().string();
  w.add_string("general.name", name);
  add_arch_keys(w, config, arch, cfg);
  w.add_u32("general.file_type", gguf_file_type(options.outtype));
  w.add_u32("general.quantization_version", 2);
  const GgufTokenizerInfo tok = gguf_add_tokenizer(w, model_dir, config, arch);

  ModelTensors t{w, options.outtype, config.n_layers, weights.head_tied()};
  std::vector<float> rope_factors;
  if (config.rope.type == RopeType::Llama3) {
    rope_factors = llama3_rope_factors(config);
    const int64_t n = static_cast<int64_t>(rope_factors.size());
    w.add_tensor("rope_freqs.weight", {n}, GgmlType::F32, [&rope_factors, n](std::vector<uint8_t>& o) {
      gguf_quantize(GgmlType::F32, rope_factors.data(), 1, n, o);
    });
  }
  using R = GgufTensorRole;
  t.add_weight("token_embd.weight", weights.embed, R::TokenEmbd, 0);
  const bool permute = arch == "llama";
  for (int64_t i = 0; i < config.n_layers; ++i) {
    const LayerWeights& l = weights.layers[static_cast<size_t>(i)];
    const std::string b = str_cat("blk.", i, ".");
    const int64_t hq = permute ? config.n_heads : 0, hk = permute ? config.n_heads_kv : 0;
    t.add_f32(b + "attn_norm.weight", l.input_norm);
    t.add_weight(b + "attn_q.weight", l.q_proj, R::AttnQ, i, hq);
    t.add_bias(b + "attn_q.bias", l.q_bias, hq);
    t.add_weight(b + "attn_k.weight", l.k_proj, R::AttnK, i, hk);
    t.add_bias(b + "attn_k.bias", l.k_bias, hk);
    t.add_weight(b + "attn_v.weight", l.v_proj, R::AttnV, i);
    t.add_f32(b + "attn_v.bias", l.v_bias);
    t.add_weight(b + "attn_output.weight", l.o_proj, R::AttnOutput, i);
    t.add_f32(b + "attn_output.bias", l.o_bias);
    t.add_f32(b + "attn_q_norm.weight", l.q_norm);
    t.add_f32(b + "attn_k_norm.weight", l.k_norm);
    t.add_f32(b + "ffn_norm.weight", l.post_attention_norm);
    t.add_weight(b + "ffn_gate.weight", l.gate_proj, R::FfnGate, i);
    t.add_f32(b + "ffn_gate.bias", l.gate_bias);
    t.add_weight(b + "ffn_up.weight", l.up_proj, R::FfnUp, i);
    t.add_f32(b + "ffn_up.bias", l.up_bias);
    t.add_weight(b + "ffn_down.weight", l.down_proj, R::FfnDown, i);
    t.add_f32(b + "ffn_down.bias", l.down_bias);
  }
  t.add_f32("output_norm.weight", weights.final_norm);
  t.add_weight("output.weight", weights.lm_head, R::Output, config.n_layers);
  w.write(options.output);
  log_info("wrote ", options.output, " (", gguf_outtype_name(options.outtype), ", architecture ", arch, ")");
  modelfile_write(options.output, tok);
}

}  // namespace kto
