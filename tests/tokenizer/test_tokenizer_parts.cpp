// Unit tests of the tokenizer's parts against values from outside: GPT-2's bytes_to_unicode
// table, Rust's from_utf8_lossy, tokenizers' split behaviours, and BPE merges in both JSON
// forms; plus the error messages for files kto cannot load.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pattern.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace kto {
namespace {

TEST(ByteLevel, MatchesGpt2BytesToUnicode) {
  // From GPT-2's encoder.py bytes_to_unicode().
  EXPECT_EQ(byte_level_char(' '), U'\u0120');   // Ġ
  EXPECT_EQ(byte_level_char('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(byte_level_char(0), U'\u0100');
  EXPECT_EQ(byte_level_char('!'), U'!');
  EXPECT_EQ(byte_level_char(0x7F), U'\u0121');
  EXPECT_EQ(byte_level_char(0xAD), U'\u0143');  // soft hyphen is not printable
  EXPECT_EQ(byte_level_char(0xFF), U'\u00FF');
  for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_level_byte(byte_level_char(static_cast<uint8_t>(b))), b);
  EXPECT_FALSE(byte_level_byte(U'\u0144').has_value());
  EXPECT_FALSE(byte_level_byte(U' ').has_value());
  EXPECT_EQ(byte_level_encode("a b\n"), "a\xC4\xA0" "b\xC4\x8A");
}

TEST(Utf8, LossyReplacesMaximalSubpartsLikeRust) {
  // String::from_utf8_lossy(b"Hello \xF0\x90\x80World") == "Hello \u{FFFD}World"
  EXPECT_EQ(utf8::from_lossy("Hello \xF0\x90\x80World"), "Hello \xEF\xBF\xBDWorld");
  // b"\xE0\x80\xAF": E0 cannot be followed by 80, so three replacements.
  EXPECT_EQ(utf8::from_lossy("\xE0\x80\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8::from_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8::from_lossy("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(utf8::from_lossy("\xE2\x96\x81"), "\xE2\x96\x81");
  EXPECT_TRUE(utf8::is_valid("\xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8::is_valid("\xC0\xAF"));  // overlong
  EXPECT_FALSE(utf8::is_valid("\xF4\x90\x80\x80"));  // above U+10FFFF
}

std::vector<std::string> split_with(const std::string& text, const Pattern& p, SplitBehavior b) {
  std::vector<std::string> out;
  for (const Span& s : split_behavior_apply(p.find_matches(text), b)) out.push_back(text.substr(s.begin, s.end - s.begin));
  return out;
}

TEST(Split, BehavioursMatchTokenizersDocs) {
  // The examples of tokenizers' SplitDelimiterBehavior docs: "the-final--countdown" on '-'.
  Pattern dash = Pattern::literal("-");
  const std::string text = "the-final--countdown";
  using V = std::vector<std::string>;
  EXPECT_EQ(split_with(text, dash, SplitBehavior::Removed), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split_with(text, dash, SplitBehavior::Isolated), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split_with(text, dash, SplitBehavior::MergedWithPrevious), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split_with(text, dash, SplitBehavior::MergedWithNext), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split_with(text, dash, SplitBehavior::Contiguous), (V{"the", "-", "final", "--", "countdown"}));
}

TEST(Pattern, EmptyMatchesFollowOniguruma) {
  Pattern p = Pattern::regex("a*", "test");
  auto spans = p.find_all("baab");
  // Oniguruma / Rust regex: empty at 0, "aa" at 1..3, empty at 4 (not at 3, right after "aa").
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].begin, 0u);
  EXPECT_EQ(spans[0].end, 0u);
  EXPECT_EQ(spans[1].begin, 1u);
  EXPECT_EQ(spans[1].end, 3u);
  EXPECT_EQ(spans[2].begin, 4u);
}

nlohmann::json tiny_bpe(const nlohmann::json& merges) {
  return {{"type", "BPE"},
          {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"a b", 6}, {" ", 7}}},
          {"merges", merges}};
}

std::vector<int32_t> bpe_ids(const BpeModel& m, const std::string& word) {
  std::vector<int32_t> ids;
  m.tokenize(word, ids);
  return ids;
}

TEST(Bpe, MergesInBothJsonFormsGiveTheSameModel) {
  using J = nlohmann::json;
  BpeModel legacy = BpeModel::from_json(tiny_bpe(J::array({"b c", "a bc"})), "legacy");
  BpeModel pairs = BpeModel::from_json(tiny_bpe(J::array({J::array({"b", "c"}), J::array({"a", "bc"})})), "pairs");
  for (const char* w : {"abc", "ab", "cab", "abcabc"}) EXPECT_EQ(bpe_ids(legacy, w), bpe_ids(pairs, w)) << w;
  EXPECT_EQ(bpe_ids(pairs, "abc"), (std::vector<int32_t>{5}));
  EXPECT_EQ(bpe_ids(pairs, "ab"), (std::vector<int32_t>{0, 1}));  // no merge "a b" listed
  // Rank decides: with "a b" first, "abc" becomes ab + c.
  BpeModel other = BpeModel::from_json(tiny_bpe(J::array({J::array({"a", "b"}), J::array({"b", "c"})})), "order");
  EXPECT_EQ(bpe_ids(other, "abc"), (std::vector<int32_t>{3, 2}));
  // Only the pair form can express a merge of tokens that contain a space.
  auto with_space = tiny_bpe(J::array({J::array({"a", " "})}));
  with_space["vocab"]["a "] = 8;
  BpeModel spaced = BpeModel::from_json(with_space, "spaced");
  EXPECT_EQ(bpe_ids(spaced, "a "), (std::vector<int32_t>{8}));
}

TEST(Bpe, IgnoreMergesByteFallbackAndFusedUnk) {
  using J = nlohmann::json;
  J ignore = tiny_bpe(J::array());  // no merge can build "abc"…
  EXPECT_EQ(bpe_ids(BpeModel::from_json(ignore, "plain"), "abc"), (std::vector<int32_t>{0, 1, 2}));
  ignore["ignore_merges"] = true;  // …but with ignore_merges a whole-word vocab hit wins
  EXPECT_EQ(bpe_ids(BpeModel::from_json(ignore, "ignore"), "abc"), (std::vector<int32_t>{5}));

  J spm = {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", false},
           {"vocab", {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}}}, {"merges", J::array()}};
  // "xé!a": x, é, ! are unknown; fused into one <unk> before a.
  EXPECT_EQ(bpe_ids(BpeModel::from_json(spm, "unk"), "x\xC3\xA9!a"), (std::vector<int32_t>{0, 1}));
  spm["fuse_unk"] = false;
  EXPECT_EQ(bpe_ids(BpeModel::from_json(spm, "unk"), "x\xC3\xA9!a"), (std::vector<int32_t>{0, 0, 0, 1}));
  spm["byte_fallback"] = true;  // é falls back to its bytes; x and ! have no byte tokens
  EXPECT_EQ(bpe_ids(BpeModel::from_json(spm, "bytes"), "\xC3\xA9" "a"), (std::vector<int32_t>{2, 3, 1}));
}

TEST(Bpe, SubwordPrefixAndSuffixLikeTokenizers) {
  // Expected ids from tokenizers 0.23: models.BPE(vocab, merges, continuing_subword_prefix="##"
  // [, end_of_word_suffix="</w>"]).tokenize(word).
  using J = nlohmann::json;
  J vocab = {{"a", 0}, {"##b", 1}, {"ab", 2}, {"##c", 3}, {"c", 4}, {"b", 5},
             {"c</w>", 6}, {"##c</w>", 7}, {"ab</w>", 8}, {"##b</w>", 9}};
  J prefix = {{"type", "BPE"}, {"vocab", vocab}, {"continuing_subword_prefix", "##"},
              {"merges", J::array({J::array({"a", "##b"})})}};
  BpeModel m = BpeModel::from_json(prefix, "prefix");
  EXPECT_EQ(bpe_ids(m, "abc"), (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(bpe_ids(m, "ab"), (std::vector<int32_t>{2}));
  J suffix = prefix;
  suffix["end_of_word_suffix"] = "</w>";
  suffix["merges"] = J::array({J::array({"a", "##b</w>"})});
  BpeModel s = BpeModel::from_json(suffix, "suffix");
  EXPECT_EQ(bpe_ids(s, "abc"), (std::vector<int32_t>{0, 1, 7}));
  EXPECT_EQ(bpe_ids(s, "ab"), (std::vector<int32_t>{8}));
}

std::string write_tokenizer(const nlohmann::json& doc) {
  std::string dir = test::temp_dir("tok");
  std::ofstream(dir + "/tokenizer.json") << doc.dump();
  return dir;
}

nlohmann::json minimal_doc() {
  return {{"version", "1.0"}, {"added_tokens", nlohmann::json::array()}, {"normalizer", nullptr},
          {"pre_tokenizer", nullptr}, {"post_processor", nullptr}, {"decoder", nullptr},
          {"model", tiny_bpe(nlohmann::json::array())}};
}

void expect_error(const nlohmann::json& doc, ErrorKind kind, const std::string& needle) {
  std::string dir = write_tokenizer(doc);
  try {
    Tokenizer::load(dir);
    ADD_FAILURE() << "loaded a tokenizer that should fail: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_NE(what.find(dir + "/tokenizer.json"), std::string::npos) << what;
  }
}

TEST(TokenizerErrors, EachNamesTheFileAndTheProblem) {
  auto doc = minimal_doc();
  doc["model"]["type"] = "Unigram";
  expect_error(doc, ErrorKind::Unsupported, "tokenizer model type 'Unigram' is not supported (supported: BPE)");
  doc["model"]["type"] = "WordPiece";
  expect_error(doc, ErrorKind::Unsupported, "'WordPiece' is not supported");

  doc = minimal_doc();
  doc.erase("model");
  expect_error(doc, ErrorKind::Format, "no \"model\"");

  doc = minimal_doc();
  doc["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(doc, ErrorKind::Unsupported, "normalizer type 'BertNormalizer'");
  doc = minimal_doc();
  doc["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error(doc, ErrorKind::Unsupported, "pre_tokenizer type 'Whitespace'");
  doc = minimal_doc();
  doc["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
  expect_error(doc, ErrorKind::Unsupported, "decoder type 'WordPiece'");
  doc = minimal_doc();
  doc["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_error(doc, ErrorKind::Unsupported, "post_processor type 'RobertaProcessing'");

  doc = minimal_doc();
  doc["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}};
  expect_error(doc, ErrorKind::Format, "bad regex /(unclosed/");

  doc = minimal_doc();
  doc["model"]["merges"] = nlohmann::json::array({"a zz"});
  expect_error(doc, ErrorKind::Format, "merge #0 uses a token missing from model.vocab");
}

TEST(TokenizerErrors, MissingFileIsNotFound) {
  std::string dir = test::temp_dir("tok-missing");
  try {
    Tokenizer::load(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace kto
