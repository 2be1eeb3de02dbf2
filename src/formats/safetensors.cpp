// safetensors reader: validates a mapped file exactly as huggingface/safetensors `tensor.rs`
// (`SafeTensors::read_metadata` + `Metadata::validate`, crate 0.8) does, then hands out
// zero-copy views into the mapping. Layout and rules: spec/formats.md §1.1–§1.2.
#include "formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/safetensors_dtype.h"
#include "util/error.h"

namespace kto {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // safetensors MAX_HEADER_SIZE
constexpr const char* kRedo =
    "; the file is damaged or was not written by a safetensors writer: re-download or re-export it";

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Offset of the first byte that breaks UTF-8 (overlongs, surrogates and > U+10FFFF included),
// or npos when the text is valid.
size_t utf8_error_at(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return i;
    uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

struct Entry {
  SafetensorsTensor tensor;
  uint64_t begin = 0, end = 0;
};

// Parses the header JSON, remembering the first top-level key that occurs twice (nlohmann keeps
// only one of them, so duplicates must be caught while parsing).
nlohmann::json parse_header(const std::string& path, std::string_view text) {
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end(), on_event);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();  // "[json.exception.parse_error.101] parse error at …: <reason>"
    size_t cut = what.find(": ", what.find("parse error"));
    fail(ErrorKind::Format, path, ": the header is not valid JSON (at header byte ", e.byte, ": ",
         cut == std::string::npos ? what : what.substr(cut + 2), ")", kRedo);
  }
  if (!j.is_object()) fail(ErrorKind::Format, path, ": the header is JSON but not an object", kRedo);
  if (!duplicate.empty()) {
    fail(ErrorKind::Format, path, ": the header lists tensor '", duplicate, "' twice", kRedo);
  }
  return j;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const nlohmann::json& j) {
  std::map<std::string, std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object()) fail(ErrorKind::Format, path, ": __metadata__ is not an object of strings", kRedo);
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) {
      fail(ErrorKind::Format, path, ": __metadata__ value for '", key, "' is ", value.type_name(),
           ", not a string (safetensors metadata is a flat string-to-string map)", kRedo);
    }
    out[key] = value.get<std::string>();
  }
  return out;
}

// Non-negative integer that fits int64 (JSON numbers that are negative, fractional or huge fail).
bool as_count(const nlohmann::json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  *out = j.get<uint64_t>();
  return *out <= static_cast<uint64_t>(INT64_MAX);
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& j) {
  auto bad = [&](auto&&... what) {
    fail(ErrorKind::Format, path, ": tensor '", name, "': ", what..., kRedo);
  };
  if (!j.is_object()) bad("entry is ", j.type_name(), ", not an object with dtype/shape/data_offsets");
  Entry e;
  e.tensor.name = name;
  auto dt = j.find("dtype");
  if (dt == j.end() || !dt->is_string()) bad("missing or non-string \"dtype\"");
  e.tensor.dtype = dt->get<std::string>();
  const SafetensorsDtypeInfo* info = safetensors_dtype_info(e.tensor.dtype);
  if (!info) bad("unknown dtype \"", e.tensor.dtype, "\" (known: ", safetensors_dtype_list(), ")");
  auto sh = j.find("shape");
  if (sh == j.end() || !sh->is_array()) bad("missing \"shape\" or it is not an array");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    uint64_t dim = 0;
    if (!as_count(d, &dim)) bad("shape ", sh->dump(), " must hold non-negative integers");
    if (__builtin_mul_overflow(numel, dim, &numel)) bad("shape ", sh->dump(), " overflows 64 bits");
    e.tensor.shape.push_back(static_cast<int64_t>(dim));
  }
  auto off = j.find("data_offsets");
  if (off == j.end() || !off->is_array() || off->size() != 2 || !as_count((*off)[0], &e.begin) ||
      !as_count((*off)[1], &e.end)) {
    bad("\"data_offsets\" must be [BEGIN, END], two non-negative integers");
  }
  if (e.end < e.begin) bad("data_offsets ", off->dump(), " end before they begin");
  uint64_t bits = 0;
  if (__builtin_mul_overflow(numel, uint64_t{info->bits}, &bits) || numel > static_cast<uint64_t>(INT64_MAX)) {
    bad("shape ", sh->dump(), " overflows 64 bits");
  }
  if (bits % 8 != 0) bad("shape ", sh->dump(), " of ", e.tensor.dtype, " does not fill whole bytes");
  if (e.end - e.begin != bits / 8) {
    bad("shape ", sh->dump(), " of ", e.tensor.dtype, " needs ", bits / 8, " bytes but data_offsets ",
        off->dump(), " give ", e.end - e.begin);
  }
  e.tensor.nbytes = static_cast<size_t>(e.end - e.begin);
  return e;
}

