// Every rejection of safetensors `read_metadata` / `Metadata::validate` (spec/formats.md §1.2),
// one test per case, on bytes built here; plus bad sharded indexes. Each error must be a Format
// error (NotFound for a missing shard) whose message starts with the file and names the problem.
#include <gtest/gtest.h>

#include <filesystem>

#include "formats/safetensors.h"
#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

std::string with_length(const std::string& header, const std::string& data, uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + data;
}
std::string file_bytes(const std::string& header, const std::string& data = "") {
  return with_length(header, data, header.size());
}

// Writes `bytes`, opens them, and returns the Format error's message (empty when none was thrown).
std::string open_error(const std::string& bytes) {
  const std::string path = path_join(test::temp_dir("st-bad"), "bad.safetensors");
  file_write_atomic(path, bytes);
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Format) << e.what();
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << "message must start with the path: " << msg;
    return msg;
  }
  return "";
}

#define EXPECT_OPEN_FAILS(bytes, needle)                                            \
  do {                                                                              \
    std::string msg_ = open_error(bytes);                                           \
    EXPECT_NE(msg_.find(needle), std::string::npos) << "message: '" << msg_ << "'"; \
  } while (0)

const std::string kF32x2 = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

TEST(SafetensorsMalformed, AcceptsTheBaseCase) {
  EXPECT_EQ(open_error(file_bytes("{" + kF32x2 + "}", std::string(8, 'x'))), "");
  EXPECT_EQ(open_error(file_bytes("  {" + kF32x2 + "}   ", std::string(8, 'x'))), "");  // JSON whitespace padding
  EXPECT_EQ(open_error(file_bytes("{}")), "");
}

TEST(SafetensorsMalformed, FileShorterThanEightBytes) { EXPECT_OPEN_FAILS(std::string(5, '\0'), "too short"); }

TEST(SafetensorsMalformed, HeaderLengthOverLimit) {
  EXPECT_OPEN_FAILS(with_length("{}", "", 100'000'001), "exceeds the safetensors limit");
}

TEST(SafetensorsMalformed, HeaderLengthPastEnd) { EXPECT_OPEN_FAILS(with_length("{}", "", 300), "truncated"); }

TEST(SafetensorsMalformed, HeaderNotUtf8) { EXPECT_OPEN_FAILS(file_bytes("{\"\xff\xfe\":1}"), "not valid UTF-8"); }

TEST(SafetensorsMalformed, HeaderNotJson) { EXPECT_OPEN_FAILS(file_bytes("{\"t\": {"), "not valid JSON"); }

TEST(SafetensorsMalformed, HeaderNotAnObject) { EXPECT_OPEN_FAILS(file_bytes("[1,2,3] "), "not an object"); }

TEST(SafetensorsMalformed, EntryNotAnObject) { EXPECT_OPEN_FAILS(file_bytes(R"({"t":5})"), "'t'"); }

TEST(SafetensorsMalformed, UnknownDtype) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"t":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x')),
                    "unknown dtype \"F33\"");
}

TEST(SafetensorsMalformed, ShapeNotNonNegativeIntegers) {
  for (const char* shape : {"[-2]", "[2.0]", "[\"2\"]", "2"}) {
    SCOPED_TRACE(shape);
    EXPECT_OPEN_FAILS(file_bytes(std::string(R"({"t":{"dtype":"F32","shape":)") + shape +
                                     R"(,"data_offsets":[0,8]}})",
                                 std::string(8, 'x')),
                      "shape");
  }
}

TEST(SafetensorsMalformed, ShapeOverflows) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                               std::string(8, 'x')),
                    "overflows");
}

TEST(SafetensorsMalformed, DataOffsetsNotTwoIntegers) {
  for (const char* off : {"[0]", "[0,8,8]", "[0,-8]", "[0,\"8\"]"}) {
    SCOPED_TRACE(off);
    EXPECT_OPEN_FAILS(file_bytes(std::string(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":)") + off + "}}",
                                 std::string(8, 'x')),
                      "data_offsets");
  }
}

TEST(SafetensorsMalformed, DataOffsetsEndBeforeBegin) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", std::string(8, 'x')),
                    "end before they begin");
}

TEST(SafetensorsMalformed, SizeDoesNotMatchShape) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x')),
                    "needs 12 bytes");
}

TEST(SafetensorsMalformed, SubByteDtypeNotWholeBytes) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"t":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", std::string(2, 'x')),
                    "whole bytes");
}

TEST(SafetensorsMalformed, GapBetweenTensors) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                               R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
                               std::string(6, 'x')),
                    "gap before tensor 'b'");
}

TEST(SafetensorsMalformed, DataNotStartingAtZero) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", std::string(4, 'x')),
                    "no tensor covers data bytes [0, 2)");
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                               R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                               std::string(4, 'x')),
                    "overlaps");
}

