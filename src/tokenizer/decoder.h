// tokenizer.json `decoder`: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and
// Sequence, mirroring huggingface/tokenizers decoders/*.rs `decode_chain` (token strings in,
// token strings out; the caller joins them).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kto {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Null for a JSON null; Unsupported for an unknown type.
std::unique_ptr<const Decoder> decoder_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace kto
