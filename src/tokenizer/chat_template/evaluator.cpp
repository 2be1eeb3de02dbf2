// Statement execution for chat templates: jinja2's scoping (a new frame per loop iteration and
// macro call, `if` shares its frame), the loop object, loopcontrols, macros with `caller`, and
// transformers' {% generation %} block (its body renders unchanged).
#include "tokenizer/chat_template/evaluator.h"

#include "tokenizer/chat_template/builtins.h"

namespace kto::jinja {

namespace {
constexpr int kMaxDepth = 400;  // nested statements + expressions + macro calls
}

const Value* Frame::lookup(const std::string& name) const {
  for (const Frame* f = this; f != nullptr; f = f->parent) {
    for (const auto& [k, v] : f->vars) {
      if (k == name) return &v;
    }
  }
  return nullptr;
}

void Frame::set(const std::string& name, Value value) {
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(name, std::move(value));
}

Renderer::DepthGuard::DepthGuard(Renderer& r) : renderer(r) {
  if (++renderer.depth_ > kMaxDepth) eval_fail("template recursion too deep (more than ", kMaxDepth, " levels)");
}

std::string Renderer::render(const StmtList& body, const Dict& variables) {
  Frame globals(nullptr);
  install_globals(globals, *this);
  Frame root(&globals);
  for (const auto& [k, v] : variables.entries) {
    if (k.is_string()) root.set(k.as_string(), v);
  }
  root_ = &root;
  std::string out;
  exec_list(body, root, out);
  root_ = nullptr;
  return out;
}

Renderer::Flow Renderer::exec_list(const StmtList& body, Frame& frame, std::string& out) {
  for (const auto& s : body) {
    Flow flow = exec(*s, frame, out);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Renderer::Flow Renderer::exec(const Stmt& s, Frame& frame, std::string& out) {
  DepthGuard guard(*this);
  try {
    switch (s.kind) {
      case StmtKind::Text: out += s.text; break;
      case StmtKind::Print: out += eval(*s.expr, frame).str(); break;
      case StmtKind::If:
        return exec_list(eval(*s.expr, frame).truthy() ? s.body : s.else_body, frame, out);
      case StmtKind::For: exec_for(s, frame, out); break;
      case StmtKind::Set: exec_set(s, frame); break;
      case StmtKind::SetBlock: {
        std::string text;
        exec_list(s.body, frame, text);
        frame.set(s.targets[0], Value::string(std::move(text)));
        break;
      }
      case StmtKind::Macro: frame.set(s.text, make_macro(s)); break;
      case StmtKind::CallBlock: exec_call_block(s, frame, out); break;
      case StmtKind::Break: return Flow::Break;
      case StmtKind::Continue: return Flow::Continue;
      case StmtKind::Generation: return exec_list(s.body, frame, out);
    }
  } catch (EvalError& e) {
    if (!e.located()) e.locate(s.pos.line, s.pos.column);
    throw;
  }
  return Flow::Normal;
}

void Renderer::bind_targets(const std::vector<std::string>& targets, const Value& value, Frame& frame) {
  if (targets.size() == 1) {
    frame.set(targets[0], value);
    return;
  }
  if (value.is_undefined()) value.fail_undefined();
  ValueList items = iterate(value);
  if (items.size() != targets.size()) {
    eval_fail(items.size() < targets.size() ? "not enough" : "too many", " values to unpack (expected ",
              targets.size(), ", got ", items.size(), ")");
  }
  for (std::size_t i = 0; i < targets.size(); ++i) frame.set(targets[i], items[i]);
}

namespace {

Value loop_object(const ValueList& items, std::size_t i) {
  auto n = static_cast<std::int64_t>(items.size());
  auto idx = static_cast<std::int64_t>(i);
  Dict d;
  d.set(Value::string("index0"), Value::integer(idx));
  d.set(Value::string("index"), Value::integer(idx + 1));
  d.set(Value::string("revindex0"), Value::integer(n - idx - 1));
  d.set(Value::string("revindex"), Value::integer(n - idx));
  d.set(Value::string("first"), Value::boolean(i == 0));
  d.set(Value::string("last"), Value::boolean(i + 1 == items.size()));
  d.set(Value::string("length"), Value::integer(n));
  d.set(Value::string("depth0"), Value::integer(0));
  d.set(Value::string("depth"), Value::integer(1));
  d.set(Value::string("previtem"), i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
  d.set(Value::string("nextitem"), i + 1 < items.size() ? items[i + 1] : Value::undefined("there is no next item"));
  d.set(Value::string("cycle"), Value::callable("loop.cycle", [idx](CallArgs& a) {
          if (a.positional.empty()) eval_fail("no items for cycling given");
          return a.positional[static_cast<std::size_t>(idx) % a.positional.size()];
        }));
  return Value::dict(std::move(d));
}

}  // namespace

void Renderer::exec_for(const Stmt& s, Frame& frame, std::string& out) {
  Value iterable = eval(*s.expr, frame);
  ValueList items;
  try {
    items = iterate(iterable);
  } catch (EvalError& e) {
    e.locate(s.expr->pos.line, s.expr->pos.column);
    throw;
  }
  if (s.condition) {
    ValueList kept;
    for (const Value& item : items) {
      Frame probe(&frame);
      bind_targets(s.targets, item, probe);
      if (eval(*s.condition, probe).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    Frame iteration(&frame);
    bind_targets(s.targets, items[i], iteration);
    iteration.set("loop", loop_object(items, i));
    if (exec_list(s.body, iteration, out) == Flow::Break) break;
  }
  if (items.empty()) exec_list(s.else_body, frame, out);
}

void Renderer::exec_set(const Stmt& s, Frame& frame) {
  Value value = eval(*s.expr, frame);
  if (s.attribute.empty()) {
    bind_targets(s.targets, value, frame);
    return;
  }
  const Value* target = frame.lookup(s.targets[0]);
  if (target == nullptr || target->kind() != ValueKind::Namespace) {
    eval_fail("cannot assign attribute on non-namespace object '", s.targets[0], "'");
  }
  if (!s.attribute.empty() && s.attribute[0] == '_') {
    eval_fail("chat templates cannot store underscore-prefixed attributes on a namespace ('", s.attribute, "')");
  }
  target->as_namespace().attrs.set(Value::string(s.attribute), std::move(value));
}

Value Renderer::make_macro(const Stmt& s) {
  const Stmt* macro = &s;
  return Value::callable(s.text, [this, macro](CallArgs& args) { return call_macro(*macro, *root_, args); });
}

// Binds arguments like a jinja2 Macro: positional, then keywords, then defaults (evaluated in the
// macro's frame, so they can refer to earlier parameters); `caller` is accepted from call blocks.
Value Renderer::call_macro(const Stmt& macro, const Frame& parent, CallArgs& args) {
  DepthGuard guard(*this);
  Frame frame(&parent);
  const std::string& name = macro.kind == StmtKind::Macro ? macro.text : std::string("caller");
  if (args.positional.size() > macro.params.size()) {
    eval_fail("macro '", name, "' takes not more than ", macro.params.size(), " argument(s)");
  }
  std::vector<bool> bound(macro.params.size(), false);
  for (std::size_t i = 0; i < args.positional.size(); ++i) {
    frame.set(macro.params[i].name, args.positional[i]);
    bound[i] = true;
  }
  for (auto& [key, value] : args.keyword) {
    std::size_t i = 0;
    while (i < macro.params.size() && macro.params[i].name != key) ++i;
    if (i == macro.params.size()) {
      if (key != "caller") eval_fail("macro '", name, "' takes no keyword argument '", key, "'");
      frame.set("caller", value);
      continue;
    }
    if (bound[i]) eval_fail("macro '", name, "' got multiple values for argument '", key, "'");
    frame.set(key, value);
    bound[i] = true;
  }
  for (std::size_t i = 0; i < macro.params.size(); ++i) {
    if (bound[i]) continue;
    const Param& p = macro.params[i];
    frame.set(p.name, p.default_value ? eval(*p.default_value, frame)
                                      : Value::undefined("parameter '" + p.name + "' was not provided"));
  }
  std::string out;
  exec_list(macro.body, frame, out);
  return Value::string(std::move(out));
}

void Renderer::exec_call_block(const Stmt& s, Frame& frame, std::string& out) {
  const Stmt* block = &s;
  const Frame* site = &frame;
  Value caller = Value::callable("caller", [this, block, site](CallArgs& a) { return call_macro(*block, *site, a); });
  const Expr& call_expr = *s.expr;
  Value callee = eval(*call_expr.args[0], frame);
  CallArgs args = eval_args(call_expr, frame);
  args.keyword.emplace_back("caller", caller);
  out += call(callee, args).str();
}

}  // namespace kto::jinja
