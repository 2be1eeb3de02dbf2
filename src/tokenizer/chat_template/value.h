// Values of the chat-template interpreter: the Python objects a jinja2 template handles (None,
// bool, int, float, str, list, tuple, dict in insertion order, callables, jinja2's Namespace and
// its default `Undefined`), with Python's truthiness, ==, ordering, str() and repr(). EvalError is
// the internal runtime error; ChatTemplate::render turns it into a kto::Error with a position.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "util/error.h"

namespace kto::jinja {

enum class ValueKind { Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Callable, Namespace };

class Value;
struct Dict;
struct Callable;
struct Namespace;
struct CallArgs;
using ValueList = std::vector<Value>;

class Value {
 public:
  Value() = default;  // Undefined without a hint
  static Value undefined(std::string hint);  // hint: the UndefinedError message if it is used
  static Value none();
  static Value boolean(bool b);
  static Value integer(std::int64_t i);
  static Value number(double f);
  static Value string(std::string s);
  static Value list(ValueList items);
  static Value tuple(ValueList items);
  static Value dict(Dict d);
  static Value callable(std::string name, std::function<Value(CallArgs&)> fn);
  static Value namespace_of(Dict attrs);
  static Value from_json(const nlohmann::ordered_json& j);

  ValueKind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == ValueKind::Undefined; }
  bool is_none() const { return kind_ == ValueKind::None; }
  bool is_string() const { return kind_ == ValueKind::String; }
  bool is_number() const { return kind_ == ValueKind::Int || kind_ == ValueKind::Float || kind_ == ValueKind::Bool; }
  bool is_sequence() const { return kind_ == ValueKind::List || kind_ == ValueKind::Tuple; }
  bool is_dict() const { return kind_ == ValueKind::Dict; }

  bool as_bool() const { return b_; }
  std::int64_t as_int() const;   // Bool and Int
  double as_float() const;       // Bool, Int and Float
  const std::string& as_string() const { return s_; }
  const std::string& undefined_hint() const { return s_; }
  const ValueList& items() const { return *list_; }  // List and Tuple
  const Dict& as_dict() const { return *dict_; }
  const Callable& as_callable() const { return *callable_; }
  Namespace& as_namespace() const { return *namespace_; }

  bool truthy() const;
  std::string type_name() const;  // Python's type name, for messages: "str", "dict", "NoneType"
  std::string str() const;        // Python str()
  std::string repr() const;       // Python repr()
  [[noreturn]] void fail_undefined() const;  // raises this Undefined's UndefinedError

 private:
  ValueKind kind_ = ValueKind::Undefined;
  bool b_ = false;
  std::int64_t i_ = 0;
  double f_ = 0.0;
  std::string s_;  // String, or the Undefined hint
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<const Dict> dict_;
  std::shared_ptr<const Callable> callable_;
  std::shared_ptr<Namespace> namespace_;
};

// A Python dict: insertion-ordered, keys compared with Python ==. Linear lookup: template dicts are small.
struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  const Value* find(const Value& key) const;
  const Value* find(const std::string& key) const;
  void set(Value key, Value value);
};

struct Namespace {
  Dict attrs;
};

struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
};

// Internal runtime error; located once an expression or statement position is attached.
class EvalError : public std::runtime_error {
 public:
  EvalError(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  bool located() const { return line_ > 0; }
  int line() const { return line_; }
  int column() const { return column_; }
  void locate(int line, int column) { line_ = line, column_ = column; }

 private:
  ErrorKind kind_;
  int line_ = 0;
  int column_ = 0;
};

template <typename... Args>
[[noreturn]] void eval_fail(Args&&... args) {
  throw EvalError(ErrorKind::Format, str_cat(std::forward<Args>(args)...));
}

bool py_equal(const Value& a, const Value& b);
int py_compare(const Value& a, const Value& b, const char* op);  // <0, 0, >0; TypeError if unordered
std::string py_float_repr(double f);
std::string py_string_repr(const std::string& s);

// json.dumps(value, ensure_ascii=False, indent, separators, sort_keys) as transformers' tojson does.
struct JsonDumpOptions {
  bool indent_enabled = false;
  std::string indent;  // the indent unit when enabled ("" = newlines only)
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
std::string json_dumps(const Value& v, const JsonDumpOptions& options);

// Iteration as Python's iter(): list/tuple items, dict keys, string characters; Undefined is empty.
ValueList iterate(const Value& v);

}  // namespace kto::jinja
