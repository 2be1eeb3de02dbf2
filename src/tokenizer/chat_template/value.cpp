// Value construction, Python truthiness / == / ordering, dict lookup and iteration (see value.h).
// Semantics follow CPython and jinja2.runtime.Undefined (falsy, iterates empty, equal only to
// another Undefined).
#include "tokenizer/chat_template/value.h"

#include "tokenizer/chat_template/text.h"

namespace kto::jinja {

Value Value::undefined(std::string hint) {
  Value v;
  v.s_ = std::move(hint);
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = ValueKind::None;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = ValueKind::Bool;
  v.b_ = b;
  return v;
}

Value Value::integer(std::int64_t i) {
  Value v;
  v.kind_ = ValueKind::Int;
  v.i_ = i;
  return v;
}

Value Value::number(double f) {
  Value v;
  v.kind_ = ValueKind::Float;
  v.f_ = f;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = ValueKind::String;
  v.s_ = std::move(s);
  return v;
}

Value Value::list(ValueList items) {
  Value v;
  v.kind_ = ValueKind::List;
  v.list_ = std::make_shared<const ValueList>(std::move(items));
  return v;
}

Value Value::tuple(ValueList items) {
  Value v = list(std::move(items));
  v.kind_ = ValueKind::Tuple;
  return v;
}

Value Value::dict(Dict d) {
  Value v;
  v.kind_ = ValueKind::Dict;
  v.dict_ = std::make_shared<const Dict>(std::move(d));
  return v;
}

Value Value::callable(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.kind_ = ValueKind::Callable;
  v.callable_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

Value Value::namespace_of(Dict attrs) {
  Value v;
  v.kind_ = ValueKind::Namespace;
  v.namespace_ = std::make_shared<Namespace>(Namespace{std::move(attrs)});
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return integer(j.get<std::int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) return number(static_cast<double>(u));
      return integer(static_cast<std::int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return number(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      for (const auto& [k, e] : j.items()) d.entries.emplace_back(string(k), from_json(e));
      return dict(std::move(d));
    }
    default: return undefined("unsupported JSON value");
  }
}

std::int64_t Value::as_int() const { return kind_ == ValueKind::Bool ? (b_ ? 1 : 0) : i_; }

double Value::as_float() const {
  if (kind_ == ValueKind::Float) return f_;
  return static_cast<double>(as_int());
}

bool Value::truthy() const {
  switch (kind_) {
    case ValueKind::Undefined:
    case ValueKind::None: return false;
    case ValueKind::Bool: return b_;
    case ValueKind::Int: return i_ != 0;
    case ValueKind::Float: return f_ != 0.0;
    case ValueKind::String: return !s_.empty();
    case ValueKind::List:
    case ValueKind::Tuple: return !list_->empty();
    case ValueKind::Dict: return !dict_->entries.empty();
    default: return true;
  }
}

std::string Value::type_name() const {
  switch (kind_) {
    case ValueKind::Undefined: return "Undefined";
    case ValueKind::None: return "NoneType";
    case ValueKind::Bool: return "bool";
    case ValueKind::Int: return "int";
    case ValueKind::Float: return "float";
    case ValueKind::String: return "str";
    case ValueKind::List: return "list";
    case ValueKind::Tuple: return "tuple";
    case ValueKind::Dict: return "dict";
    case ValueKind::Callable: return "function";
    case ValueKind::Namespace: return "Namespace";
  }
  return "object";
}

void Value::fail_undefined() const {
  eval_fail(s_.empty() ? std::string("value is undefined") : s_);
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : entries) {
    if (py_equal(k, key)) return &v;
  }
  return nullptr;
}

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : entries) {
    if (k.is_string() && k.as_string() == key) return &v;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (py_equal(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

namespace {

bool sequences_equal(const ValueList& a, const ValueList& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!py_equal(a[i], b[i])) return false;
  }
  return true;
}

bool dicts_equal(const Dict& a, const Dict& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (const auto& [k, v] : a.entries) {
    const Value* other = b.find(k);
    if (other == nullptr || !py_equal(v, *other)) return false;
  }
  return true;
}

}  // namespace

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == ValueKind::Float || b.kind() == ValueKind::Float) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case ValueKind::Undefined:
    case ValueKind::None: return true;
    case ValueKind::String: return a.as_string() == b.as_string();
    case ValueKind::List:
    case ValueKind::Tuple: return sequences_equal(a.items(), b.items());
    case ValueKind::Dict: return dicts_equal(a.as_dict(), b.as_dict());
    case ValueKind::Callable: return &a.as_callable() == &b.as_callable();
    case ValueKind::Namespace: return &a.as_namespace() == &b.as_namespace();
    default: return false;
  }
}

int py_compare(const Value& a, const Value& b, const char* op) {
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  if (a.is_number() && b.is_number()) {
    if (a.kind() == ValueKind::Float || b.kind() == ValueKind::Float) {
      double x = a.as_float(), y = b.as_float();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    std::int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.as_string().compare(b.as_string());  // UTF-8 byte order == code point order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.kind() == b.kind() && a.is_sequence()) {
    const ValueList& x = a.items();
    const ValueList& y = b.items();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!py_equal(x[i], y[i])) return py_compare(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  eval_fail("'", op, "' not supported between instances of '", a.type_name(), "' and '", b.type_name(), "'");
}

ValueList iterate(const Value& v) {
  switch (v.kind()) {
    case ValueKind::Undefined: return {};
    case ValueKind::List:
    case ValueKind::Tuple: return v.items();
    case ValueKind::Dict: {
      ValueList keys;
      for (const auto& [k, e] : v.as_dict().entries) keys.push_back(k);
      return keys;
    }
    case ValueKind::String: {
      ValueList chars;
      std::string one;
      for (char32_t c : utf8_decode(v.as_string())) {
        one.clear();
        utf8_append(one, c);
        chars.push_back(Value::string(one));
      }
      return chars;
    }
    default: eval_fail("'", v.type_name(), "' object is not iterable");
  }
}

}  // namespace kto::jinja
