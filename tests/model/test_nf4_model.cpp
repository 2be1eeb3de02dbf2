// NF4 base weights in the model, against transformers + bitsandbytes: tests/fixtures/nf4/qwen2-bnb-4bit
// is the qwen2 fixture model loaded with BitsAndBytesConfig(load_in_4bit, nf4, double quant) and
// saved by save_pretrained; qwen2-bnb-4bit-expected.safetensors holds bnb's dequantize_4bit of a
// projection and transformers' fp32 logits with the bnb-dequantised weights
// (tools/reference/make_nf4.py). Also: the NF4 projection op (tile-by-tile dequantisation)
// against the same op on the dequantised dense weight.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backend/ops.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "test_util.h"

namespace kto {
namespace {

std::vector<float> read_f32(const SafetensorsFile& f, const std::string& name) {
  const SafetensorsTensor* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  std::vector<float> out(static_cast<size_t>(t->numel()));
  safetensors_to_f32(*t, out.data());
  return out;
}

TEST(Nf4Model, BnbCheckpointLoadsBitExactAndMatchesTransformersLogits) {
  const Model model = Model::load(test::fixture("nf4/qwen2-bnb-4bit"));
  const Weights& w = model.weights();
  ASSERT_TRUE(weights_have_nf4(w));
  for (const LayerWeights& layer : w.layers) {
    for (size_t i = 0; i < layer.nf4.size(); ++i) {
      EXPECT_FALSE(layer.nf4[i].empty()) << "projection " << i;
      EXPECT_TRUE(layer.projection(i).empty());
      EXPECT_TRUE(layer.nf4[i].nested());
      EXPECT_EQ(layer.nf4[i].dtype, DType::BF16);
    }
  }
  EXPECT_FALSE(w.layers[0].q_bias.empty());  // biases stay dense, as bnb leaves them

  const SafetensorsFile expected = SafetensorsFile::open(test::fixture("nf4/qwen2-bnb-4bit-expected.safetensors"));
  const std::vector<float> q_proj0 = read_f32(expected, "q_proj0");  // bnb dequantize_4bit, bf16
  const Nf4Tensor& q = w.layers[0].nf4[0];
  std::vector<float> ours(static_cast<size_t>(q.rows * q.cols));
  nf4_dequantize(q.view(), 0, q.rows * q.cols, ours.data());
  ASSERT_EQ(ours.size(), q_proj0.size());
  EXPECT_EQ(std::memcmp(ours.data(), q_proj0.data(), ours.size() * sizeof(float)), 0) << "dequantised q_proj";

  const SafetensorsTensor* tok = expected.find("tokens");
  ASSERT_NE(tok, nullptr);
  PackedBatch batch;
  for (int64_t i = 0; i < tok->numel(); ++i) {
    int64_t id;
    std::memcpy(&id, tok->data + i * 8, 8);
    batch.tokens.push_back(static_cast<int32_t>(id));
    batch.positions.push_back(static_cast<int32_t>(i));
  }
  batch.seq_starts = {0, static_cast<int32_t>(batch.tokens.size())};
  const HostTensor logits = model.forward_logits(batch);
  const std::vector<float> want = read_f32(expected, "logits");
  ASSERT_EQ(static_cast<size_t>(logits.numel()), want.size());
  double max_diff = 0;
  for (size_t i = 0; i < want.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(logits.f32()[i]) - want[i]));
  EXPECT_LT(max_diff, 2e-5) << "logits vs transformers (fp32, bnb-dequantised weights)";
  RecordProperty("logits_max_diff", std::to_string(max_diff));
}

// load_in_4bit on the original bf16 checkpoint gives the bytes transformers + bnb saved.
TEST(Nf4Model, LoadIn4bitReproducesTheBnbCheckpoint) {
  const std::string dir = test::fixture("models/qwen2");
  const ModelConfig config = model_config_load(dir);
  WeightsLoadOptions options;
  options.load_in_4bit = true;
  options.nf4.double_quant = true;
  const Weights ours = weights_load(config, SafetensorsCheckpoint::open_dir(dir), options);
  const Model bnb = Model::load(test::fixture("nf4/qwen2-bnb-4bit"));
  for (size_t l = 0; l < ours.layers.size(); ++l) {
    for (size_t i = 0; i < 7; ++i) {
      const Nf4Tensor& a = ours.layers[l].nf4[i];
      const Nf4Tensor& b = bnb.weights().layers[l].nf4[i];
      SCOPED_TRACE(str_cat("layer ", l, " projection ", i));
      ASSERT_FALSE(a.empty());
      EXPECT_TRUE(ours.layers[l].projection(i).empty());
      EXPECT_EQ(a.dtype, DType::BF16);
      for (auto [x, y] : {std::pair{&a.packed, &b.packed}, {&a.absmax, &b.absmax}, {&a.nested_absmax, &b.nested_absmax},
                          {&a.nested_code, &b.nested_code}, {&a.code, &b.code}}) {
        ASSERT_EQ(x->view().nbytes(), y->view().nbytes());
        EXPECT_EQ(std::memcmp(x->view().data, y->view().data, x->view().nbytes()), 0);
      }
      EXPECT_EQ(a.nested_offset, b.nested_offset);
    }
  }
}

// The op with an NF4 weight equals the op on the dequantised dense weight (several row tiles).
TEST(Nf4Model, Nf4ProjectionForwardBackwardMatchDense) {
  const int64_t t = 5, k = 260, n = 300, r = 4;  // 78000 weights: two tiles of rows
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  auto fill = [&](HostTensor& h) {
    for (int64_t i = 0; i < h.numel(); ++i) h.f32()[i] = normal(rng);
  };
  HostTensor dense(DType::F32, Shape{n, k}), x(DType::F32, Shape{t, k}), a(DType::F32, Shape{r, k}),
      b(DType::F32, Shape{n, r}), bias(DType::F32, Shape{n}), d_out(DType::F32, Shape{t, n});
  for (HostTensor* h : {&dense, &x, &a, &b, &bias, &d_out}) fill(*h);
  const Nf4Tensor q = nf4_quantize(dense.f32(), n, k, {kNf4BlockSize, true, DType::F32});
  nf4_dequantize(q.view(), 0, n * k, dense.f32());  // the dense twin holds the dequantised values

  HostTensor xa1(DType::F32, Shape{t, r}), xa2(DType::F32, Shape{t, r}), out1(DType::F32, Shape{t, n}),
      out2(DType::F32, Shape{t, n});
  lora_linear_forward_cpu({x.view(), dense.view(), bias.view(), a.view(), b.view(), Tensor{}, xa1.view(), out1.view(), 0.5f});
  lora_linear_forward_cpu({x.view(), Tensor{}, bias.view(), a.view(), b.view(), Tensor{}, xa2.view(), out2.view(), 0.5f,
                           q.view()});
  double max_diff = 0;
  for (int64_t i = 0; i < out1.numel(); ++i) max_diff = std::max(max_diff, double(std::fabs(out1.f32()[i] - out2.f32()[i])));
  EXPECT_LT(max_diff, 1e-5);
  RecordProperty("forward_max_diff", std::to_string(max_diff));

  HostTensor dx1(DType::F32, Shape{t, k}), dx2(DType::F32, Shape{t, k});
  HostTensor da1(DType::F32, Shape{r, k}), da2(DType::F32, Shape{r, k}), db1(DType::F32, Shape{n, r}),
      db2(DType::F32, Shape{n, r});
  lora_linear_backward_cpu({x.view(), dense.view(), a.view(), b.view(), Tensor{}, xa1.view(), d_out.view(), dx1.view(),
                            da1.view(), db1.view(), 0.5f});
  lora_linear_backward_cpu({x.view(), Tensor{}, a.view(), b.view(), Tensor{}, xa2.view(), d_out.view(), dx2.view(),
                            da2.view(), db2.view(), 0.5f, GradStore::Overwrite, q.view()});
  max_diff = 0;
  for (int64_t i = 0; i < dx1.numel(); ++i) max_diff = std::max(max_diff, double(std::fabs(dx1.f32()[i] - dx2.f32()[i])));
  EXPECT_LT(max_diff, 1e-5);
  RecordProperty("dx_max_diff", std::to_string(max_diff));
  EXPECT_EQ(std::memcmp(da1.f32(), da2.f32(), static_cast<size_t>(da1.numel()) * 4), 0);
  EXPECT_EQ(std::memcmp(db1.f32(), db2.f32(), static_cast<size_t>(db1.numel()) * 4), 0);
}

}  // namespace
}  // namespace kto
