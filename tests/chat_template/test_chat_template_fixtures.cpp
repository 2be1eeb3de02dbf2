// Renders every chat template of tests/fixtures/chat_templates/expected.json (the project's own
// templates, and the public ones in ../shared/fixtures/chat_templates read in place) for every
// conversation, and compares byte for byte with what jinja2 rendered through transformers'
// render_jinja_template (tools/reference/render_chat_templates.py), errors included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/chat_template/chat_template.h"
#include "util/error.h"
#include "util/files.h"

namespace {

using Json = nlohmann::ordered_json;

Json read_json(const std::string& path) { return Json::parse(kto::file_read_text(path)); }

const Json& expected() {
  static const Json j = read_json(kto::test::fixture("chat_templates/expected.json"));
  return j;
}

const Json& conversation(const std::string& id) {
  static const Json all = read_json(kto::test::fixture("chat_templates/conversations.json"));
  for (const auto& c : all) {
    if (c["id"] == id) return c;
  }
  throw std::runtime_error("unknown conversation " + id);
}

std::string shared_dir() { return std::string(KTO_SHARED_DIR) + "/fixtures/chat_templates"; }

std::vector<std::string> template_names() {
  std::vector<std::string> names;
  for (const auto& [name, entry] : expected()["templates"].items()) names.push_back(name);
  return names;
}

std::tm fixed_now(const std::string& iso) {  // "2025-03-14T09:26:53"
  std::tm tm{};
  strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  tm.tm_isdst = -1;
  std::tm copy = tm;
  mktime(&copy);  // fills tm_wday / tm_yday for %a, %j, …
  tm.tm_wday = copy.tm_wday;
  tm.tm_yday = copy.tm_yday;
  return tm;
}

class ChatTemplateFixture : public testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateFixture, RendersLikeJinja2) {
  const std::string& name = GetParam();
  const Json& entry = expected()["templates"][name];
  std::string path;
  if (entry["source"] == "own") {
    path = kto::test::fixture("chat_templates/" + name);
  } else {
    path = shared_dir() + "/" + name;
    if (!kto::file_exists(path)) GTEST_SKIP() << "shared template not available: " << path;
  }
  kto::ChatTemplate tmpl = kto::ChatTemplate::parse(kto::file_read_text(path), name);
  kto::ChatTemplateRenderOptions options;
  options.now = fixed_now(expected()["now"].get<std::string>());
  const std::regex located("^" + std::regex_replace(name, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                           R"(:\d+:\d+: )");
  for (const auto& c : entry["cases"]) {
    const Json& conv = conversation(c["conversation"].get<std::string>());
    Json vars = {{"messages", conv["messages"]},
                 {"tools", conv.contains("tools") ? conv["tools"] : Json(nullptr)},
                 {"documents", nullptr},
                 {"add_generation_prompt", c["add_generation_prompt"]},
                 {"bos_token", entry["bos_token"]},
                 {"eos_token", entry["eos_token"]}};
    SCOPED_TRACE(name + " / " + c["conversation"].get<std::string>() +
                 " / add_generation_prompt=" + c["add_generation_prompt"].dump());
    if (c.contains("output")) {
      EXPECT_EQ(tmpl.render_ordered(vars, options), c["output"].get<std::string>());
      continue;
    }
    try {
      std::string out = tmpl.render_ordered(vars, options);
      ADD_FAILURE() << "expected an error (" << c["error"] << "), got output:\n" << out;
    } catch (const kto::Error& e) {
      std::string msg = e.what();
      EXPECT_TRUE(std::regex_search(msg, located)) << msg;
      if (c["error_kind"] == "raise_exception") {
        EXPECT_EQ(e.kind(), kto::ErrorKind::InvalidArgument) << msg;
        EXPECT_NE(msg.find(c["error"].get<std::string>()), std::string::npos) << msg;
      } else {
        EXPECT_EQ(e.kind(), kto::ErrorKind::Format) << msg;
      }
    }
  }
}

std::string test_name(const testing::TestParamInfo<std::string>& info) {
  std::string out;
  for (char ch : info.param) out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ChatTemplateFixture, testing::ValuesIn(template_names()), test_name);

TEST(ChatTemplateFixtures, CoverEveryTemplateFile) {
  // Each own template and (when present) each shared template has expectations.
  std::vector<std::string> names = template_names();
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (const auto& f : std::filesystem::directory_iterator(kto::test::fixture("chat_templates/own"))) {
    EXPECT_TRUE(has("own/" + f.path().filename().string())) << f.path();
  }
  if (!std::filesystem::exists(shared_dir())) GTEST_SKIP() << "shared templates not available: " << shared_dir();
  for (const auto& f : std::filesystem::directory_iterator(shared_dir())) {
    if (f.path().extension() != ".jinja") continue;
    EXPECT_TRUE(has(f.path().filename().string())) << f.path();
  }
}

}  // namespace
