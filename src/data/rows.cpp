// Row shapes, label coercion and unpairing, following TRL v1.9 (trl/data_utils.py:
// `extract_prompt`, `unpair_preference_dataset`; trl/trainer/kto_trainer.py `_prepare_dataset`).
#include "data/rows.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace kto {

namespace {

using nlohmann::json;

constexpr size_t kUnpairBlock = 1000;  // datasets.map(batched=True)'s default batch size

const char* const kShapes =
    "accepted rows: {prompt, completion, label} (strings or message lists), {messages|conversations, label}, "
    "{instruction, response|output, label}, {prompt?, chosen, rejected} or {prompt_ids, completion_ids, label}";

bool has(const json& v, const char* key) { return v.contains(key) && !v[key].is_null(); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string get_string(const json& v, const char* key, const DataRow& row) {
  const json& field = v[key];
  if (!field.is_string()) {
    fail(ErrorKind::Format, row.where(), ": `", key, "` must be a string, got ", field.type_name(), " (", kShapes, ")");
  }
  return field.get<std::string>();
}

bool parse_label(const json& v, const DataRow& row) {
  const char* accepted = "; accepted labels: true/false, \"true\"/\"false\" (any case), 1/0";
  if (!has(v, "label")) fail(ErrorKind::Format, row.where(), ": the row has no `label`", accepted);
  const json& label = v["label"];
  if (label.is_boolean()) return label.get<bool>();
  if (label.is_number_integer()) {
    const int64_t n = label.get<int64_t>();
    if (n == 0 || n == 1) return n == 1;
  }
  if (label.is_string()) {
    const std::string s = lower(label.get<std::string>());
    if (s == "true" || s == "1") return true;
    if (s == "false" || s == "0") return false;
  }
  fail(ErrorKind::Format, row.where(), ": label ", label.dump(), " is not a boolean", accepted);
}

std::vector<int32_t> get_ids(const json& v, const char* key, const DataRow& row) {
  const json& field = v[key];
  if (!field.is_array()) fail(ErrorKind::Format, row.where(), ": `", key, "` must be a list of token ids");
  std::vector<int32_t> ids;
  ids.reserve(field.size());
  for (const json& id : field) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      fail(ErrorKind::Format, row.where(), ": `", key, "` holds ", id.dump(), ", not a token id (an integer >= 0)");
    }
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return ids;
}

void require_completion(const std::string& text, const char* key, const DataRow& row) {
  if (text.empty()) {
    fail(ErrorKind::Format, row.where(), ": empty `", key, "`; every row needs a non-empty completion (drop or fix this row)");
  }
}

// Byte offsets of each code point's start in a valid UTF-8 string, plus s.size() at the end.
std::vector<size_t> code_point_starts(const std::string& s) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
  }
  starts.push_back(s.size());
  return starts;
}

void parse_paired(const json& v, const DataRow& row, TrlCompat compat, SourceRow& out) {
  out.shape = RowShape::Paired;
  std::string chosen = get_string(v, "chosen", row), rejected = get_string(v, "rejected", row);
  require_completion(chosen, "chosen", row);
  require_completion(rejected, "rejected", row);
  if (has(v, "prompt")) {
    out.prompt = get_string(v, "prompt", row);
    out.completion = std::move(chosen);
    out.rejected = std::move(rejected);
    return;
  }
  ExtractedPrompt e = extract_prompt(chosen, rejected, compat);
  out.prompt = std::move(e.prompt);
  out.completion = std::move(e.chosen);
  out.rejected = std::move(e.rejected);
}

