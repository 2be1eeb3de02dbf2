// BPE encoding exactly as huggingface/tokenizers does it: BPE::merge_word builds the initial
// symbols (with byte fallback and unk fusing), Word::merge_all applies merges from a heap
// ordered by (rank, position), skipping entries whose pair no longer yields the same token.
#include "tokenizer/bpe.h"

#include <nlohmann/json.hpp>
#include <queue>

#include "tokenizer/json_fields.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace kto {

BpeModel BpeModel::from_json(const nlohmann::json& j, const std::string& where) {
  BpeModel m;
  const auto& vocab = json_field(j, "vocab", where);
  if (!vocab.is_object()) fail(ErrorKind::Format, where, ": model.vocab must be an object {token: id}");
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX) {
      fail(ErrorKind::Format, where, ": model.vocab['", it.key(), "'] must be a non-negative integer id");
    }
    auto id = static_cast<int32_t>(it.value().get<int64_t>());
    m.vocab_[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  m.id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  m.has_id_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : m.vocab_) {
    m.id_to_token_[static_cast<size_t>(id)] = token;
    m.has_id_[static_cast<size_t>(id)] = true;
  }

  m.continuing_subword_prefix_ = json_string_or(j, "continuing_subword_prefix", "", where);
  m.end_of_word_suffix_ = json_string_or(j, "end_of_word_suffix", "", where);
  m.fuse_unk_ = json_bool_or(j, "fuse_unk", false, where);
  m.byte_fallback_ = json_bool_or(j, "byte_fallback", false, where);
  m.ignore_merges_ = json_bool_or(j, "ignore_merges", false, where);
  if (j.contains("dropout") && j["dropout"].is_number() && j["dropout"].get<double>() > 0.0) {
    fail(ErrorKind::Unsupported, where, ": BPE dropout (random merges) is not supported; set \"dropout\": null");
  }
  std::string unk = json_string_or(j, "unk_token", "", where);
  if (!unk.empty()) {
    auto id = m.token_to_id(unk);
    if (!id) fail(ErrorKind::Format, where, ": unk_token '", unk, "' is not in model.vocab");
    m.unk_id_ = id;
  }
  m.byte_ids_.fill(-1);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    std::string code = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    if (auto id = m.token_to_id(code)) m.byte_ids_[static_cast<size_t>(b)] = *id;
  }

  const auto& merges = json_array(j, "merges", where);
  int32_t rank = 0;
  for (const auto& merge : merges) {
    if (merge.is_string()) {  // legacy "a b": split on the first space
      const std::string s = merge.get<std::string>();
      size_t space = s.find(' ');
      if (space == std::string::npos) fail(ErrorKind::Format, where, ": merge '", s, "' is not of the form \"a b\"");
      m.add_merge(s.substr(0, space), s.substr(space + 1), rank, where);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      m.add_merge(merge[0].get<std::string>(), merge[1].get<std::string>(), rank, where);
    } else {
      fail(ErrorKind::Format, where, ": merge #", rank, " must be \"a b\" or [\"a\", \"b\"], got ", merge.dump());
    }
    ++rank;
  }
  return m;
}

void BpeModel::add_merge(const std::string& a, const std::string& b, int32_t rank, const std::string& where) {
  auto a_id = token_to_id(a);
  auto b_id = token_to_id(b);
  if (!a_id || !b_id) fail(ErrorKind::Format, where, ": merge #", rank, " uses a token missing from model.vocab ('", a, "' '", b, "')");
  std::string_view tail(b);
  if (tail.substr(0, continuing_subword_prefix_.size()) == continuing_subword_prefix_) {
    tail.remove_prefix(continuing_subword_prefix_.size());
  }
  std::string merged = a + std::string(tail);
  auto new_id = token_to_id(merged);
  if (!new_id) fail(ErrorKind::Format, where, ": merge #", rank, " makes '", merged, "', which is not in model.vocab");
  merges_[pair_key(*a_id, *b_id)] = Merge{rank, *new_id};  // a repeated pair: the last one wins, as in tokenizers
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[static_cast<size_t>(id)]) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

// BPE::merge_word's first half: one symbol per character, or its <0xXX> bytes, or unk.
void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& ids, std::vector<uint32_t>& lens) const {
  struct PendingUnk {
    bool active = false;
    int32_t id = 0;
    uint32_t len = 0;
  } unk;
  auto add = [&](int32_t id, uint32_t len) {
    ids.push_back(id);
    lens.push_back(len);
  };
  size_t pos = 0;
  while (pos < word.size()) {
    size_t len = utf8::lead_length(static_cast<unsigned char>(word[pos]));
    std::string s(word.substr(pos, len));
    bool first = pos == 0;
    pos += len;
    bool last = pos >= word.size();
    if (!first) s = continuing_subword_prefix_ + s;
    if (last) s += end_of_word_suffix_;
    auto byte_len = static_cast<uint32_t>(len);
    if (auto id = token_to_id(s)) {
      if (unk.active) add(unk.id, unk.len);
      unk.active = false;
      add(*id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {  // tokenizers does not flush a pending unk here; neither do we
        for (char c : s) add(byte_ids_[static_cast<uint8_t>(c)], 1);
        continue;
      }
    }
    if (unk_id_) {
      if (unk.active && fuse_unk_) {
        unk.len += byte_len;
      } else {
        if (unk.active) add(unk.id, unk.len);
        unk = {true, *unk_id_, byte_len};
      }
    }
  }
  if (unk.active) add(unk.id, unk.len);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  std::vector<int32_t> ids;
  std::vector<uint32_t> lens;  // 0 marks a symbol merged into its left neighbour
  initial_symbols(word, ids, lens);
  const auto n = static_cast<int64_t>(ids.size());
  std::vector<int64_t> prev(ids.size()), next(ids.size());
  for (int64_t i = 0; i < n; ++i) {
    prev[static_cast<size_t>(i)] = i - 1;
    next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
  }
  struct Entry {
    int32_t rank;
    int64_t pos;
    int32_t new_id;
  };
  auto later = [](const Entry& x, const Entry& y) { return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos; };
  std::priority_queue<Entry, std::vector<Entry>, decltype(later)> queue(later);
  auto push_pair = [&](int64_t pos, int64_t right) {
    auto it = merges_.find(pair_key(ids[static_cast<size_t>(pos)], ids[static_cast<size_t>(right)]));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int64_t i = 0; i + 1 < n; ++i) push_pair(i, i + 1);

  while (!queue.empty()) {
    Entry top = queue.top();
    queue.pop();
    auto p = static_cast<size_t>(top.pos);
    if (lens[p] == 0 || next[p] < 0) continue;
    auto r = static_cast<size_t>(next[p]);
    auto current = merges_.find(pair_key(ids[p], ids[r]));
    if (current == merges_.end() || current->second.new_id != top.new_id) continue;  // stale entry
    ids[p] = top.new_id;
    lens[p] += lens[r];
    lens[r] = 0;
    next[p] = next[r];
    if (next[r] >= 0) prev[static_cast<size_t>(next[r])] = top.pos;
    if (prev[p] >= 0) push_pair(prev[p], top.pos);
    if (next[p] >= 0) push_pair(top.pos, next[p]);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (lens[i] != 0) out.push_back(ids[i]);
  }
}

}  // namespace kto
