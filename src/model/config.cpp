// ModelConfig from a Hugging Face config.json: the fields transformers' LlamaConfig reads (with its
// defaults), RoPE in both the legacy `rope_theta` + `rope_scaling` and the v5 `rope_parameters`
// form (`modeling_rope_utils.py` standardize_rope_params / ROPE_INIT_FUNCTIONS), then the
// architecture's own hooks (model/arch/). Also generation_config.json. Spec: formats.md §2, §6.5.
#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "model/arch/arch.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {

namespace {

// A key that is present (even as null) overrides the architecture's default, as in transformers.
std::optional<int64_t> token_id(const ConfigJson& json, std::string_view key, std::optional<int64_t> fallback) {
  return json.json().contains(key) ? json.opt_int(key) : fallback;
}

void check_full_rotary(const ConfigJson& json) {
  double partial = json.get_double("partial_rotary_factor", 1.0);
  if (partial != 1.0) {
    fail(ErrorKind::Unsupported, json.source(), ": partial_rotary_factor ", partial,
         " is not supported; only RoPE over the whole head (1.0) is");
  }
}

RopeConfig parse_rope(const ConfigJson& json) {
  RopeConfig rope;
  const double top_theta = json.get_double("rope_theta", 10000.0);
  check_full_rotary(json);
  const std::optional<ConfigJson> params =
      json.has("rope_parameters") ? json.object("rope_parameters")  // transformers v5
                                  : json.object("rope_scaling");    // legacy
  rope.theta = top_theta;
  if (!params) return rope;
  for (const auto& [key, value] : params->json().items()) {
    if (value.is_object()) {
      fail(ErrorKind::Unsupported, json.source(), ": per-layer-type RoPE parameters (\"", key,
           "\") are not supported; only a single rope_parameters object is");
    }
  }
  check_full_rotary(*params);
  rope.theta = params->get_double("rope_theta", top_theta);
  const std::string type = params->get_string("rope_type", params->get_string("type", "default"));
  if (type == "default") return rope;
  if (type == "linear") {
    rope.type = RopeType::Linear;
    rope.factor = params->required_double("factor");
  } else if (type == "llama3") {
    rope.type = RopeType::Llama3;
    rope.factor = params->required_double("factor");
    rope.low_freq_factor = params->required_double("low_freq_factor");
    rope.high_freq_factor = params->required_double("high_freq_factor");
    rope.original_max_position = params->required_int("original_max_position_embeddings");
    if (!(rope.low_freq_factor < rope.high_freq_factor) || rope.original_max_position <= 0) {
      params->fail_key("low_freq_factor",
                       "must be below high_freq_factor, with original_max_position_embeddings > 0");
    }
  } else {
    fail(ErrorKind::Unsupported, json.source(), ": RoPE type \"", type,
         "\" is not supported (supported: default, linear, llama3; not yet: dynamic, yarn, longrope)");
  }
  if (!(rope.factor > 0)) params->fail_key("factor", "must be a positive number");
  return rope;
}

void check_positive(const ModelConfig& c, const char* key, int64_t value) {
  if (value <= 0) fail(ErrorKind::Format, c.source, ": key \"", key, "\" must be positive, got ", value);
}

void validate(const ModelConfig& c) {
  check_positive(c, "vocab_size", c.vocab_size);
  check_positive(c, "hidden_size", c.hidden_size);
  check_positive(c, "intermediate_size", c.intermediate_size);
  check_positive(c, "num_hidden_layers", c.n_layers);
  check_positive(c, "num_attention_heads", c.n_heads);
  check_positive(c, "num_key_value_heads", c.n_heads_kv);
  check_positive(c, "head_dim", c.head_dim);
  check_positive(c, "max_position_embeddings", c.max_position_embeddings);
  if (c.n_heads % c.n_heads_kv != 0) {
    fail(ErrorKind::Format, c.source, ": num_attention_heads (", c.n_heads, ") is not a multiple of ",
         "num_key_value_heads (", c.n_heads_kv, "); grouped-query attention needs whole groups");
  }
  if (c.head_dim % 2 != 0) {
    fail(ErrorKind::Format, c.source, ": head_dim ", c.head_dim, " is odd; RoPE rotates pairs of dimensions");
  }
  if (!(c.rms_norm_eps > 0)) fail(ErrorKind::Format, c.source, ": key \"rms_norm_eps\" must be positive");
  if (!(c.rope.theta > 0)) fail(ErrorKind::Format, c.source, ": key \"rope_theta\" must be positive");
  for (int64_t w : c.layer_window) {
    if (w < 0) fail(ErrorKind::Format, c.source, ": key \"sliding_window\" must not be negative, got ", w);
  }
}

}  // namespace