// Conversational rows: message lists throughout (a string among them is a Format error).
void parse_conversational(const json& v, const DataRow& row, SourceRow& out) {
  out.format = RowFormat::Conversational;
  if (has(v, "chosen") || has(v, "rejected")) {
    if (!has(v, "chosen") || !has(v, "rejected")) {
      fail(ErrorKind::Format, row.where(), ": a paired row needs both `chosen` and `rejected`");
    }
    out.shape = RowShape::Paired;
    Messages chosen = messages_parse(row, "chosen"), rejected = messages_parse(row, "rejected");
    if (has(v, "prompt")) {
      out.prompt_messages = messages_parse(row, "prompt");
      out.completion_messages = std::move(chosen);
      out.rejected_messages = std::move(rejected);
      return;
    }
    ExtractedMessages e = extract_prompt_messages(chosen, rejected, row);
    out.prompt_messages = std::move(e.prompt);
    out.completion_messages = std::move(e.chosen);
    out.rejected_messages = std::move(e.rejected);
    return;
  }
  std::optional<PromptCompletionMessages> pc = conversation_prompt_completion(row);
  if (!pc) {
    fail(ErrorKind::Format, row.where(), ": a conversational row needs `prompt` and `completion` message lists, "
         "`messages` or `conversations` (", kShapes, ")");
  }
  out.prompt_messages = std::move(pc->prompt);
  out.completion_messages = std::move(pc->completion);
  out.label = parse_label(v, row);
}

void parse_instruction(const json& v, const DataRow& row, SourceRow& out) {
  // Alpaca-style rows: a non-empty `input` joins the instruction with "\n" (LLaMA-Factory's rule).
  out.prompt = get_string(v, "instruction", row);
  if (has(v, "input")) {
    const std::string input = get_string(v, "input", row);
    if (!input.empty()) out.prompt += (out.prompt.empty() ? "" : "\n") + input;
  }
  out.completion = get_string(v, has(v, "response") ? "response" : "output", row);
  require_completion(out.completion, has(v, "response") ? "response" : "output", row);
  out.label = parse_label(v, row);
}

}  // namespace

std::vector<std::string> dataset_files(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto is_unsupported = [](const fs::path& p) {
    const std::string ext = lower(p.extension().string());
    return ext == ".parquet" || ext == ".arrow";
  };
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> files;
    for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
      const std::string ext = lower(entry.path().extension().string());
      if (entry.is_regular_file(ec) && (ext == ".jsonl" || ext == ".json")) files.push_back(entry.path().string());
    }
    if (files.empty()) fail(ErrorKind::NotFound, path, ": the folder has no .jsonl or .json dataset files");
    std::sort(files.begin(), files.end());
    return files;
  }
  if (!fs::is_regular_file(path, ec)) {
    fail(ErrorKind::NotFound, path, ": dataset not found (expected a .jsonl or .json file, or a folder of them)");
  }
  if (is_unsupported(path)) {
    fail(ErrorKind::Unsupported, path, ": parquet/arrow datasets are not supported yet; convert to JSONL first");
  }
  return {path};
}

SourceRow parse_source_row(const DataRow& row, int32_t file_index, TrlCompat compat) {
  const json& v = row.value;
  SourceRow out;
  out.source = SourceRef{file_index, row.in_array, row.line};
  if (row_is_conversational(v)) {
    parse_conversational(v, row, out);
  } else if (has(v, "chosen") || has(v, "rejected")) {
    if (!has(v, "chosen") || !has(v, "rejected")) {
      fail(ErrorKind::Format, row.where(), ": a paired row needs both `chosen` and `rejected`");
    }
    parse_paired(v, row, compat, out);
  } else if (has(v, "completion_ids")) {
    out.shape = RowShape::Tokens;
    if (has(v, "prompt_ids")) out.prompt_ids = get_ids(v, "prompt_ids", row);
    out.completion_ids = get_ids(v, "completion_ids", row);
    if (out.completion_ids.empty()) fail(ErrorKind::Format, row.where(), ": empty `completion_ids`; every row needs a non-empty completion");
    out.label = parse_label(v, row);
  } else if (has(v, "completion")) {
    if (!has(v, "prompt")) fail(ErrorKind::Format, row.where(), ": the row has a `completion` but no `prompt` (", kShapes, ")");
    out.prompt = get_string(v, "prompt", row);
    out.completion = get_string(v, "completion", row);
    require_completion(out.completion, "completion", row);
    out.label = parse_label(v, row);
  } else if (has(v, "instruction") && (has(v, "response") || has(v, "output"))) {
    parse_instruction(v, row, out);
  } else {
    fail(ErrorKind::Format, row.where(), ": unrecognised row (", kShapes, ")");
  }
  return out;
}

