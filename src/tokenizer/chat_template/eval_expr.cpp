// Expression evaluation for chat templates with jinja2's runtime rules: names resolve through the
// frames (missing ones are Undefined), `a.b` tries the attribute then the item and `a['b']` the
// item then the attribute (environment.getattr / getitem), `and`/`or` return an operand, and
// using an Undefined for anything but printing, testing, iterating or `~` raises UndefinedError.
#include "tokenizer/chat_template/builtins.h"
#include "tokenizer/chat_template/evaluator.h"
#include "tokenizer/chat_template/text.h"

namespace kto::jinja {

Value Renderer::eval(const Expr& e, Frame& frame) {
  DepthGuard guard(*this);
  try {
    return eval_node(e, frame);
  } catch (EvalError& err) {
    if (!err.located()) err.locate(e.pos.line, e.pos.column);
    throw;
  }
}

Value Renderer::eval_node(const Expr& e, Frame& frame) {
  switch (e.kind) {
    case ExprKind::Literal: return e.literal;
    case ExprKind::Name: {
      const Value* v = frame.lookup(e.name);
      return v != nullptr ? *v : Value::undefined(str_cat("'", e.name, "' is undefined"));
    }
    case ExprKind::List:
    case ExprKind::Tuple: {
      ValueList items;
      for (const auto& a : e.args) items.push_back(eval(*a, frame));
      return e.kind == ExprKind::List ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    case ExprKind::Dict: {
      Dict d;
      for (std::size_t i = 0; i + 1 < e.args.size(); i += 2) d.set(eval(*e.args[i], frame), eval(*e.args[i + 1], frame));
      return Value::dict(std::move(d));
    }
    case ExprKind::Attribute: return get_attribute(eval(*e.args[0], frame), e.name);
    case ExprKind::Item: {
      Value obj = eval(*e.args[0], frame);
      return get_item(obj, eval(*e.args[1], frame));
    }
    case ExprKind::Slice: return eval_slice(e, frame);
    case ExprKind::Not: return Value::boolean(!eval(*e.args[0], frame).truthy());
    case ExprKind::Negate: return binary_op("-", Value::integer(0), eval(*e.args[0], frame));
    case ExprKind::Positive: return binary_op("+", Value::integer(0), eval(*e.args[0], frame));
    case ExprKind::Binary: {
      Value left = eval(*e.args[0], frame);
      return binary_op(e.name, left, eval(*e.args[1], frame));
    }
    case ExprKind::Compare: return eval_compare(e, frame);
    case ExprKind::And: {
      Value left = eval(*e.args[0], frame);
      return left.truthy() ? eval(*e.args[1], frame) : left;
    }
    case ExprKind::Or: {
      Value left = eval(*e.args[0], frame);
      return left.truthy() ? left : eval(*e.args[1], frame);
    }
    case ExprKind::Conditional:
      if (eval(*e.args[1], frame).truthy()) return eval(*e.args[0], frame);
      return e.args[2] ? eval(*e.args[2], frame) : Value::undefined("the inline if-expression on line " +
                                                                      std::to_string(e.pos.line) + " evaluated to false and no else section was defined.");
    case ExprKind::Filter: return eval_filter(e, frame);
    case ExprKind::Test: return eval_test(e, frame);
    case ExprKind::Call: {
      Value callee = eval(*e.args[0], frame);
      CallArgs args = eval_args(e, frame);
      return call(callee, args);
    }
  }
  return Value();
}

CallArgs Renderer::eval_args(const Expr& e, Frame& frame) {
  CallArgs args;
  for (std::size_t i = 1; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i], frame));
  for (const auto& kw : e.kwargs) args.keyword.emplace_back(kw.name, eval(*kw.value, frame));
  return args;
}

Value Renderer::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) callee.fail_undefined();
  if (callee.kind() != ValueKind::Callable) eval_fail("'", callee.type_name(), "' object is not callable");
  return callee.as_callable().fn(args);
}