// Data offsets sorted by position must tile [0, data_len) exactly: no gap, overlap or tail.
void check_layout(const std::string& path, const std::vector<Entry>& sorted, uint64_t header_end,
                  uint64_t file_size) {
  uint64_t at = 0;
  const std::string* prev = nullptr;
  for (const Entry& e : sorted) {
    if (e.begin > at) {
      fail(ErrorKind::Format, path, ": no tensor covers data bytes [", at, ", ", e.begin,
           ") (a gap before tensor '", e.tensor.name, "')", kRedo);
    }
    if (e.begin < at) {
      fail(ErrorKind::Format, path, ": tensor '", e.tensor.name, "' (data bytes [", e.begin, ", ", e.end,
           ")) overlaps tensor '", prev ? *prev : std::string(), "', which ends at byte ", at, kRedo);
    }
    at = e.end;
    prev = &e.tensor.name;
  }
  uint64_t data_len = file_size - header_end;
  if (at > data_len) {
    fail(ErrorKind::Format, path, ": file is truncated: the header says tensor data ends at byte ",
         header_end + at, " but the file has ", file_size, " bytes; re-download the file");
  }
  if (at < data_len) {
    fail(ErrorKind::Format, path, ": ", data_len - at, " unexpected bytes after the last tensor (data ends at byte ",
         header_end + at, ", the file has ", file_size, " bytes)", kRedo);
  }
}

}  // namespace

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const uint8_t* bytes = f.file_.data();
  const uint64_t size = f.file_.size();
  if (size < 8) {
    fail(ErrorKind::Format, path, ": file has ", size,
         " bytes, too short to be safetensors (it starts with an 8-byte header length)", kRedo);
  }
  const uint64_t n = read_u64_le(bytes);
  if (n > kMaxHeaderBytes) {
    fail(ErrorKind::Format, path, ": header length ", n, " exceeds the safetensors limit of ", kMaxHeaderBytes,
         " bytes", kRedo);
  }
  if (n > size - 8) {
    fail(ErrorKind::Format, path, ": file is truncated: its length field says the JSON header is ", n,
         " bytes but only ", size - 8, " bytes follow it; re-download the file");
  }
  std::string_view text(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(n));
  if (size_t bad = utf8_error_at(text); bad != std::string_view::npos) {
    fail(ErrorKind::Format, path, ": the header is not valid UTF-8 (at byte ", 8 + bad, ")", kRedo);
  }
  nlohmann::json header = parse_header(path, text);

  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      f.metadata_ = parse_metadata(path, value);
    } else {
      entries.push_back(parse_entry(path, key, value));
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_layout(path, entries, 8 + n, size);

  const uint8_t* data = bytes + 8 + n;
  f.tensors_.reserve(entries.size());
  for (Entry& e : entries) {
    e.tensor.data = data + e.begin;
    f.by_name_.emplace(e.tensor.name, f.tensors_.size());
    f.tensors_.push_back(std::move(e.tensor));
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void safetensors_to_f32(const SafetensorsTensor& t, float* out) {
  const auto n = static_cast<size_t>(t.numel());
  if (t.dtype == "F32") {
    KTO_ASSERT(t.nbytes == n * 4);
    if (t.nbytes > 0) std::memcpy(out, t.data, t.nbytes);
    return;
  }
  if (t.dtype != "BF16" && t.dtype != "F16") {
    fail(ErrorKind::Unsupported, "tensor '", t.name, "' has dtype ", t.dtype,
         "; only F32, BF16 and F16 tensors can be read as floats");
  }
  KTO_ASSERT(t.nbytes == n * 2);
  const bool bf16 = t.dtype == "BF16";
  for (size_t i = 0; i < n; ++i) {
    uint16_t bits;
    std::memcpy(&bits, t.data + 2 * i, 2);  // the mapping may be unaligned
    out[i] = bf16 ? bf16_to_f32(bits) : f16_to_f32(bits);
  }
}

}  // namespace kto
