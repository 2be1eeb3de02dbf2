// Internal: jinja2's built-in filters and tests, the Python str/dict methods templates call, and
// the globals transformers installs (raise_exception, strftime_now, namespace, dict, range).
// Each filter/test receives the evaluated subject and call arguments.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "tokenizer/chat_template/evaluator.h"

namespace kto::jinja {

using FilterFn = Value (*)(Renderer& r, const Value& subject, CallArgs& args);
using TestFn = bool (*)(Renderer& r, const Value& subject, CallArgs& args);

FilterFn find_filter(const std::string& name);  // null when unknown
TestFn find_test(const std::string& name);      // null when unknown
FilterFn find_sequence_filter(const std::string& name);  // filters_seq.cpp's part of find_filter
// jinja2's make_attrgetter: "a.b.0" looks up item a, then b, then index 0 (digits become ints);
// a given `fallback` replaces an Undefined after each step.
Value attribute_path(Renderer& r, const Value& obj, const std::string& path, const Value& fallback = Value());

// obj.name for str, dict, list values: a bound method, or null Value kind Undefined when none.
Value method_of(const Value& obj, const std::string& name);
void install_globals(Frame& frame, Renderer& renderer);

// Binds call arguments to parameter names as Python would; unset ones are Undefined. `what` names
// the callee in messages ("filter 'indent'").
std::vector<Value> bind_args(const CallArgs& args, std::initializer_list<const char*> names, const std::string& what);
// Python int() of a value used as an index or count; `what` names it in the error.
std::int64_t to_index(const Value& v, const char* what);

}  // namespace kto::jinja
