// safetensors against the outside reference: files written by safetensors.torch.save_file and
// transformers' save_pretrained (tools/reference/make_safetensors.py) must read back with exactly
// the values Python saw, and our writer must reproduce those files byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "formats/safetensors.h"
#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

nlohmann::json expected() { return json_read_file(test::fixture("safetensors/expected.json")); }

double expected_float(const nlohmann::json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    return std::numeric_limits<double>::quiet_NaN();
  }
  return v.get<double>();
}

template <typename T>
std::vector<double> read_as(const SafetensorsTensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    T v;
    std::memcpy(&v, t.data + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
  return out;
}

// Decodes any dtype the fixture holds into doubles (exact for every value it contains).
std::vector<double> decode(const SafetensorsTensor& t) {
  if (t.dtype == "F32" || t.dtype == "BF16" || t.dtype == "F16") {
    std::vector<float> f(static_cast<size_t>(t.numel()));
    safetensors_to_f32(t, f.data());
    return {f.begin(), f.end()};
  }
  if (t.dtype == "F64") return read_as<double>(t);
  if (t.dtype == "I64") return read_as<int64_t>(t);
  if (t.dtype == "I32") return read_as<int32_t>(t);
  if (t.dtype == "I8") return read_as<int8_t>(t);
  if (t.dtype == "U8" || t.dtype == "BOOL") return read_as<uint8_t>(t);
  ADD_FAILURE() << "fixture dtype " << t.dtype << " not handled by the test";
  return {};
}

TEST(Safetensors, ReadsWhatPythonWrote) {
  for (const char* file : {"mixed.safetensors", "nometa.safetensors"}) {
    SCOPED_TRACE(file);
    const nlohmann::json want = expected()[file];
    SafetensorsFile f = SafetensorsFile::open(test::fixture(std::string("safetensors/") + file));
    ASSERT_EQ(f.tensors().size(), want["order"].size());
    for (size_t i = 0; i < f.tensors().size(); ++i) EXPECT_EQ(f.tensors()[i].name, want["order"][i].get<std::string>());
    std::map<std::string, std::string> meta;
    if (!want["metadata"].is_null()) meta = want["metadata"].get<std::map<std::string, std::string>>();
    EXPECT_EQ(f.metadata(), meta);
    for (const auto& [name, w] : want["tensors"].items()) {
      SCOPED_TRACE(name);
      const SafetensorsTensor* t = f.find(name);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->dtype, w["dtype"].get<std::string>());
      EXPECT_EQ(t->shape, w["shape"].get<std::vector<int64_t>>());
      std::vector<double> got = decode(*t);
      ASSERT_EQ(got.size(), w["values"].size());
      for (size_t i = 0; i < got.size(); ++i) {
        const double e = expected_float(w["values"][i]);
        if (t->dtype == "I64") {
          EXPECT_EQ(static_cast<int64_t>(got[i]), w["values"][i].get<int64_t>()) << i;
        } else {
          EXPECT_EQ(got[i], e) << i;
          EXPECT_EQ(std::signbit(got[i]), std::signbit(e)) << i;
        }
      }
    }
    EXPECT_EQ(f.find("missing"), nullptr);
  }
  const SafetensorsFile f = SafetensorsFile::open(test::fixture("safetensors/mixed.safetensors"));
  EXPECT_TRUE(f.find("f.scalar")->shape.empty());
  EXPECT_EQ(f.find("f.scalar")->numel(), 1);
  EXPECT_EQ(f.find("g.empty")->nbytes, 0u);
}

TEST(Safetensors, WriterIsByteIdenticalToSaveFile) {
  const std::string dir = test::temp_dir("st-write");
  for (const char* file : {"mixed.safetensors", "nometa.safetensors"}) {
    SCOPED_TRACE(file);
    const std::string ref_path = test::fixture(std::string("safetensors/") + file);
    SafetensorsFile ref = SafetensorsFile::open(ref_path);
    std::vector<SafetensorsWriteTensor> in;
    for (const auto& t : ref.tensors()) in.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
    std::reverse(in.begin(), in.end());  // the writer must impose save_file's order itself
    const std::string out = path_join(dir, file);
    safetensors_write(out, in, ref.metadata());
    EXPECT_TRUE(file_read_text(out) == file_read_text(ref_path));
    EXPECT_FALSE(file_exists(out + ".tmp"));
  }
}

