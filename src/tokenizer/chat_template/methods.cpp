// Python methods of str and dict that chat templates call (`content.strip()`, `message.get('x')`,
// `'a,b'.split(',')`, …), as jinja2's ImmutableSandboxedEnvironment exposes them, plus argument
// binding shared with the filters. Semantics follow CPython's str and dict.
#include <algorithm>

#include "tokenizer/chat_template/builtins.h"
#include "tokenizer/chat_template/text.h"

namespace kto::jinja {

std::vector<Value> bind_args(const CallArgs& args, std::initializer_list<const char*> names, const std::string& what) {
  std::vector<Value> out(names.size());
  if (args.positional.size() > names.size()) {
    eval_fail(what, " takes at most ", names.size(), " argument(s) (", args.positional.size(), " given)");
  }
  for (std::size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
  for (const auto& [key, value] : args.keyword) {
    auto it = std::find_if(names.begin(), names.end(), [&](const char* n) { return key == n; });
    if (it == names.end()) eval_fail(what, " got an unexpected keyword argument '", key, "'");
    out[static_cast<std::size_t>(it - names.begin())] = value;
  }
  return out;
}

std::int64_t to_index(const Value& v, const char* what) {
  if (v.kind() == ValueKind::Int || v.kind() == ValueKind::Bool) return v.as_int();
  if (v.is_undefined()) v.fail_undefined();
  eval_fail(what, " must be an integer, not ", v.type_name());
}

namespace {

const std::string& need_str(const Value& v, const char* what) {
  if (v.is_undefined()) v.fail_undefined();
  if (!v.is_string()) eval_fail(what, " must be str, not ", v.type_name());
  return v.as_string();
}

bool set(const Value& v) { return !v.is_undefined() && !v.is_none(); }

ValueList split_whitespace(const std::string& s, std::int64_t maxsplit) {
  std::u32string cps = utf8_decode(s);
  ValueList out;
  std::size_t i = 0;
  while (true) {
    while (i < cps.size() && py_isspace(cps[i])) ++i;
    if (i >= cps.size()) break;
    if (maxsplit >= 0 && static_cast<std::int64_t>(out.size()) == maxsplit) {
      std::size_t end = cps.size();
      while (end > i && py_isspace(cps[end - 1])) --end;
      out.push_back(Value::string(utf8_encode(cps.substr(i, end - i))));
      break;
    }
    std::size_t j = i;
    while (j < cps.size() && !py_isspace(cps[j])) ++j;
    out.push_back(Value::string(utf8_encode(cps.substr(i, j - i))));
    i = j;
  }
  return out;
}

enum class From { Left, Right };
ValueList split_on(const std::string& s, const std::string& sep, std::int64_t maxsplit, From from) {
  bool from_right = from == From::Right;
  if (sep.empty()) eval_fail("empty separator");
  std::vector<std::string> parts;
  if (!from_right) {
    std::size_t start = 0;
    while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
      std::size_t hit = s.find(sep, start);
      if (hit == std::string::npos) break;
      parts.push_back(s.substr(start, hit - start));
      start = hit + sep.size();
    }
    parts.push_back(s.substr(start));
  } else {
    std::size_t end = s.size();
    while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
      if (end < sep.size()) break;
      std::size_t hit = s.rfind(sep, end - sep.size());
      if (hit == std::string::npos) break;
      parts.push_back(s.substr(hit + sep.size(), end - hit - sep.size()));
      end = hit;
    }
    parts.push_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
  }
  ValueList out;
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return out;
}

std::string replace_all(const std::string& s, const std::string& old, const std::string& with, std::int64_t count) {
  std::string out;
  if (old.empty()) {
    std::u32string cps = utf8_decode(s);
    std::int64_t done = 0;
    for (std::size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      if (i < cps.size()) utf8_append(out, cps[i]);
    }
    return out;
  }
  std::size_t start = 0;
  std::int64_t done = 0;
  while (count < 0 || done < count) {
    std::size_t hit = s.find(old, start);
    if (hit == std::string::npos) break;
    out += s.substr(start, hit - start) + with;
    start = hit + old.size();
    ++done;
  }
  return out + s.substr(start);
}

enum class Affix { Prefix, Suffix };
bool affix_match(const std::string& s, const Value& affix, Affix which) {
  bool at_start = which == Affix::Prefix;
  auto one = [&](const Value& a) {
    const std::string& x = need_str(a, at_start ? "startswith argument" : "endswith argument");
    if (x.size() > s.size()) return false;
    return at_start ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.kind() == ValueKind::Tuple) return std::any_of(affix.items().begin(), affix.items().end(), one);
  return one(affix);
}

enum class Casing { Title, Capitalize };
std::string py_title(const std::string& s, Casing casing) {
  bool only_first = casing == Casing::Capitalize;
  std::string out;
  bool prev_cased = false;
  bool first = true;
  for (char32_t c : utf8_decode(s)) {
    if (only_first) {
      utf8_append(out, first ? py_upper(c) : py_lower(c));
    } else {
      bool cased = py_isalpha(c);
      utf8_append(out, cased ? (prev_cased ? py_lower(c) : py_upper(c)) : c);
      prev_cased = cased;
    }
    first = false;
  }
  return out;
}

// str.format with {} / {0} / {name} fields, !s / !r conversions and {{ }} escapes (no format specs).
std::string py_format(const std::string& fmt, const CallArgs& args) {
  std::string out;
  std::size_t auto_index = 0;
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
      out += c;
      ++i;
      continue;
    }
    if (c == '}') eval_fail("single '}' encountered in format string");
    if (c != '{') {
      out += c;
      continue;
    }
    std::size_t close = fmt.find('}', i);
    if (close == std::string::npos) eval_fail("single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 's';
    if (std::size_t bang = field.find('!'); bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 's';
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos) eval_fail("format specifications are not supported in str.format");
    const Value* v = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      std::size_t idx = field.empty() ? auto_index++ : std::stoul(field);
      if (idx >= args.positional.size()) eval_fail("Replacement index ", idx, " out of range for positional args tuple");
      v = &args.positional[idx];
    } else {
      for (const auto& [k, kv] : args.keyword) {
        if (k == field) v = &kv;
      }
      if (v == nullptr) eval_fail("KeyError: '", field, "'");
    }
    out += conversion == 'r' ? v->repr() : v->str();
  }
  return out;
}