Value Renderer::eval_compare(const Expr& e, Frame& frame) {
  Value left = eval(*e.args[0], frame);
  for (std::size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.args[i + 1], frame);
    if (!compare_op(e.ops[i], left, right)) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Renderer::eval_filter(const Expr& e, Frame& frame) {
  Value subject = eval(*e.args[0], frame);
  CallArgs args = eval_args(e, frame);
  FilterFn fn = find_filter(e.name);
  return fn(*this, subject, args);
}

Value Renderer::eval_test(const Expr& e, Frame& frame) {
  Value subject = eval(*e.args[0], frame);
  CallArgs args = eval_args(e, frame);
  TestFn fn = find_test(e.name);
  return Value::boolean(fn(*this, subject, args));
}

namespace {

// Python slice.indices(): clamps start/stop for a sequence of `n` items.
void slice_indices(std::int64_t n, const Value& start_v, const Value& stop_v, std::int64_t step, std::int64_t& start,
                   std::int64_t& stop) {
  auto clamp = [&](const Value& v, std::int64_t dflt) {
    if (v.is_none() || v.is_undefined()) return dflt;
    std::int64_t i = to_index(v, "slice index");
    if (i < 0) i += n;
    if (step > 0) return std::min(std::max<std::int64_t>(i, 0), n);
    return std::min(std::max<std::int64_t>(i, -1), n - 1);
  };
  start = clamp(start_v, step > 0 ? 0 : n - 1);
  stop = clamp(stop_v, step > 0 ? n : -1);
}

}  // namespace

Value Renderer::eval_slice(const Expr& e, Frame& frame) {
  Value obj = eval(*e.args[0], frame);
  Value parts[3];
  for (int k = 0; k < 3; ++k) {
    if (e.args[static_cast<std::size_t>(k) + 1]) parts[k] = eval(*e.args[static_cast<std::size_t>(k) + 1], frame);
  }
  if (obj.is_undefined()) obj.fail_undefined();
  std::int64_t step = (parts[2].is_none() || parts[2].is_undefined()) ? 1 : to_index(parts[2], "slice step");
  if (step == 0) eval_fail("slice step cannot be zero");
  std::u32string chars;
  bool is_str = obj.is_string();
  if (is_str) chars = utf8_decode(obj.as_string());
  if (!is_str && !obj.is_sequence()) return Value::undefined(str_cat("'", obj.type_name(), " object' is not subscriptable"));
  auto n = static_cast<std::int64_t>(is_str ? chars.size() : obj.items().size());
  std::int64_t start = 0, stop = 0;
  slice_indices(n, parts[0], parts[1], step, start, stop);
  std::u32string out_chars;
  ValueList out_items;
  for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (is_str) {
      out_chars += chars[static_cast<std::size_t>(i)];
    } else {
      out_items.push_back(obj.items()[static_cast<std::size_t>(i)]);
    }
  }
  if (is_str) return Value::string(utf8_encode(out_chars));
  return obj.kind() == ValueKind::Tuple ? Value::tuple(std::move(out_items)) : Value::list(std::move(out_items));
}

Value Renderer::get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) obj.fail_undefined();
  Value method = method_of(obj, name);
  if (method.kind() == ValueKind::Callable) return method;
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(name)) return *v;
  } else if (obj.kind() == ValueKind::Namespace) {
    if (const Value* v = obj.as_namespace().attrs.find(name)) return *v;
  }
  return Value::undefined(str_cat("'", obj.type_name(), " object' has no attribute '", name, "'"));
}

Value Renderer::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) obj.fail_undefined();
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if ((obj.is_sequence() || obj.is_string()) && (key.kind() == ValueKind::Int || key.kind() == ValueKind::Bool)) {
    std::int64_t i = key.as_int();
    if (obj.is_string()) {
      std::u32string chars = utf8_decode(obj.as_string());
      auto n = static_cast<std::int64_t>(chars.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value::string(utf8_encode(std::u32string(1, chars[static_cast<std::size_t>(i)])));
    } else {
      auto n = static_cast<std::int64_t>(obj.items().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.items()[static_cast<std::size_t>(i)];
    }
  }
  if (key.is_string()) return get_attribute(obj, key.as_string());
  return Value::undefined(str_cat("'", obj.type_name(), " object' has no attribute ", key.repr()));
}

}  // namespace kto::jinja
