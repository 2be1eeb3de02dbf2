// Merging a LoRA adapter into its base model and saving the result as a complete Hugging Face
// checkpoint: PEFT's merge_and_unload (W += scale·B·A, computed in fp32) followed by
// transformers' save_pretrained (config.json with the dtype, safetensors sharded by
// huggingface_hub's split_state_dict_into_shards_factory with model.safetensors.index.json),
// plus the tokenizer files, generation_config.json and a model card.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "model/config.h"
#include "model/lora.h"
#include "model/weights.h"

namespace kto {

// Adds scale·B·A of every targeted module of `adapter` to `weights` in fp32, in PEFT's
// get_delta_weight order: B·A accumulated over r = 0..R-1 with fused multiply-adds (what
// torch's CPU matmul does for these shapes), times the scale, then added to W.
// InvalidArgument when the adapter's layer count does not match.
void merge_lora_into(Weights& weights, const LoraAdapter& adapter);

enum class MergeDtype { F32, BF16, F16 };
std::optional<MergeDtype> merge_dtype_parse(std::string_view name);  // "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16"
// The dtype of config.torch_dtype when it is one of the three, else BF16.
MergeDtype merge_dtype_default(const ModelConfig& config);

// huggingface_hub parse_size_to_int: "5GB" = 5e9, "150KB" = 150000 (units KB MB GB TB, decimal).
// InvalidArgument otherwise.
uint64_t merge_parse_size(const std::string& size);

struct MergeOptions {
  std::string output_dir;
  MergeDtype dtype = MergeDtype::BF16;
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers 4.x's default "5GB"
  std::string base_model;  // for the model card (the --model argument)
  std::string adapter;     // for the model card (the --adapter argument; "" = none)
};

// Writes the checkpoint of `weights` (a model whose original files are in `model_dir`) into
// options.output_dir (created; existing shard files of a previous save are removed). Throws
// kto::Error (Io, InvalidArgument).
void merge_save_checkpoint(const ModelConfig& config, const Weights& weights, const std::string& model_dir,
                           const MergeOptions& options);

}  // namespace kto
