// Printing values the Python way: str() / repr() as CPython formats them (float repr is the
// shortest round-trip form, exponent when < 1e-4 or >= 1e16), and json.dumps with
// ensure_ascii=False, which is what transformers' `tojson` filter override calls.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/chat_template/text.h"
#include "tokenizer/chat_template/value.h"
#include "util/json_text.h"

namespace kto::jinja {

std::string py_float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::size_t e_pos = sci.find('e');
  std::string mant = sci.substr(0, e_pos);
  int exp = std::stoi(sci.substr(e_pos + 1));
  bool negative = mant[0] == '-';
  if (negative) mant.erase(0, 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits += c;
  }
  std::string out = negative ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out.append("0.").append(static_cast<std::size_t>(-exp - 1), '0').append(digits);
    } else {
      auto int_len = static_cast<std::size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        out.append(digits).append(int_len - digits.size(), '0').append(".0");
      } else {
        out.append(digits, 0, int_len).append(1, '.').append(digits, int_len);
      }
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out.append(1, '.').append(digits, 1);
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return out + exp_buf;
}

std::string py_string_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!py_isprintable(c)) {
      char buf[16];
      if (c < 0x100) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      } else if (c < 0x10000) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
      }
      out += buf;
    } else {
      utf8_append(out, c);
    }
  }
  out += quote;
  return out;
}

namespace {

std::string dict_repr(const Dict& d) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : d.entries) {
    if (!first) out += ", ";
    first = false;
    out += k.repr() + ": " + v.repr();
  }
  return out + "}";
}

}  // namespace

std::string Value::str() const {
  switch (kind_) {
    case ValueKind::Undefined: return "";
    case ValueKind::String: return s_;
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (kind_) {
    case ValueKind::Undefined: return "Undefined";
    case ValueKind::None: return "None";
    case ValueKind::Bool: return b_ ? "True" : "False";
    case ValueKind::Int: return std::to_string(i_);
    case ValueKind::Float: return py_float_repr(f_);
    case ValueKind::String: return py_string_repr(s_);
    case ValueKind::List:
    case ValueKind::Tuple: {
      bool tuple = kind_ == ValueKind::Tuple;
      std::string out = tuple ? "(" : "[";
      for (std::size_t i = 0; i < list_->size(); ++i) {
        if (i > 0) out += ", ";
        out += (*list_)[i].repr();
      }
      if (tuple && list_->size() == 1) out += ",";
      return out + (tuple ? ")" : "]");
    }
    case ValueKind::Dict: return dict_repr(*dict_);
    case ValueKind::Callable: return "<function " + callable_->name + ">";
    case ValueKind::Namespace: return "<Namespace " + dict_repr(namespace_->attrs) + ">";
  }
  return "";
}

namespace {

std::string json_float(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return py_float_repr(f);
}

std::string json_key(const Value& k) {
  switch (k.kind()) {
    case ValueKind::String: return k.as_string();
    case ValueKind::None: return "null";
    case ValueKind::Bool: return k.as_bool() ? "true" : "false";
    case ValueKind::Int: return std::to_string(k.as_int());
    case ValueKind::Float: return json_float(k.as_float());
    default: eval_fail("keys must be str, int, float, bool or None, not ", k.type_name());
  }
}

class JsonWriter {
 public:
  explicit JsonWriter(const JsonDumpOptions& options) : opt_(options) {}
  void write(const Value& v, int level);
  std::string out;

 private:
  void newline(int level) {
    if (!opt_.indent_enabled) return;
    out += '\n';
    for (int i = 0; i < level; ++i) out += opt_.indent;
  }
  void write_dict(const Dict& d, int level);
  const JsonDumpOptions& opt_;
};

void JsonWriter::write(const Value& v, int level) {
  switch (v.kind()) {
    case ValueKind::None: out += "null"; return;
    case ValueKind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case ValueKind::Int: out += std::to_string(v.as_int()); return;
    case ValueKind::Float: out += json_float(v.as_float()); return;
    case ValueKind::String: json_append_string(out, v.as_string()); return;
    case ValueKind::List:
    case ValueKind::Tuple: {
      if (v.items().empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (std::size_t i = 0; i < v.items().size(); ++i) {
        if (i > 0) out += opt_.item_separator;
        newline(level + 1);
        write(v.items()[i], level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case ValueKind::Dict: write_dict(v.as_dict(), level); return;
    default: eval_fail("Object of type ", v.type_name(), " is not JSON serializable");
  }
}

void JsonWriter::write_dict(const Dict& d, int level) {
  if (d.entries.empty()) {
    out += "{}";
    return;
  }
  std::vector<const std::pair<Value, Value>*> entries;
  for (const auto& e : d.entries) entries.push_back(&e);
  if (opt_.sort_keys) {
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto* a, const auto* b) { return py_compare(a->first, b->first, "<") < 0; });
  }
  out += '{';
  bool first = true;
  for (const auto* e : entries) {
    if (!first) out += opt_.item_separator;
    first = false;
    newline(level + 1);
    json_append_string(out, json_key(e->first));
    out += opt_.key_separator;
    write(e->second, level + 1);
  }
  newline(level);
  out += '}';
}

}  // namespace

std::string json_dumps(const Value& v, const JsonDumpOptions& options) {
  JsonWriter writer(options);
  writer.write(v, 0);
  return std::move(writer.out);
}

}  // namespace kto::jinja
