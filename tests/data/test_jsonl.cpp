// JsonRowReader: JSONL and JSON-array datasets, and errors that name file:line.
#include <gtest/gtest.h>

#include <fstream>

#include "data/jsonl.h"
#include "test_util.h"
#include "util/error.h"

namespace kto {
namespace {

std::string write_file(const std::string& name, const std::string& text) {
  std::string path = test::temp_dir("jsonl") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(JsonRowReader, ReadsJsonlSkippingBlankLines) {
  std::string path = write_file("rows.jsonl", "{\"a\": 1}\n\n  \n{\"a\": 2}\r\n");
  JsonRowReader reader(path);
  auto first = reader.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->value["a"], 1);
  EXPECT_EQ(first->line, 1);
  auto second = reader.next();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->value["a"], 2);
  EXPECT_EQ(second->where(), path + ":4");
  EXPECT_FALSE(reader.next());
}

TEST(JsonRowReader, ReadsJsonArray) {
  std::string path = write_file("rows.json", "  [{\"a\": 1}, {\"a\": 2}]");
  JsonRowReader reader(path);
  EXPECT_EQ(reader.next()->value["a"], 1);
  auto second = reader.next();
  EXPECT_EQ(second->where(), path + " element 2");
  EXPECT_FALSE(reader.next());
}

TEST(JsonRowReader, MalformedLineNamesFileAndLine) {
  std::string path = write_file("bad.jsonl", "{\"a\": 1}\n{\"a\": \n");
  JsonRowReader reader(path);
  reader.next();
  try {
    reader.next();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Format);
    EXPECT_NE(std::string(e.what()).find(path + ":2"), std::string::npos) << e.what();
  }
}

TEST(JsonRowReader, NonObjectRowIsAnError) {
  std::string path = write_file("list.jsonl", "[1, 2]\n");
  // A line starting with '[' at the top of the file is read as a JSON array of non-objects.
  JsonRowReader reader(path);
  EXPECT_THROW(reader.next(), Error);
  EXPECT_THROW(JsonRowReader(write_file("missing-dir-file", "") + ".nope"), Error);
}

}  // namespace
}  // namespace kto