std::vector<SourceRow> read_source_rows(std::span<const std::string> files, TrlCompat compat) {
  std::vector<SourceRow> rows;
  for (size_t f = 0; f < files.size(); ++f) {
    JsonRowReader reader(files[f]);
    while (std::optional<DataRow> row = reader.next()) {
      rows.push_back(parse_source_row(*row, static_cast<int32_t>(f), compat));
    }
  }
  return rows;
}

std::vector<SourceRow> unpair_rows(std::vector<SourceRow> rows) {
  std::vector<SourceRow> out;
  out.reserve(rows.size() * 2);
  size_t i = 0;
  while (i < rows.size()) {
    if (rows[i].shape != RowShape::Paired) {
      out.push_back(std::move(rows[i++]));
      continue;
    }
    size_t end = i;
    while (end < rows.size() && end - i < kUnpairBlock && rows[end].shape == RowShape::Paired) ++end;
    for (size_t k = i; k < end; ++k) {
      SourceRow chosen = rows[k];
      chosen.shape = RowShape::Text;
      chosen.label = true;
      chosen.rejected.clear();
      chosen.rejected_messages = Messages();
      out.push_back(std::move(chosen));
    }
    for (size_t k = i; k < end; ++k) {
      SourceRow rejected = std::move(rows[k]);
      rejected.shape = RowShape::Text;
      rejected.label = false;
      rejected.completion = std::move(rejected.rejected);
      rejected.completion_messages = std::move(rejected.rejected_messages);
      rejected.rejected.clear();
      rejected.rejected_messages = Messages();
      out.push_back(std::move(rejected));
    }
    i = end;
  }
  return out;
}

ExtractedPrompt extract_prompt(const std::string& chosen, const std::string& rejected, TrlCompat compat) {
  const std::vector<size_t> c = code_point_starts(chosen), r = code_point_starts(rejected);
  const size_t n = std::min(c.size(), r.size()) - 1;  // code points in the shorter string
  KTO_ASSERT(n > 0, "extract_prompt needs non-empty strings");
  auto cp = [](const std::string& s, const std::vector<size_t>& at, size_t i) {
    return std::string_view(s).substr(at[i], at[i + 1] - at[i]);
  };
  // Python: `for idx in range(n)` ends with idx = n - 1 when nothing differs.
  size_t chosen_cut = c[n - 1], rejected_cut = r[n - 1];
  for (size_t idx = 0; idx < n; ++idx) {
    if (cp(chosen, c, idx) == cp(rejected, r, idx)) continue;
    chosen_cut = c[idx];
    rejected_cut = r[idx];
    if (idx > 0 && chosen[c[idx - 1]] == ' ') {
      chosen_cut = c[idx - 1];
      rejected_cut = r[idx - 1];
    } else if (idx == 0 && compat == TrlCompat::Yes && chosen.back() == ' ') {
      chosen_cut = c[c.size() - 2];  // idx = -1: chosen[:-1], chosen[-1:], rejected[-1:]
      rejected_cut = r[r.size() - 2];
    }
    break;
  }
  return {chosen.substr(0, chosen_cut), chosen.substr(chosen_cut), rejected.substr(rejected_cut)};
}

std::string source_where(const SourceRef& source, std::span<const std::string> files) {
  const std::string& file = files[static_cast<size_t>(source.file)];
  return source.in_array ? str_cat(file, " element ", source.line) : str_cat(file, ":", source.line);
}

}  // namespace kto
