// The BPE model of huggingface/tokenizers (models/bpe/{model,word}.rs): vocab, ranked merges in
// both JSON forms ("a b" and ["a","b"]), ignore_merges, byte_fallback to <0xXX>, unk with
// fuse_unk, continuing_subword_prefix / end_of_word_suffix. Immutable after loading, so
// tokenize() may be called from several threads.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kto {

class BpeModel {
 public:
  // `j` is tokenizer.json's "model" object; `where` names the file in errors.
  static BpeModel from_json(const nlohmann::json& j, const std::string& where);

  // Appends the ids of one pre-token (already byte-level mapped where the pipeline does so).
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // null when no vocab entry has this id
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }
  size_t vocab_count() const { return vocab_.size(); }  // tokenizers' Model::get_vocab_size

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void add_merge(const std::string& a, const std::string& b, int32_t rank, const std::string& where);
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids, std::vector<uint32_t>& lens) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};  // <0xXX> ids, -1 where absent
};

}  // namespace kto
