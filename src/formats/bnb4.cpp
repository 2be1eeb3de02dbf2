// Reading bitsandbytes 4-bit layers (bnb.functional.QuantState.from_dict, Params4bit.from_prequantized):
// the quant state's JSON gives blocksize, dtype, shape and the nested offset; the tensors give
// the packed bytes (any quant_storage dtype: the bytes are reinterpreted), the absmax and the
// code tables.
#include "formats/bnb4.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace kto {
namespace {

constexpr const char* kNf4StateSuffix = ".quant_state.bitsandbytes__nf4";
constexpr const char* kFp4StateSuffix = ".quant_state.bitsandbytes__fp4";

struct Reader {
  const SafetensorsCheckpoint& ckpt;
  const std::string& name;
  std::vector<std::string>& used;

  [[noreturn]] void bad(const std::string& what) const {
    fail(ErrorKind::Format, ckpt.dir(), ": 4-bit layer ", name, ": ", what,
         "; the checkpoint is not a bitsandbytes 4-bit checkpoint we can read (re-save it with transformers, or "
         "load the unquantised model with load_in_4bit: true)");
  }

  const SafetensorsTensor& tensor(const std::string& suffix) const {
    const SafetensorsTensor* t = ckpt.find(name + suffix);
    if (!t) bad("missing tensor " + name + suffix);
    used.push_back(name + suffix);
    return *t;
  }

  // Copies `t` (dtype `dtype`, `numel` elements) into a fresh host tensor of `kto_dtype`.
  HostTensor copy(const SafetensorsTensor& t, const char* dtype, DType kto_dtype, int64_t numel) const {
    if (t.dtype != dtype || t.numel() != numel) {
      bad(str_cat("tensor ", t.name, " is ", t.dtype, " with ", t.numel(), " elements, expected ", dtype, " with ", numel));
    }
    HostTensor out(kto_dtype, Shape{numel});
    std::memcpy(out.view().data, t.data, t.nbytes);
    return out;
  }
};

DType dtype_from_torch_name(const std::string& name) {
  if (name == "bfloat16") return DType::BF16;
  if (name == "float16") return DType::F16;
  if (name == "float32") return DType::F32;
  return DType::U8;  // not a float type: rejected by the caller
}

}  // namespace

bool bnb4_is_quantized(const SafetensorsCheckpoint& checkpoint, std::string_view weight_name) {
  const std::string base(weight_name);
  return checkpoint.find(base + kNf4StateSuffix) != nullptr || checkpoint.find(base + kFp4StateSuffix) != nullptr;
}

Nf4Tensor bnb4_load(const SafetensorsCheckpoint& checkpoint, const std::string& weight_name, int64_t rows,
                    int64_t cols, std::vector<std::string>& used) {
  const Reader r{checkpoint, weight_name, used};
  if (checkpoint.find(weight_name + kFp4StateSuffix)) {
    fail(ErrorKind::Unsupported, checkpoint.dir(), ": ", weight_name,
         " is a bitsandbytes FP4 layer; only NF4 (bnb_4bit_quant_type nf4) is supported. Load the unquantised "
         "model with load_in_4bit: true instead");
  }
  const SafetensorsTensor& blob = r.tensor(kNf4StateSuffix);
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(blob.data), blob.nbytes));
  } catch (const nlohmann::json::exception& e) {
    r.bad(str_cat("quant state is not JSON (", e.what(), ")"));
  }
  Nf4Tensor out;
  try {
    if (state.value("quant_type", std::string("nf4")) != "nf4") r.bad("quant_type is not nf4");
    out.blocksize = state.at("blocksize").get<int64_t>();
    out.dtype = dtype_from_torch_name(state.at("dtype").get<std::string>());
    const auto shape = state.at("shape").get<std::vector<int64_t>>();
    if (shape != std::vector<int64_t>{rows, cols}) {
      r.bad(str_cat("quant state shape ", state.at("shape").dump(), " but config.json implies [", rows, ", ", cols, "]"));
    }
    if (state.contains("nested_offset")) {
      if (state.value("nested_dtype", std::string("float32")) != "float32") r.bad("nested_dtype is not float32");
      out.nested_blocksize = state.at("nested_blocksize").get<int64_t>();
      out.nested_offset = state.at("nested_offset").get<float>();
    }
  } catch (const nlohmann::json::exception& e) {
    r.bad(str_cat("quant state ", state.dump(), ": ", e.what()));
  }
  if (out.dtype == DType::U8) r.bad("quant state dtype " + state.at("dtype").dump() + " is not a float type");
  if (out.blocksize < 32 || out.blocksize > 4096 || (out.blocksize & (out.blocksize - 1)) != 0) {
    r.bad(str_cat("blocksize ", out.blocksize, " is not one of 32, 64, …, 4096"));
  }
  if (out.nested_blocksize < 1) r.bad("nested_blocksize must be positive");
  out.rows = rows, out.cols = cols;
  const int64_t numel = rows * cols, n_blocks = (numel + out.blocksize - 1) / out.blocksize;

  const SafetensorsTensor& packed = r.tensor("");
  if (static_cast<int64_t>(packed.nbytes) != (numel + 1) / 2) {
    r.bad(str_cat("packed weight has ", packed.nbytes, " bytes, a [", rows, ", ", cols, "] 4-bit weight needs ",
                  (numel + 1) / 2));
  }
  out.packed = HostTensor(DType::U8, Shape{(numel + 1) / 2});
  std::memcpy(out.packed.view().data, packed.data, packed.nbytes);  // bytes reinterpreted (quant_storage)
  out.code = r.copy(r.tensor(".quant_map"), "F32", DType::F32, 16);
  if (state.contains("nested_offset")) {
    out.absmax = r.copy(r.tensor(".absmax"), "U8", DType::U8, n_blocks);
    const int64_t n_nested = (n_blocks + out.nested_blocksize - 1) / out.nested_blocksize;
    out.nested_absmax = r.copy(r.tensor(".nested_absmax"), "F32", DType::F32, n_nested);
    out.nested_code = r.copy(r.tensor(".nested_quant_map"), "F32", DType::F32, kDynamicMapSize);
  } else {
    out.absmax = r.copy(r.tensor(".absmax"), "F32", DType::F32, n_blocks);
  }
  return out;
}

}  // namespace kto
