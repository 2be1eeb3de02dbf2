// jinja2's built-in filters on scalars and strings (jinja2/filters.py: trim, upper, title, replace,
// default, int, float, round, indent, escape, …) and transformers' `tojson` override
// (json.dumps with ensure_ascii=False, indent, separators, sort_keys). Sequence filters live in
// filters_seq.cpp.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/chat_template/builtins.h"
#include "tokenizer/chat_template/text.h"

namespace kto::jinja {

namespace {

bool given(const Value& v) { return !v.is_undefined(); }

Value f_trim(Renderer&, const Value& v, CallArgs& a) {
  Value chars = bind_args(a, {"chars"}, "filter 'trim'")[0];
  if (!given(chars) || chars.is_none()) return Value::string(py_strip(v.str(), StripSide::Both));
  std::u32string set = utf8_decode(chars.str());
  return Value::string(py_strip(v.str(), StripSide::Both, &set));
}

Value f_upper(Renderer&, const Value& v, CallArgs&) { return Value::string(py_upper_str(v.str())); }
Value f_lower(Renderer&, const Value& v, CallArgs&) { return Value::string(py_lower_str(v.str())); }

Value f_capitalize(Renderer&, const Value& v, CallArgs&) {
  std::string out;
  bool first = true;
  for (char32_t c : utf8_decode(v.str())) {
    utf8_append(out, first ? py_upper(c) : py_lower(c));
    first = false;
  }
  return Value::string(std::move(out));
}

// jinja2's do_title: words start after runs of whitespace or any of "-({[<".
Value f_title(Renderer&, const Value& v, CallArgs&) {
  std::string out;
  bool word_start = true;
  for (char32_t c : utf8_decode(v.str())) {
    bool delimiter = py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (delimiter) {
      utf8_append(out, c);
      word_start = true;
    } else {
      utf8_append(out, word_start ? py_upper(c) : py_lower(c));
      word_start = false;
    }
  }
  return Value::string(std::move(out));
}

Value f_replace(Renderer& r, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"old", "new", "count"}, "filter 'replace'");
  CallArgs call;
  call.positional = {Value::string(args[0].str()), Value::string(args[1].str())};
  if (given(args[2]) && !args[2].is_none()) call.positional.push_back(args[2]);
  Value method = method_of(Value::string(v.str()), "replace");
  return r.call(method, call);
}

Value f_default(Renderer&, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"default_value", "boolean"}, "filter 'default'");
  Value fallback = given(args[0]) ? args[0] : Value::string("");
  if (v.is_undefined() || (args[1].truthy() && !v.truthy())) return fallback;
  return v;
}

Value f_string(Renderer&, const Value& v, CallArgs&) { return Value::string(v.str()); }
Value f_safe(Renderer&, const Value& v, CallArgs&) { return Value::string(v.str()); }

Value f_escape(Renderer&, const Value& v, CallArgs&) {
  std::string out;
  for (char c : v.str()) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::string(std::move(out));
}

// Python int(str, base) / float(str): surrounding whitespace and single underscores allowed.
bool parse_int(const std::string& text, int base, std::int64_t& out) {
  std::string s = py_strip(text, StripSide::Both);
  std::string digits;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && s[i - 1] != '_') continue;
    digits += s[i];
  }
  if (digits.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(digits.c_str(), &end, base);
  if (errno != 0 || end != digits.c_str() + digits.size()) return false;
  out = v;
  return true;
}

bool parse_float(const std::string& text, double& out) {
  std::string s = py_strip(text, StripSide::Both);
  if (s.empty() || s.find_first_of("xXpP") != std::string::npos) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return false;
  out = v;
  return true;
}

Value float_to_int(double f) {
  if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) eval_fail("cannot convert float ", py_float_repr(f), " to integer");
  return Value::integer(static_cast<std::int64_t>(f));
}

Value f_int(Renderer&, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"default", "base"}, "filter 'int'");
  Value fallback = given(args[0]) ? args[0] : Value::integer(0);
  int base = given(args[1]) ? static_cast<int>(to_index(args[1], "base")) : 10;
  if (v.is_undefined()) v.fail_undefined();
  if (v.kind() == ValueKind::Int || v.kind() == ValueKind::Bool) return Value::integer(v.as_int());
  if (v.kind() == ValueKind::Float) return float_to_int(v.as_float());
  if (!v.is_string()) return fallback;
  std::int64_t i = 0;
  if (parse_int(v.as_string(), base, i)) return Value::integer(i);
  double f = 0;
  if (parse_float(v.as_string(), f)) return float_to_int(f);
  return fallback;
}

Value f_float(Renderer&, const Value& v, CallArgs& a) {
  Value fallback = bind_args(a, {"default"}, "filter 'float'")[0];
  if (!given(fallback)) fallback = Value::number(0.0);
  if (v.is_undefined()) v.fail_undefined();
  if (v.is_number()) return Value::number(v.as_float());
  double f = 0;
  if (v.is_string() && parse_float(v.as_string(), f)) return Value::number(f);
  return fallback;
}

Value f_abs(Renderer&, const Value& v, CallArgs&) {
  if (v.kind() == ValueKind::Float) return Value::number(std::fabs(v.as_float()));
  if (v.is_number()) return v.as_int() < 0 ? binary_op("-", Value::integer(0), v) : Value::integer(v.as_int());
  if (v.is_undefined()) v.fail_undefined();
  eval_fail("bad operand type for abs(): '", v.type_name(), "'");
}