TEST(Safetensors, RoundTripAndDefaultMetadata) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> w(5 * 7);
  for (float& v : w) v = normal(rng);
  std::vector<uint16_t> h(3);
  for (size_t i = 0; i < h.size(); ++i) h[i] = f32_to_bf16(normal(rng));
  const std::string path = path_join(test::temp_dir("st-rt"), "rt.safetensors");
  safetensors_write(path, {{"w", "F32", {5, 7}, w.data(), w.size() * 4}, {"h", "BF16", {3}, h.data(), 6},
                           {"e", "F16", {0, 4}, nullptr, 0}});
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  std::vector<float> back(w.size());
  safetensors_to_f32(*f.find("w"), back.data());
  EXPECT_EQ(back, w);
  std::vector<float> hb(3);
  safetensors_to_f32(*f.find("h"), hb.data());
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(hb[i], bf16_to_f32(h[i]));
  EXPECT_EQ(f.find("e")->shape, (std::vector<int64_t>{0, 4}));
  // The header is padded so that the data starts 8-aligned.
  uint64_t n = 0;
  std::memcpy(&n, file_read_text(path).data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, WriterRejectsBadTensors) {
  const std::string path = path_join(test::temp_dir("st-wbad"), "x.safetensors");
  float v[2] = {1, 2};
  auto kind_of = [&](std::vector<SafetensorsWriteTensor> t) {
    try {
      safetensors_write(path, std::move(t));
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      return e.kind();
    }
    return ErrorKind::Io;  // "did not throw"
  };
  EXPECT_EQ(kind_of({{"a", "F33", {2}, v, 8}}), ErrorKind::InvalidArgument);
  EXPECT_EQ(kind_of({{"a", "F32", {3}, v, 8}}), ErrorKind::InvalidArgument);
  EXPECT_EQ(kind_of({{"a", "F32", {2}, v, 8}, {"a", "F32", {2}, v, 8}}), ErrorKind::InvalidArgument);
  EXPECT_FALSE(file_exists(path));
}

TEST(Safetensors, ToF32RejectsIntegersNamingTheTensor) {
  SafetensorsFile f = SafetensorsFile::open(test::fixture("safetensors/mixed.safetensors"));
  std::vector<float> out(8);
  try {
    safetensors_to_f32(*f.find("d.i64"), out.data());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("d.i64"), std::string::npos);
  }
}

TEST(Safetensors, DtypeMapping) {
  EXPECT_EQ(safetensors_dtype_to_kto("BF16"), DType::BF16);
  EXPECT_EQ(safetensors_dtype_to_kto("F64"), std::nullopt);
  EXPECT_STREQ(safetensors_dtype_name(DType::I64), "I64");
  EXPECT_THROW(safetensors_dtype_name(DType::NF4), Error);
}

TEST(SafetensorsCheckpoint, ReadsTransformersShards) {
  const nlohmann::json want = expected()["sharded"];
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(test::fixture("safetensors/sharded"));
  EXPECT_EQ(ck.n_files(), 3u);
  ASSERT_EQ(ck.names().size(), want.size());
  for (const auto& [name, w] : want.items()) {
    SCOPED_TRACE(name);
    const SafetensorsTensor& t = ck.get(name);
    EXPECT_EQ(t.shape, w["shape"].get<std::vector<int64_t>>());
    std::vector<float> v(static_cast<size_t>(t.numel()));
    safetensors_to_f32(t, v.data());
    double sum = 0;
    for (float x : v) sum += x;
    EXPECT_NEAR(sum, w["sum"].get<double>(), 1e-9 * (1 + static_cast<double>(v.size())));
    for (size_t i = 0; i < w["first"].size(); ++i) EXPECT_EQ(v[i], w["first"][i].get<double>());
  }
  try {
    ck.get("model.layers.9.mlp.up_proj.weight");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("model.layers.9.mlp.up_proj.weight"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("sharded"), std::string::npos);
  }
}

TEST(SafetensorsCheckpoint, SingleFileDirectory) {
  const std::string dir = test::temp_dir("st-single");
  float v[3] = {1, 2, 3};
  safetensors_write(path_join(dir, "model.safetensors"), {{"x", "F32", {3}, v, 12}});
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(dir);
  EXPECT_EQ(ck.names(), std::vector<std::string>{"x"});
  EXPECT_EQ(ck.find("y"), nullptr);
}

}  // namespace
}  // namespace kto
