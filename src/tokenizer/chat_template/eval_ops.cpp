// Python's binary operators and comparisons on template values: int arithmetic with floor
// division/modulo, true division giving float, str/list concatenation and repetition, `~` (jinja2's
// string concatenation), printf-style `str % args`, `in`, and Undefined raising where CPython
// would call a failing dunder method (jinja2.runtime.Undefined).
#include <cmath>
#include <limits>

#include "tokenizer/chat_template/builtins.h"
#include "tokenizer/chat_template/evaluator.h"
#include "tokenizer/chat_template/text.h"

namespace kto::jinja {

namespace {

constexpr std::size_t kMaxRepeat = 1 << 24;  // cap on str/list repetition results

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  eval_fail("unsupported operand type(s) for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'");
}

void check_overflow(bool overflow) {
  if (overflow) eval_fail("integer overflow (values beyond 64 bits are not supported)");
}

Value int_op(const std::string& op, std::int64_t x, std::int64_t y) {
  std::int64_t r = 0;
  if (op == "+" || op == "-" || op == "*") {
    check_overflow(op == "+" ? __builtin_add_overflow(x, y, &r)
                   : op == "-" ? __builtin_sub_overflow(x, y, &r)
                               : __builtin_mul_overflow(x, y, &r));
    return Value::integer(r);
  }
  if (op == "/") {
    if (y == 0) eval_fail("division by zero");
    return Value::number(static_cast<double>(x) / static_cast<double>(y));
  }
  if (op == "//" || op == "%") {
    if (y == 0) eval_fail("integer division or modulo by zero");
    check_overflow(x == std::numeric_limits<std::int64_t>::min() && y == -1);
    std::int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
      --q;
      m += y;
    }
    return Value::integer(op == "//" ? q : m);
  }
  // "**"
  if (y < 0) return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
  std::int64_t result = 1;
  for (std::int64_t i = 0; i < y; ++i) check_overflow(__builtin_mul_overflow(result, x, &result));
  return Value::integer(result);
}

Value float_op(const std::string& op, double x, double y) {
  if (op == "+") return Value::number(x + y);
  if (op == "-") return Value::number(x - y);
  if (op == "*") return Value::number(x * y);
  if (op == "/") {
    if (y == 0.0) eval_fail("float division by zero");
    return Value::number(x / y);
  }
  if (op == "//" || op == "%") {
    if (y == 0.0) eval_fail("float floor division or modulo by zero");
    // CPython's float_divmod.
    double mod = std::fmod(x, y);
    double div = (x - mod) / y;
    if (mod != 0.0 && ((y < 0) != (mod < 0))) {
      mod += y;
      div -= 1.0;
    }
    if (op == "%") return Value::number(mod != 0.0 ? mod : std::copysign(0.0, y));
    double floordiv = std::copysign(0.0, x / y);
    if (div != 0.0) {
      floordiv = std::floor(div);
      if (div - floordiv > 0.5) floordiv += 1.0;
    }
    return Value::number(floordiv);
  }
  return Value::number(std::pow(x, y));
}

Value repeat(const Value& seq, std::int64_t times) {
  if (times < 0) times = 0;
  if (seq.is_string()) {
    if (seq.as_string().size() * static_cast<std::size_t>(times) > kMaxRepeat) eval_fail("string repetition too large");
    std::string out;
    for (std::int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value::string(std::move(out));
  }
  if (seq.items().size() * static_cast<std::size_t>(times) > kMaxRepeat) eval_fail("list repetition too large");
  ValueList out;
  for (std::int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return seq.kind() == ValueKind::Tuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

// printf-style formatting: %s %r %d %i %f %% (with optional precision for %f).
Value percent_format(const std::string& fmt, const Value& args) {
  ValueList values = args.kind() == ValueKind::Tuple ? args.items() : ValueList{args};
  std::string out;
  std::size_t next = 0;
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) eval_fail("incomplete format");
    int precision = -1;
    if (fmt[i] == '.') {
      precision = 0;
      while (++i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') precision = precision * 10 + (fmt[i] - '0');
      if (i >= fmt.size()) eval_fail("incomplete format");
    }
    char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) eval_fail("not enough arguments for format string");
    const Value& v = values[next++];
    if (conv == 's') {
      out += v.str();
    } else if (conv == 'r') {
      out += v.repr();
    } else if ((conv == 'd' || conv == 'i') && v.is_number()) {
      out += std::to_string(v.kind() == ValueKind::Float ? static_cast<std::int64_t>(v.as_float()) : v.as_int());
    } else if (conv == 'f' && v.is_number()) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.*f", precision < 0 ? 6 : precision, v.as_float());
      out += buf;
    } else {
      eval_fail("unsupported format character '", std::string(1, conv), "' for ", v.type_name());
    }
  }
  if (next < values.size()) eval_fail("not all arguments converted during string formatting");
  return Value::string(std::move(out));
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::string(a.str() + b.str());
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  if (a.is_number() && b.is_number()) {
    if (a.kind() == ValueKind::Float || b.kind() == ValueKind::Float || (op == "**" && b.as_int() < 0)) {
      return float_op(op, a.as_float(), b.as_float());
    }
    return int_op(op, a.as_int(), b.as_int());
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value::string(a.as_string() + b.as_string());
    if (a.is_sequence() && a.kind() == b.kind()) {
      ValueList out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return a.kind() == ValueKind::Tuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
    if (a.is_string()) eval_fail("can only concatenate str (not \"", b.type_name(), "\") to str");
    if (a.kind() == ValueKind::List) eval_fail("can only concatenate list (not \"", b.type_name(), "\") to list");
  }
  if (op == "*") {
    bool a_seq = a.is_string() || a.is_sequence();
    bool b_seq = b.is_string() || b.is_sequence();
    if (a_seq && (b.kind() == ValueKind::Int || b.kind() == ValueKind::Bool)) return repeat(a, b.as_int());
    if (b_seq && (a.kind() == ValueKind::Int || a.kind() == ValueKind::Bool)) return repeat(b, a.as_int());
  }
  if (op == "%" && a.is_string()) return percent_format(a.as_string(), b);
  unsupported(op, a, b);
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case ValueKind::Undefined: return false;
    case ValueKind::String:
      if (item.is_undefined()) item.fail_undefined();
      if (!item.is_string()) eval_fail("'in <string>' requires string as left operand, not ", item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case ValueKind::List:
    case ValueKind::Tuple:
      for (const Value& v : container.items()) {
        if (py_equal(v, item)) return true;
      }
      return false;
    case ValueKind::Dict: return container.as_dict().find(item) != nullptr;
    case ValueKind::Namespace: return container.as_namespace().attrs.find(item) != nullptr;
    default: eval_fail("argument of type '", container.type_name(), "' is not iterable");
  }
}

bool compare_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return py_equal(a, b);
  if (op == "!=") return !py_equal(a, b);
  if (op == "in") return contains(b, a);
  if (op == "not in") return !contains(b, a);
  int c = py_compare(a, b, op.c_str());
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

}  // namespace kto::jinja
