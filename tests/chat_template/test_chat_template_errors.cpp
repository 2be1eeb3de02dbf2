// Error reporting of the chat-template engine: every syntax and runtime error is one kto::Error
// whose message starts with "ORIGIN:LINE:COL: ", plus the template lookup of chat_template_load
// (chat_template.jinja, tokenizer_config.json string or named list, chat_template.json).
#include <gtest/gtest.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"
#include "tokenizer/chat_template/chat_template.h"
#include "util/error.h"
#include "util/files.h"

namespace {

struct Failure {
  kto::ErrorKind kind;
  std::string message;
};

Failure parse_error(const std::string& source) {
  try {
    kto::ChatTemplate::parse(source, "t.jinja");
  } catch (const kto::Error& e) {
    return {e.kind(), e.what()};
  }
  ADD_FAILURE() << "no error parsing: " << source;
  return {};
}

Failure render_error(const std::string& source, const nlohmann::json& vars = nlohmann::json::object()) {
  auto tmpl = kto::ChatTemplate::parse(source, "t.jinja");
  try {
    tmpl.render(vars);
  } catch (const kto::Error& e) {
    return {e.kind(), e.what()};
  }
  ADD_FAILURE() << "no error rendering: " << source;
  return {};
}

std::string render(const std::string& source, const nlohmann::json& vars = nlohmann::json::object()) {
  return kto::ChatTemplate::parse(source, "t.jinja").render(vars);
}

TEST(ChatTemplateErrors, UnclosedBlock) {
  Failure f = parse_error("{% for m in messages %}\n{{ m }}");
  EXPECT_EQ(f.kind, kto::ErrorKind::Format);
  EXPECT_EQ(f.message, "t.jinja:1:4: unexpected end of template: 'for' block is never closed (expected 'endfor')");
  EXPECT_EQ(parse_error("x\n  {% if a %}{% else %}").message,
            "t.jinja:2:6: unexpected end of template: 'if' block is never closed (expected 'endif')");
  EXPECT_EQ(parse_error("{{ 1 + 2").message, "t.jinja:1:1: unexpected end of template: unclosed '{{'");
  EXPECT_EQ(parse_error("{# never closed").message, "t.jinja:1:1: missing end of comment tag");
}

TEST(ChatTemplateErrors, UnknownFilterAndTest) {
  EXPECT_EQ(parse_error("{{ x | frobnicate }}").message, "t.jinja:1:8: no filter named 'frobnicate'");
  EXPECT_EQ(parse_error("\n{% if x is frob %}{% endif %}").message, "t.jinja:2:12: no test named 'frob'");
}

TEST(ChatTemplateErrors, UnknownTag) {
  EXPECT_EQ(parse_error("line1\n{% frob %}").message, "t.jinja:2:4: unknown tag 'frob'");
  EXPECT_EQ(parse_error("{% endfor %}").message, "t.jinja:1:4: unknown tag 'endfor'");
  EXPECT_EQ(parse_error("{% break %}").message, "t.jinja:1:4: 'break' outside of a for loop");
}

TEST(ChatTemplateErrors, BadExpression) {
  EXPECT_EQ(parse_error("{{ 1 + }}").message, "t.jinja:1:8: unexpected end of print statement");
  EXPECT_EQ(parse_error("{{ 'abc }}").message, "t.jinja:1:4: unterminated string literal");
  EXPECT_EQ(parse_error("{{ a @ b }}").message, "t.jinja:1:6: unexpected char '@'");
  EXPECT_EQ(parse_error("{{ (1 + 2 }}").message, "t.jinja:1:11: unexpected '}', expected ')'");
  EXPECT_EQ(parse_error("{% set = 1 %}").message, "t.jinja:1:8: expected a name, got '='");
}

TEST(ChatTemplateErrors, RaiseException) {
  Failure f = render_error("a\n  {{ raise_exception('bad turn ' ~ 1) }}");
  EXPECT_EQ(f.kind, kto::ErrorKind::InvalidArgument);
  EXPECT_EQ(f.message, "t.jinja:2:6: bad turn 1");
}

TEST(ChatTemplateErrors, RuntimeErrors) {
  Failure f = render_error("{{ foo.bar }}");
  EXPECT_EQ(f.kind, kto::ErrorKind::Format);
  EXPECT_EQ(f.message, "t.jinja:1:8: 'foo' is undefined");
  EXPECT_EQ(render_error("{% if foo.bar is defined %}{% endif %}").message, "t.jinja:1:11: 'foo' is undefined");
  EXPECT_EQ(render_error("{{ m.a.b }}", {{"m", nlohmann::json::object()}}).message,
            "t.jinja:1:8: 'dict object' has no attribute 'a'");
  EXPECT_EQ(render_error("{% for t in tools %}{% endfor %}", {{"tools", nullptr}}).message,
            "t.jinja:1:13: 'NoneType' object is not iterable");
  EXPECT_EQ(render_error("{{ 'a' + 1 }}").message, "t.jinja:1:8: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(render_error("{{ 1 // 0 }}").message, "t.jinja:1:6: integer division or modulo by zero");
}

TEST(ChatTemplateErrors, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(parse_error(deep).message.find("template nested too deeply"), std::string::npos);
  Failure f = render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_EQ(f.kind, kto::ErrorKind::Format);
  EXPECT_NE(f.message.find("template recursion too deep"), std::string::npos) << f.message;
}

TEST(ChatTemplateRender, UndefinedSemanticsMatchJinja2) {
  EXPECT_EQ(render("[{{ foo }}|{{ foo ~ 'x' }}|{{ foo | length }}|{{ foo is defined }}|{% for x in foo %}x{% endfor %}]"),
            "[|x|0|False|]");
  EXPECT_EQ(render("{{ none.foo }}|{{ m.missing is defined }}|{{ m.get('a', 1) }}", {{"m", {{"b", 2}}}}),
            "|False|1");
}

TEST(ChatTemplateRender, PlainJsonOverloadAndRealClock) {
  EXPECT_EQ(render("{{ messages[0]['content'] | upper }}", {{"messages", {{{"role", "user"}, {"content", "hé"}}}}}),
            "HÉ");
  std::time_t t = std::time(nullptr);
  std::tm now{};
  localtime_r(&t, &now);
  std::string year = std::to_string(now.tm_year + 1900);
  std::string got = render("{{ strftime_now('%Y') }}");
  EXPECT_TRUE(got == year || got == std::to_string(now.tm_year + 1901)) << got;  // a new year may begin meanwhile
}

TEST(ChatTemplateLoad, FindsTemplatesLikeTransformers) {
  std::string dir = kto::test::temp_dir("chat-template-load");
  EXPECT_THROW(kto::chat_template_load(dir), kto::Error);
  try {
    kto::chat_template_load(dir);
  } catch (const kto::Error& e) {
    EXPECT_EQ(e.kind(), kto::ErrorKind::NotFound);
  }
  kto::file_write_atomic(kto::path_join(dir, "chat_template.json"), R"({"chat_template": "json:{{ x }}"})");
  EXPECT_EQ(kto::chat_template_load(dir).render({{"x", 1}}), "json:1");
  nlohmann::json config = {{"chat_template", nlohmann::json::array({{{"name", "default"}, {"template", "default"}},
                                                                    {{"name", "tool_use"}, {"template", "tools"}}})}};
  kto::file_write_atomic(kto::path_join(dir, "tokenizer_config.json"), config.dump());
  EXPECT_EQ(kto::chat_template_load(dir).render(nlohmann::json::object()), "default");
  EXPECT_EQ(kto::chat_template_load(dir, "tool_use").render(nlohmann::json::object()), "tools");
  try {
    kto::chat_template_load(dir, "rag");
    ADD_FAILURE() << "expected NotFound";
  } catch (const kto::Error& e) {
    EXPECT_EQ(e.kind(), kto::ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("available: default, tool_use"), std::string::npos) << e.what();
  }
  kto::file_write_atomic(kto::path_join(dir, "tokenizer_config.json"), R"({"chat_template": "config"})");
  EXPECT_EQ(kto::chat_template_load(dir).render(nlohmann::json::object()), "config");
  kto::file_write_atomic(kto::path_join(dir, "chat_template.jinja"), "jinja file\n");
  EXPECT_EQ(kto::chat_template_load(dir).render(nlohmann::json::object()), "jinja file");
  kto::ChatTemplate bad = kto::ChatTemplate::parse("ok", "x");
  EXPECT_EQ(bad.origin(), "x");
}

}  // namespace