// Python round(x, n): correctly rounded half-to-even on the exact binary value (what %.*f does).
double py_round(double x, std::int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  if (ndigits > 300) return x;
  if (ndigits < 0) {
    double p = std::pow(10.0, static_cast<double>(-ndigits));
    return std::nearbyint(x / p) * p;
  }
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(ndigits), x);
  return std::strtod(buf, nullptr);
}

Value f_round(Renderer&, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"precision", "method"}, "filter 'round'");
  std::int64_t precision = given(args[0]) ? to_index(args[0], "precision") : 0;
  std::string method = given(args[1]) ? args[1].str() : "common";
  if (v.is_undefined()) v.fail_undefined();
  if (!v.is_number()) eval_fail("type ", v.type_name(), " doesn't define __round__ method");
  if (method == "common") {
    if (v.kind() != ValueKind::Float) return Value::integer(v.as_int());
    return Value::number(py_round(v.as_float(), precision));
  }
  if (method != "floor" && method != "ceil") eval_fail("method must be common, ceil or floor");
  double scale = std::pow(10.0, static_cast<double>(precision));
  double scaled = v.as_float() * scale;
  return Value::number((method == "floor" ? std::floor(scaled) : std::ceil(scaled)) / scale);
}

std::vector<std::string> py_splitlines(const std::string& s) {
  std::vector<std::string> lines;
  std::u32string cps = utf8_decode(s);
  std::u32string cur;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    char32_t c = cps[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
               c == 0x2028 || c == 0x2029;
    if (!brk) {
      cur += c;
      continue;
    }
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    lines.push_back(utf8_encode(cur));
    cur.clear();
  }
  if (!cur.empty()) lines.push_back(utf8_encode(cur));
  return lines;
}

Value f_indent(Renderer&, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"width", "first", "blank"}, "filter 'indent'");
  std::string indention = args[0].is_string() ? args[0].as_string()
                          : std::string(static_cast<std::size_t>(std::max<std::int64_t>(
                                given(args[0]) ? to_index(args[0], "width") : 4, 0)), ' ');
  std::vector<std::string> lines = py_splitlines(v.str() + "\n");
  std::string rv;
  if (args[2].truthy()) {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) rv.append(1, '\n').append(indention);
      rv.append(lines[i]);
    }
  } else {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) rv.append(1, '\n');
      if (i > 0 && !lines[i].empty()) rv.append(indention);
      rv.append(lines[i]);
    }
  }
  if (args[1].truthy()) rv = indention + rv;
  return Value::string(std::move(rv));
}

Value f_tojson(Renderer&, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"ensure_ascii", "indent", "separators", "sort_keys"}, "filter 'tojson'");
  if (args[0].truthy()) eval_fail("tojson(ensure_ascii=True) is not supported");
  JsonDumpOptions opt;
  if (given(args[1]) && !args[1].is_none()) {
    opt.indent_enabled = true;
    opt.indent = args[1].is_string() ? args[1].as_string()
                                     : std::string(static_cast<std::size_t>(std::max<std::int64_t>(to_index(args[1], "indent"), 0)), ' ');
    opt.item_separator.assign(1, ',');
  }
  if (given(args[2]) && !args[2].is_none()) {
    if (!args[2].is_sequence() || args[2].items().size() != 2) eval_fail("tojson separators must be a pair of strings");
    opt.item_separator = args[2].items()[0].str();
    opt.key_separator = args[2].items()[1].str();
  }
  opt.sort_keys = args[3].truthy();
  return Value::string(json_dumps(v, opt));
}

Value f_format(Renderer&, const Value& v, CallArgs& a) {
  if (!a.keyword.empty()) eval_fail("filter 'format' with keyword arguments is not supported");
  return binary_op("%", Value::string(v.str()), Value::tuple(a.positional));
}

// Python getattr only (no item fallback): a dict's keys are not attributes.
Value f_attr(Renderer&, const Value& v, CallArgs& a) {
  std::string name = bind_args(a, {"name"}, "filter 'attr'")[0].str();
  if (v.is_undefined()) v.fail_undefined();
  Value method = method_of(v, name);
  if (method.kind() == ValueKind::Callable) return method;
  if (v.kind() == ValueKind::Namespace) {
    if (const Value* found = v.as_namespace().attrs.find(name)) return *found;
  }
  return Value::undefined(str_cat("'", v.type_name(), " object' has no attribute '", name, "'"));
}

struct FilterEntry {
  const char* name;
  FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"trim", f_trim},       {"upper", f_upper},     {"lower", f_lower},   {"capitalize", f_capitalize},
    {"title", f_title},     {"replace", f_replace}, {"default", f_default}, {"d", f_default},
    {"string", f_string},   {"safe", f_safe},       {"e", f_escape},      {"escape", f_escape},
    {"forceescape", f_escape}, {"int", f_int},      {"float", f_float},   {"abs", f_abs},
    {"round", f_round},     {"indent", f_indent},   {"tojson", f_tojson}, {"format", f_format},
    {"attr", f_attr},
};

}  // namespace

FilterFn find_filter(const std::string& name) {
  for (const auto& f : kFilters) {
    if (name == f.name) return f.fn;
  }
  return find_sequence_filter(name);
}

bool filter_exists(const std::string& name) { return find_filter(name) != nullptr; }

}  // namespace kto::jinja
