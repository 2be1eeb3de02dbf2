// Globals a chat template can call: jinja2's range / dict / namespace / joiner (range capped at
// 100000 items like the sandbox's MAX_RANGE) and the two transformers adds in
// `_cached_compile_jinja_template`: raise_exception(msg) and strftime_now(fmt).
#include <memory>

#include "tokenizer/chat_template/builtins.h"

namespace kto::jinja {

namespace {

constexpr std::int64_t kMaxRange = 100000;

Value range_global(CallArgs& args) {
  if (!args.keyword.empty()) eval_fail("range() takes no keyword arguments");
  const ValueList& p = args.positional;
  if (p.empty() || p.size() > 3) eval_fail("range expected 1 to 3 arguments, got ", p.size());
  std::int64_t start = 0, stop = 0, step = 1;
  if (p.size() == 1) {
    stop = to_index(p[0], "range() argument");
  } else {
    start = to_index(p[0], "range() argument");
    stop = to_index(p[1], "range() argument");
    if (p.size() == 3) step = to_index(p[2], "range() argument");
  }
  if (step == 0) eval_fail("range() arg 3 must not be zero");
  ValueList out;
  for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<std::int64_t>(out.size()) >= kMaxRange) {
      eval_fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (", kMaxRange, ").");
    }
    out.push_back(Value::integer(i));
  }
  return Value::list(std::move(out));
}

// dict(mapping_or_pairs?, **kwargs), also the attribute set of namespace(...).
Dict dict_from_args(const CallArgs& args, const char* what) {
  if (args.positional.size() > 1) eval_fail(what, " expected at most 1 positional argument");
  Dict d;
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      d = src.as_dict();
    } else {
      for (const Value& pair : iterate(src)) {
        if (!pair.is_sequence() || pair.items().size() != 2) eval_fail(what, ": sequence elements must be pairs");
        d.set(pair.items()[0], pair.items()[1]);
      }
    }
  }
  for (const auto& [k, v] : args.keyword) d.set(Value::string(k), v);
  return d;
}

}  // namespace

void install_globals(Frame& frame, Renderer& renderer) {
  frame.set("range", Value::callable("range", range_global));
  frame.set("dict", Value::callable("dict", [](CallArgs& a) { return Value::dict(dict_from_args(a, "dict()")); }));
  frame.set("namespace", Value::callable("namespace", [](CallArgs& a) {
              Dict attrs = dict_from_args(a, "namespace()");
              for (const auto& [k, v] : attrs.entries) {
                if (k.is_string() && !k.as_string().empty() && k.as_string()[0] == '_') {
                  eval_fail("chat templates cannot store underscore-prefixed attributes on a namespace ('",
                            k.as_string(), "')");
                }
              }
              return Value::namespace_of(std::move(attrs));
            }));
  frame.set("joiner", Value::callable("joiner", [](CallArgs& a) {
              Value sep_arg = bind_args(a, {"sep"}, "joiner()")[0];
              std::string sep = sep_arg.is_undefined() ? ", " : sep_arg.str();
              auto used = std::make_shared<bool>(false);
              return Value::callable("joiner", [sep, used](CallArgs&) {
                bool was = *used;
                *used = true;
                return Value::string(was ? sep : "");
              });
            }));
  frame.set("raise_exception", Value::callable("raise_exception", [](CallArgs& a) -> Value {
              Value msg = bind_args(a, {"message"}, "raise_exception()")[0];
              throw EvalError(ErrorKind::InvalidArgument, msg.str());
            }));
  Renderer* r = &renderer;
  frame.set("strftime_now", Value::callable("strftime_now", [r](CallArgs& a) {
              Value fmt = bind_args(a, {"format"}, "strftime_now()")[0];
              if (!fmt.is_string()) eval_fail("strftime_now() format must be str, not ", fmt.type_name());
              return Value::string(r->strftime_now(fmt.as_string()));
            }));
}

std::string Renderer::strftime_now(const std::string& format) const {
  std::tm now{};
  if (fixed_now_ != nullptr) {
    now = *fixed_now_;
  } else {
    std::time_t t = std::time(nullptr);
    localtime_r(&t, &now);
  }
  if (format.empty()) return "";
  std::string buf(256 + format.size() * 8, '\0');
  std::size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &now);
  buf.resize(n);
  return buf;
}

}  // namespace kto::jinja
