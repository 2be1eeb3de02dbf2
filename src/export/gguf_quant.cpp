// The quantizers of llama.cpp's ggml-quants.c without an importance matrix
// (quantize_row_{q8_0,q5_0,q5_1,q4_K,q5_K,q6_K}_ref with make_qkx2_quants / make_qx_quants),
// re-derived from their description so that every block is bit-identical: the same float
// operations in the same order (no fused multiply-add: build without -ffp-contract=fast on
// FMA targets), ties resolved the same way, fp16 scales rounded before they are reused.
#include "export/gguf_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/dtype.h"
#include "util/error.h"

namespace kto {
namespace {

constexpr int kSuper = 256;            // QK_K
constexpr float kGroupMaxEps = 1e-15f;  // GROUP_MAX_EPS

// Round to nearest (ties to even) through the 1.5·2^23 trick ggml uses; |v| ≤ 2^22.
int nearest_int(float v) {
  float shifted = v + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

void put_half(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// q8_0: half d = amax/127; int8 q = roundf(x/d) (ties away from zero).
void block_q8_0(const float* x, uint8_t* y) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(y, d);
  for (int j = 0; j < 32; ++j) y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
}

// q5_0: d = (signed max-abs value)/-16; q = min(31, trunc(x/d + 16.5)); element j and j+16 share a byte.
void block_q5_0(const float* x, uint8_t* y) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(y, d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const auto q0 = static_cast<uint8_t>(std::min<int>(31, static_cast<int8_t>(x[j] * id + 16.5f)));
    const auto q1 = static_cast<uint8_t>(std::min<int>(31, static_cast<int8_t>(x[16 + j] * id + 16.5f)));
    y[6 + j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    qh |= static_cast<uint32_t>((q0 & 0x10u) >> 4) << j;
    qh |= static_cast<uint32_t>((q1 & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(y + 2, &qh, 4);
}

// q5_1: d = (max - min)/31, m = min; q = trunc((x - min)/d + 0.5).
void block_q5_1(const float* x, uint8_t* y) {
  float min = x[0], max = x[0];
  for (int j = 0; j < 32; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / 31.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(y, d);
  put_half(y + 2, min);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const auto q0 = static_cast<uint8_t>((x[j] - min) * id + 0.5f);
    const auto q1 = static_cast<uint8_t>((x[16 + j] - min) * id + 0.5f);
    y[8 + j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    qh |= static_cast<uint32_t>((q0 & 0x10u) >> 4) << j;
    qh |= static_cast<uint32_t>((q1 & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(y + 4, &qh, 4);
}

// make_qkx2_quants: weighted least-squares scale and min for n values quantized to [0, nmax],
// searching nstep+1 candidate scales; returns the scale, stores -min in *neg_min.
float make_qkx2(int n, int nmax, const float* x, const float* w, uint8_t* levels, float* neg_min, float rmin,
                float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(levels, levels + n, uint8_t{0});
    *neg_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
    levels[i] = static_cast<uint8_t>(l);
    const float diff = scale * static_cast<float>(levels[i]) + min - x[i];
    best_error += w[i] * (diff * diff);
  }
  uint8_t aux[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * static_cast<float>(aux[i]) + this_min - x[i];
        cur_error += w[i] * (diff * diff);
      }
      if (cur_error < best_error) {
        std::copy(aux, aux + n, levels);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

// The scale/min half of q4_K and q5_K: 8 sub-blocks of 32, 6-bit scales and mins packed into
// 12 bytes (get_scale_min_k4 layout), then every value re-quantized with the rounded scales.
void k_scales_and_levels(const float* x, int nmax, float rmin, int nstep, uint8_t* dh, uint8_t* scales_out,
                         uint8_t* levels) {
  float mins[8], scales[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2(32, nmax, x + 32 * j, weights, levels + 32 * j, &mins[j], rmin, 0.1f, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t sc6[8], m6[8];
  for (int j = 0; j < 8; ++j) {
    sc6[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    m6[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
  }
  for (int j = 0; j < 4; ++j) {
    scales_out[j] = static_cast<uint8_t>(sc6[j] | ((sc6[j + 4] >> 4) << 6));
    scales_out[j + 4] = static_cast<uint8_t>(m6[j] | ((m6[j + 4] >> 4) << 6));
    scales_out[j + 8] = static_cast<uint8_t>((sc6[j + 4] & 0xF) | ((m6[j + 4] & 0xF) << 4));
  }
  put_half(dh, max_scale / 63.f);
  put_half(dh + 2, max_min / 63.f);
  const float d_all = half_at(dh), dmin_all = half_at(dh + 2);
  for (int j = 0; j < 8; ++j) {
    const float d = d_all * static_cast<float>(sc6[j]);
    if (d == 0.0f) continue;  // keeps the levels make_qkx2 chose, as ggml does
    const float dm = dmin_all * static_cast<float>(m6[j]);
    for (int i = 0; i < 32; ++i) {
      levels[32 * j + i] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + i] + dm) / d), 0, nmax));
    }
  }
}

// q4_K: half d, half dmin, scales[12], qs[128]; chunk c of 64 values: low nibble = value 64c+l,
// high nibble = value 64c+32+l.
void block_q4_k(const float* x, uint8_t* y) {
  uint8_t levels[kSuper];
  k_scales_and_levels(x, 15, -1.0f, 20, y, y + 4, levels);
  uint8_t* q = y + 16;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) q[32 * c + l] = static_cast<uint8_t>(levels[64 * c + l] | (levels[64 * c + 32 + l] << 4));
  }
}

// q5_K: as q4_K with 5-bit levels; the fifth bits go to qh[32] (bit 2c low half, 2c+1 high half).
void block_q5_k(const float* x, uint8_t* y) {
  uint8_t levels[kSuper];
  k_scales_and_levels(x, 31, -0.5f, 15, y, y + 4, levels);
  uint8_t* qh = y + 16;
  uint8_t* ql = y + 48;
  std::memset(qh, 0, 32);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      int l1 = levels[64 * c + l], l2 = levels[64 * c + 32 + l];
      if (l1 > 15) {
        l1 -= 16;
        qh[l] = static_cast<uint8_t>(qh[l] | (1u << (2 * c)));
      }
      if (l2 > 15) {
        l2 -= 16;
        qh[l] = static_cast<uint8_t>(qh[l] | (2u << (2 * c)));
      }
      ql[32 * c + l] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
  }
}

// make_qx_quants with rmse_type 1 (weights x²) and no importance: symmetric levels in
// [-nmax, nmax-1] stored +nmax; tries 18 perturbed scales around nmax/max.
float make_qx(int n, int nmax, const float* x, int8_t* levels) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(levels, levels + n, int8_t{0});
    return 0.f;
  }
  const float nmax_f = static_cast<float>(nmax);
  auto sums = [&](float iscale, float& sumlx, float& suml2, bool store) {
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      if (store) levels[i] = static_cast<int8_t>(l + nmax);
      const float w = x[i] * x[i], fl = static_cast<float>(l);
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
  };
  float sumlx, suml2;
  sums(-nmax_f / max, sumlx, suml2, true);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(nmax_f + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, sumlx, suml2, false);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      sums(iscale, sumlx, suml2, true);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// q6_K: ql[128], qh[64], int8 scales[16], half d (last). 16 sub-blocks of 16 values.
void block_q6_k(const float* x, uint8_t* y) {
  int8_t levels[kSuper];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = make_qx(16, 32, x + 16 * ib, levels + 16 * ib);
    if (std::fabs(scales[ib]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  std::memset(y, 0, 210);
  if (max_abs_scale < kGroupMaxEps) return;  // all zero (d = +0)
  auto* sc = reinterpret_cast<int8_t*>(y + 192);
  const float iscale = -128.f / max_scale;
  put_half(y + 208, 1 / iscale);
  for (int ib = 0; ib < 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  const float d_all = half_at(y + 208);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(sc[j]);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) {
      levels[16 * j + i] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
    }
  }
  uint8_t* ql = y;
  uint8_t* qh = y + 128;
  for (int h = 0; h < 2; ++h) {
    const int8_t* lv = levels + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[64 * h + l] = static_cast<uint8_t>((lv[l] & 0xF) | ((lv[l + 64] & 0xF) << 4));
      ql[64 * h + l + 32] = static_cast<uint8_t>((lv[l + 32] & 0xF) | ((lv[l + 96] & 0xF) << 4));
      qh[32 * h + l] = static_cast<uint8_t>((lv[l] >> 4) | ((lv[l + 32] >> 4) << 2) | ((lv[l + 64] >> 4) << 4) |
                                            ((lv[l + 96] >> 4) << 6));
    }
  }
}

}  // namespace

void gguf_quantize(GgmlType type, const float* src, int64_t n_rows, int64_t n_cols, std::vector<uint8_t>& out) {
  const size_t row_bytes = ggml_row_bytes(type, n_cols);
  const size_t start = out.size();
  out.resize(start + row_bytes * static_cast<size_t>(n_rows));
  uint8_t* dst = out.data() + start;
  const int64_t n = n_rows * n_cols;
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = type == GgmlType::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    default:
      break;
  }
  void (*encode)(const float*, uint8_t*) = nullptr;
  switch (type) {
    case GgmlType::Q8_0: encode = block_q8_0; break;
    case GgmlType::Q5_0: encode = block_q5_0; break;
    case GgmlType::Q5_1: encode = block_q5_1; break;
    case GgmlType::Q4_K: encode = block_q4_k; break;
    case GgmlType::Q5_K: encode = block_q5_k; break;
    case GgmlType::Q6_K: encode = block_q6_k; break;
    default: fail(ErrorKind::Unsupported, "kto cannot encode ggml type ", ggml_type_name(type));
  }
  const int64_t block = ggml_type_block_elems(type);
  const size_t block_bytes = ggml_type_block_bytes(type);
  for (int64_t b = 0; b < n / block; ++b) encode(src + b * block, dst + static_cast<size_t>(b) * block_bytes);
}

}  // namespace kto
