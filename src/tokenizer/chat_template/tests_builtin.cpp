// jinja2's built-in tests (jinja2/tests.py) as chat templates use them: `is defined`,
// `is none`, `is string`, `is mapping`, `selectattr('x', 'equalto', y)`, … with Python's type
// rules (bool counts as a number; an Undefined counts as iterable and as a sequence, as in jinja2).
#include <algorithm>
#include <cstring>

#include "tokenizer/chat_template/builtins.h"
#include "tokenizer/chat_template/text.h"

namespace kto::jinja {

namespace {

const Value& arg0(CallArgs& a, const char* test) {
  if (a.positional.empty() && a.keyword.empty()) eval_fail("test '", test, "' needs an argument");
  return a.positional.empty() ? a.keyword[0].second : a.positional[0];
}

std::int64_t int_of(const Value& v, const char* test) {
  if (v.kind() == ValueKind::Int || v.kind() == ValueKind::Bool) return v.as_int();
  if (v.is_undefined()) v.fail_undefined();
  eval_fail("test '", test, "' needs an integer, got ", v.type_name());
}

bool t_defined(Renderer&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Renderer&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Renderer&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_string(Renderer&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_number(Renderer&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_integer(Renderer&, const Value& v, CallArgs&) { return v.kind() == ValueKind::Int; }
bool t_float(Renderer&, const Value& v, CallArgs&) { return v.kind() == ValueKind::Float; }
bool t_boolean(Renderer&, const Value& v, CallArgs&) { return v.kind() == ValueKind::Bool; }
bool t_mapping(Renderer&, const Value& v, CallArgs&) { return v.is_dict(); }
bool t_sequence(Renderer&, const Value& v, CallArgs&) {
  return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict();
}
bool t_iterable(Renderer&, const Value& v, CallArgs&) {
  return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict();
}
bool t_true(Renderer&, const Value& v, CallArgs&) { return v.kind() == ValueKind::Bool && v.as_bool(); }
bool t_false(Renderer&, const Value& v, CallArgs&) { return v.kind() == ValueKind::Bool && !v.as_bool(); }
bool t_callable(Renderer&, const Value& v, CallArgs&) { return v.kind() == ValueKind::Callable; }
bool t_escaped(Renderer&, const Value&, CallArgs&) { return false; }
bool t_odd(Renderer&, const Value& v, CallArgs&) { return int_of(v, "odd") % 2 != 0; }
bool t_even(Renderer&, const Value& v, CallArgs&) { return int_of(v, "even") % 2 == 0; }
bool t_divisibleby(Renderer&, const Value& v, CallArgs& a) {
  std::int64_t d = int_of(arg0(a, "divisibleby"), "divisibleby");
  if (d == 0) eval_fail("integer division or modulo by zero");
  return int_of(v, "divisibleby") % d == 0;
}
bool t_eq(Renderer&, const Value& v, CallArgs& a) { return compare_op("==", v, arg0(a, "eq")); }
bool t_ne(Renderer&, const Value& v, CallArgs& a) { return compare_op("!=", v, arg0(a, "ne")); }
bool t_lt(Renderer&, const Value& v, CallArgs& a) { return compare_op("<", v, arg0(a, "lt")); }
bool t_le(Renderer&, const Value& v, CallArgs& a) { return compare_op("<=", v, arg0(a, "le")); }
bool t_gt(Renderer&, const Value& v, CallArgs& a) { return compare_op(">", v, arg0(a, "gt")); }
bool t_ge(Renderer&, const Value& v, CallArgs& a) { return compare_op(">=", v, arg0(a, "ge")); }
bool t_in(Renderer&, const Value& v, CallArgs& a) { return contains(arg0(a, "in"), v); }
bool t_sameas(Renderer&, const Value& v, CallArgs& a) {
  const Value& other = arg0(a, "sameas");
  return v.kind() == other.kind() && py_equal(v, other);
}
bool t_lower(Renderer&, const Value& v, CallArgs&) {
  std::string s = v.str();
  return py_lower_str(s) == s && py_upper_str(s) != s;
}
bool t_upper(Renderer&, const Value& v, CallArgs&) {
  std::string s = v.str();
  return py_upper_str(s) == s && py_lower_str(s) != s;
}
bool t_filter(Renderer&, const Value& v, CallArgs&) { return v.is_string() && find_filter(v.as_string()) != nullptr; }
bool t_test(Renderer&, const Value& v, CallArgs&) { return v.is_string() && find_test(v.as_string()) != nullptr; }

struct TestEntry {
  const char* name;
  TestFn fn;
};

const TestEntry kTests[] = {
    {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none},       {"string", t_string},
    {"number", t_number},   {"integer", t_integer},     {"float", t_float},     {"boolean", t_boolean},
    {"mapping", t_mapping}, {"sequence", t_sequence},   {"iterable", t_iterable}, {"true", t_true},
    {"false", t_false},     {"callable", t_callable},   {"escaped", t_escaped}, {"odd", t_odd},
    {"even", t_even},       {"divisibleby", t_divisibleby}, {"equalto", t_eq},  {"eq", t_eq},
    {"==", t_eq},           {"ne", t_ne},               {"!=", t_ne},           {"lt", t_lt},
    {"lessthan", t_lt},     {"<", t_lt},                {"le", t_le},           {"<=", t_le},
    {"gt", t_gt},           {"greaterthan", t_gt},      {">", t_gt},            {"ge", t_ge},
    {">=", t_ge},           {"in", t_in},               {"sameas", t_sameas},   {"lower", t_lower},
    {"upper", t_upper},     {"filter", t_filter},       {"test", t_test},
};

}  // namespace

TestFn find_test(const std::string& name) {
  for (const auto& t : kTests) {
    if (name == t.name) return t.fn;
  }
  return nullptr;
}

bool test_exists(const std::string& name) { return find_test(name) != nullptr; }

}  // namespace kto::jinja