Value string_method(const std::string& s, const std::string& name, CallArgs& args) {
  std::string what = "str." + name + "()";
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Value chars = bind_args(args, {"chars"}, what)[0];
    StripSide side = name == "strip" ? StripSide::Both : name == "lstrip" ? StripSide::Left : StripSide::Right;
    if (!set(chars)) return Value::string(py_strip(s, side));
    std::u32string set_chars = utf8_decode(need_str(chars, "strip argument"));
    return Value::string(py_strip(s, side, &set_chars));
  }
  if (name == "split" || name == "rsplit") {
    auto a = bind_args(args, {"sep", "maxsplit"}, what);
    std::int64_t maxsplit = set(a[1]) ? to_index(a[1], "maxsplit") : -1;
    if (!set(a[0])) return Value::list(split_whitespace(s, name == "split" || maxsplit < 0 ? maxsplit : -1));
    return Value::list(split_on(s, need_str(a[0], "separator"), maxsplit, name == "rsplit" ? From::Right : From::Left));
  }
  if (name == "startswith" || name == "endswith") {
    Affix which = name == "startswith" ? Affix::Prefix : Affix::Suffix;
    return Value::boolean(affix_match(s, bind_args(args, {"prefix"}, what)[0], which));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    bind_args(args, {}, what);
    if (name == "upper") return Value::string(py_upper_str(s));
    if (name == "lower") return Value::string(py_lower_str(s));
    return Value::string(py_title(s, name == "capitalize" ? Casing::Capitalize : Casing::Title));
  }
  if (name == "replace") {
    auto a = bind_args(args, {"old", "new", "count"}, what);
    std::int64_t count = set(a[2]) ? to_index(a[2], "count") : -1;
    return Value::string(replace_all(s, need_str(a[0], "replace argument"), need_str(a[1], "replace argument"), count));
  }
  if (name == "format") return Value::string(py_format(s, args));
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const Value& item : iterate(bind_args(args, {"iterable"}, what)[0])) {
      if (!first) out += s;
      first = false;
      out += need_str(item, "sequence item");
    }
    return Value::string(std::move(out));
  }
  if (name == "find" || name == "count") {
    const std::string sub = need_str(bind_args(args, {"sub"}, what)[0], "substring");
    if (name == "find") {
      std::size_t hit = s.find(sub);
      return Value::integer(hit == std::string::npos ? -1 : static_cast<std::int64_t>(utf8_length(s.substr(0, hit))));
    }
    if (sub.empty()) return Value::integer(static_cast<std::int64_t>(utf8_length(s)) + 1);
    std::int64_t n = 0;
    for (std::size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return Value::integer(n);
  }
  // predicates: isdigit, isalpha, isalnum, isspace, isupper, islower
  bind_args(args, {}, what);
  std::u32string cps = utf8_decode(s);
  auto all = [&](auto pred) { return !cps.empty() && std::all_of(cps.begin(), cps.end(), pred); };
  if (name == "isdigit") return Value::boolean(all(py_isdigit));
  if (name == "isalpha") return Value::boolean(all(py_isalpha));
  if (name == "isalnum") return Value::boolean(all([](char32_t c) { return py_isalpha(c) || py_isdigit(c); }));
  if (name == "isspace") return Value::boolean(all(py_isspace));
  bool any_cased = std::any_of(cps.begin(), cps.end(), [](char32_t c) { return py_isupper(c) || py_islower(c); });
  if (name == "isupper") return Value::boolean(any_cased && std::none_of(cps.begin(), cps.end(), py_islower));
  return Value::boolean(any_cased && std::none_of(cps.begin(), cps.end(), py_isupper));
}