ModelConfig model_config_from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) fail(ErrorKind::Format, source, ": is not a JSON object; expected a model's config.json");
  const ConfigJson c(json, source);
  ModelConfig cfg;
  cfg.source = source;
  cfg.model_type = c.get_string("model_type", "");
  if (cfg.model_type.empty()) c.fail_key("model_type", "is missing; expected one of " + arch_supported_list());
  const ArchSpec* arch = arch_find(cfg.model_type);
  if (!arch) {
    fail(ErrorKind::Unsupported, source, ": model_type \"", cfg.model_type, "\" is not supported (supported: ",
         arch_supported_list(), ")");
  }
  if (const nlohmann::json* a = c.find("architectures"); a && a->is_array() && !a->empty() && (*a)[0].is_string()) {
    cfg.architecture = (*a)[0].get<std::string>();
  }
  cfg.bos_token_id = 1;  // LlamaConfig defaults; the arch may change them
  cfg.eos_token_ids = {2};
  arch->set_defaults(cfg);

  cfg.vocab_size = c.required_int("vocab_size");
  cfg.hidden_size = c.required_int("hidden_size");
  cfg.intermediate_size = c.required_int("intermediate_size");
  cfg.n_layers = c.required_int("num_hidden_layers");
  cfg.n_heads = c.required_int("num_attention_heads");
  check_positive(cfg, "num_attention_heads", cfg.n_heads);
  cfg.n_heads_kv = c.get_int("num_key_value_heads", cfg.n_heads);
  if (c.has("head_dim")) {
    cfg.head_dim = c.required_int("head_dim");
  } else if (cfg.head_dim == 0) {
    if (cfg.hidden_size % cfg.n_heads != 0) {
      fail(ErrorKind::Format, source, ": hidden_size ", cfg.hidden_size, " is not a multiple of num_attention_heads ",
           cfg.n_heads, " and there is no head_dim key");
    }
    cfg.head_dim = cfg.hidden_size / cfg.n_heads;
  }
  cfg.max_position_embeddings = c.get_int("max_position_embeddings", cfg.max_position_embeddings);
  cfg.rms_norm_eps = c.get_double("rms_norm_eps", cfg.rms_norm_eps);
  cfg.rope = parse_rope(c);
  cfg.tie_word_embeddings = c.get_bool("tie_word_embeddings", false);
  cfg.bos_token_id = token_id(c, "bos_token_id", cfg.bos_token_id);
  if (json.contains("eos_token_id")) cfg.eos_token_ids = c.int_or_list("eos_token_id");
  cfg.pad_token_id = c.opt_int("pad_token_id");
  cfg.torch_dtype = c.get_string("dtype", c.get_string("torch_dtype", ""));
  cfg.layer_window.assign(static_cast<size_t>(std::max<int64_t>(cfg.n_layers, 0)), 0);

  arch->apply(c, cfg);
  validate(cfg);
  return cfg;
}

ModelConfig model_config_load(const std::string& model_dir) {
  const std::string path = path_join(model_dir, "config.json");
  if (!file_exists(path)) {
    fail(ErrorKind::NotFound, path, ": no config.json; pass a Hugging Face model directory");
  }
  return model_config_from_json(json_read_file(path), path);
}

int64_t ModelConfig::n_params() const {
  const int64_t d = hidden_size, f = intermediate_size;
  int64_t attn = d * q_dim() + 2 * d * kv_dim() + q_dim() * d;
  if (qkv_bias) attn += q_dim() + 2 * kv_dim();
  if (o_bias) attn += d;
  if (qk_norm) attn += 2 * head_dim;
  int64_t mlp = 3 * d * f + (mlp_bias ? 2 * f + d : 0);
  int64_t layer = attn + mlp + 2 * d;  // + input and post-attention RMSNorm
  int64_t head = tie_word_embeddings ? 0 : vocab_size * d;
  return vocab_size * d + n_layers * layer + d + head;
}

std::vector<double> rope_inv_freq(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  const RopeConfig& r = config.rope;
  std::vector<double> inv(static_cast<size_t>(dim / 2));
  for (size_t k = 0; k < inv.size(); ++k) {
    const float exponent = static_cast<float>(2 * k) / static_cast<float>(dim);  // as torch: f32 arange / dim
    inv[k] = 1.0 / std::pow(r.theta, static_cast<double>(exponent));
  }
  if (r.type == RopeType::Linear) {
    for (double& v : inv) v /= r.factor;
  } else if (r.type == RopeType::Llama3) {
    const auto orig = static_cast<double>(r.original_max_position);
    const double low_wavelen = orig / r.low_freq_factor, high_wavelen = orig / r.high_freq_factor;
    for (double& v : inv) {
      const double wavelen = 2 * std::numbers::pi / v;
      if (wavelen > low_wavelen) {
        v /= r.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (orig / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        v = (1 - smooth) * v / r.factor + smooth * v;
      }
    }
  }
  return inv;
}

GenerationConfig generation_config_load(const std::string& model_dir) {
  const std::string path = path_join(model_dir, "generation_config.json");
  GenerationConfig g;
  if (!file_exists(path)) return g;
  const nlohmann::json json = json_read_file(path);
  if (!json.is_object()) fail(ErrorKind::Format, path, ": is not a JSON object");
  const ConfigJson c(json, path);
  g.eos_token_ids = c.int_or_list("eos_token_id");
  g.bos_token_id = c.opt_int("bos_token_id");
  g.pad_token_id = c.opt_int("pad_token_id");
  g.do_sample = c.get_bool("do_sample", false);
  if (c.has("temperature")) g.temperature = c.get_double("temperature", 1.0);
  if (c.has("top_p")) g.top_p = c.get_double("top_p", 1.0);
  g.top_k = c.opt_int("top_k");
  g.max_new_tokens = c.opt_int("max_new_tokens");
  return g;
}

}  // namespace kto