TEST(SafetensorsMalformed, DataPastEndOfFile) {
  EXPECT_OPEN_FAILS(file_bytes("{" + kF32x2 + "}", std::string(5, 'x')),
                    "file is truncated: the header says tensor data ends at byte");
}

TEST(SafetensorsMalformed, BytesAfterLastTensor) {
  EXPECT_OPEN_FAILS(file_bytes("{" + kF32x2 + "}", std::string(9, 'x')), "1 unexpected bytes after the last tensor");
}

TEST(SafetensorsMalformed, DuplicateNames) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                               R"("t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                               std::string(2, 'x')),
                    "lists tensor 't' twice");
}

TEST(SafetensorsMalformed, MetadataNotStringToString) {
  EXPECT_OPEN_FAILS(file_bytes(R"({"__metadata__":{"format":"pt","n":3}})"), "__metadata__ value for 'n'");
  EXPECT_OPEN_FAILS(file_bytes(R"({"__metadata__":{"nested":{"a":"b"}}})"), "__metadata__ value for 'nested'");
  EXPECT_OPEN_FAILS(file_bytes(R"({"__metadata__":["pt"]})"), "__metadata__ is not an object");
}

// --- sharded checkpoints ------------------------------------------------------------------------

std::string sharded_copy(const std::string& tag) {
  const std::string dir = test::temp_dir(tag);
  for (const auto& e : std::filesystem::directory_iterator(test::fixture("safetensors/sharded"))) {
    std::filesystem::copy_file(e.path(), std::filesystem::path(dir) / e.path().filename());
  }
  return dir;
}

Error open_dir_error(const std::string& dir) {
  try {
    SafetensorsCheckpoint::open_dir(dir);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "open_dir(" << dir << ") did not throw";
  return Error(ErrorKind::Io, "");
}

TEST(SafetensorsCheckpointMalformed, IndexNotJson) {
  const std::string dir = sharded_copy("ck-json");
  const std::string index = path_join(dir, "model.safetensors.index.json");
  file_write_atomic(index, "{\"weight_map\": {\n  \"a\": }");
  Error e = open_dir_error(dir);
  EXPECT_EQ(e.kind(), ErrorKind::Format);
  EXPECT_NE(std::string(e.what()).find(index + ":2:"), std::string::npos) << e.what();
}

TEST(SafetensorsCheckpointMalformed, IndexWithoutWeightMap) {
  const std::string dir = sharded_copy("ck-nomap");
  const std::string index = path_join(dir, "model.safetensors.index.json");
  file_write_atomic(index, R"({"metadata": {"total_size": 4}})");
  Error e = open_dir_error(dir);
  EXPECT_EQ(e.kind(), ErrorKind::Format);
  EXPECT_EQ(std::string(e.what()).rfind(index + ": has no \"weight_map\"", 0), 0u) << e.what();
}

TEST(SafetensorsCheckpointMalformed, MissingShardNamesIndexAndShard) {
  const std::string dir = sharded_copy("ck-shard");
  std::filesystem::remove(path_join(dir, "model-00002-of-00003.safetensors"));
  Error e = open_dir_error(dir);
  const std::string msg = e.what();
  EXPECT_EQ(e.kind(), ErrorKind::NotFound);
  EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-00002-of-00003.safetensors"), std::string::npos) << msg;
}

TEST(SafetensorsCheckpointMalformed, TensorAbsentFromItsShard) {
  const std::string dir = sharded_copy("ck-absent");
  const std::string index = path_join(dir, "model.safetensors.index.json");
  file_write_atomic(index, R"({"weight_map": {"lm_head.weight": "model-00001-of-00003.safetensors"}})");
  Error e = open_dir_error(dir);
  EXPECT_EQ(e.kind(), ErrorKind::Format);
  EXPECT_NE(std::string(e.what()).find("'lm_head.weight'"), std::string::npos) << e.what();
}

TEST(SafetensorsCheckpointMalformed, ShardOutsideTheDirectory) {
  const std::string dir = sharded_copy("ck-escape");
  file_write_atomic(path_join(dir, "model.safetensors.index.json"), R"({"weight_map": {"a": "../x.safetensors"}})");
  EXPECT_EQ(open_dir_error(dir).kind(), ErrorKind::Format);
}

TEST(SafetensorsCheckpointMalformed, DirectoryWithoutWeights) {
  const std::string dir = test::temp_dir("ck-empty");
  Error e = open_dir_error(dir);
  EXPECT_EQ(e.kind(), ErrorKind::NotFound);
  EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos);
  EXPECT_EQ(open_dir_error(path_join(dir, "nope")).kind(), ErrorKind::NotFound);
}

}  // namespace
}  // namespace kto
