// Dataset rows normalised to KTO's unpaired {prompt, completion, label} (shared/spec/kto.md §1),
// mirroring what TRL v1.9's KTOTrainer._prepare_dataset does before tokenising: `extract_prompt`
// for paired rows without a prompt, then `unpair_preference_dataset` (a batched datasets.map of
// 1000 rows: the block's chosen rows, then its rejected rows). Also accepted: instruction rows
// and pre-tokenised rows. Conversational rows (message lists, data/conversation.h) keep their
// messages for the chat template.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/conversation.h"
#include "data/jsonl.h"

namespace kto {

// `trl_compat: true` in the config: reproduce TRL's order and its quirks exactly.
enum class TrlCompat { No, Yes };

// Where an example came from; formats like DataRow::where().
struct SourceRef {
  int32_t file = 0;  // index into the dataset's file list
  bool in_array = false;
  int64_t line = 0;  // JSONL line or JSON-array element, 1-based
};

enum class RowShape {
  Text,    // {prompt, completion, label}, also {instruction, response|output, label}
  Tokens,  // {prompt_ids, completion_ids, label}: taken as given (no EOS, no truncation here)
  Paired,  // {prompt?, chosen, rejected}: `completion` holds chosen, `rejected` the other
};

// TRL's two dataset types: strings, or lists of messages rendered with the chat template.
enum class RowFormat { Standard, Conversational };

struct SourceRow {
  SourceRef source;
  RowShape shape = RowShape::Text;
  RowFormat format = RowFormat::Standard;  // Text and Paired rows
  bool label = true;  // true = desirable; unused for Paired
  std::string prompt, completion, rejected;         // RowFormat::Standard
  Messages prompt_messages, completion_messages, rejected_messages;  // RowFormat::Conversational
  std::vector<int32_t> prompt_ids, completion_ids;  // RowShape::Tokens only
};

// The dataset files named by `path`: the file itself, or a folder's *.jsonl / *.json files
// sorted by name. A missing path or an empty folder is NotFound; parquet/arrow is Unsupported.
std::vector<std::string> dataset_files(const std::string& path);

// Detects the row's shape and format and validates it. `file_index` fills SourceRef::file.
// Conversational rows (row_is_conversational): {prompt, completion, label} message lists,
// {messages|conversations, label} split at the last assistant message, {prompt?, chosen,
// rejected} lists (no prompt: extract_prompt_messages). Throws kto::Error naming row.where()
// for: a missing or unrecognised label (accepted: true/false, "true"/"false" in any case, 1/0),
// an empty completion (or chosen/rejected), non-string fields, malformed messages
// (conversation.h) and rows of no known shape.
SourceRow parse_source_row(const DataRow& row, int32_t file_index, TrlCompat compat);

// Reads every row of `files` in order (file index = position in `files`).
std::vector<SourceRow> read_source_rows(std::span<const std::string> files, TrlCompat compat);

// Replaces paired rows by two unpaired rows (label true for chosen, false for rejected). Each
// run of consecutive paired rows is unpaired in blocks of 1000 pairs: the block's chosen rows,
// then its rejected rows, as TRL's batched map does. Other rows pass through in place.
std::vector<SourceRow> unpair_rows(std::vector<SourceRow> rows);

// TRL's `extract_prompt` for strings: the longest common prefix of chosen and rejected, in
// characters (Unicode code points); when the character before the first difference is a space
// it goes to the completions. Quirks kept from TRL: when one string is a prefix of the other
// (or they are equal) the prompt is one character short of it; with TrlCompat::Yes, when the
// first characters differ and `chosen` ends in a space, Python's chosen[-1] makes the prompt
// chosen minus its last character (TrlCompat::No gives an empty prompt there). Both strings
// must be non-empty valid UTF-8.
struct ExtractedPrompt {
  std::string prompt, chosen, rejected;
};
ExtractedPrompt extract_prompt(const std::string& chosen, const std::string& rejected, TrlCompat compat);

// Formats a SourceRef as "file:line" (or "file element N") given the dataset's file list.
std::string source_where(const SourceRef& source, std::span<const std::string> files);

}  // namespace kto