Value dict_method(const Value& d, const std::string& name, CallArgs& args) {
  std::string what = "dict." + name + "()";
  if (name == "get") {
    auto a = bind_args(args, {"key", "default"}, what);
    const Value* v = d.as_dict().find(a[0]);
    return v != nullptr ? *v : (a[1].is_undefined() ? Value::none() : a[1]);
  }
  bind_args(args, {}, what);
  ValueList out;
  for (const auto& [k, v] : d.as_dict().entries) {
    if (name == "items") out.push_back(Value::tuple({k, v}));
    else out.push_back(name == "keys" ? k : v);
  }
  return Value::list(std::move(out));
}

}  // namespace

Value method_of(const Value& obj, const std::string& name) {
  static const char* const kStr[] = {"strip",   "lstrip", "rstrip",     "split",  "rsplit",  "startswith", "endswith",
                                     "upper",   "lower",  "title",      "capitalize", "replace", "format", "join",
                                     "find",    "count",  "isdigit",    "isalpha", "isalnum", "isspace", "isupper",
                                     "islower"};
  static const char* const kDict[] = {"items", "keys", "values", "get"};
  auto known = [&](const auto& table) {
    return std::any_of(std::begin(table), std::end(table), [&](const char* n) { return name == n; });
  };
  if (obj.is_string() && known(kStr)) {
    std::string s = obj.as_string();
    return Value::callable("str." + name, [s, name](CallArgs& a) { return string_method(s, name, a); });
  }
  if (obj.is_dict() && known(kDict)) {
    Value d = obj;
    return Value::callable("dict." + name, [d, name](CallArgs& a) { return dict_method(d, name, a); });
  }
  return Value();
}

}  // namespace kto::jinja
