// jinja2's built-in filters on sequences and mappings (jinja2/filters.py): length, first, last,
// join, items, list, map, select / reject / selectattr / rejectattr, unique, sort, reverse, sum,
// min, max, dictsort. Attribute paths follow make_attrgetter ("a.b", digits index lists); string
// comparisons in sort / unique / min / max ignore case unless case_sensitive, as in jinja2.
#include <algorithm>

#include "tokenizer/chat_template/builtins.h"
#include "tokenizer/chat_template/text.h"

namespace kto::jinja {

Value attribute_path(Renderer& r, const Value& obj, const std::string& path, const Value& fallback) {
  Value cur = obj;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = r.get_item(cur, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (cur.is_undefined() && !fallback.is_undefined()) cur = fallback;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

namespace {

bool given(const Value& v) { return !v.is_undefined(); }

Value f_length(Renderer&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case ValueKind::Undefined: return Value::integer(0);
    case ValueKind::String: return Value::integer(static_cast<std::int64_t>(utf8_length(v.as_string())));
    case ValueKind::List:
    case ValueKind::Tuple: return Value::integer(static_cast<std::int64_t>(v.items().size()));
    case ValueKind::Dict: return Value::integer(static_cast<std::int64_t>(v.as_dict().entries.size()));
    case ValueKind::Namespace: return Value::integer(static_cast<std::int64_t>(v.as_namespace().attrs.entries.size()));
    default: eval_fail("object of type '", v.type_name(), "' has no len()");
  }
}

Value f_first(Renderer&, const Value& v, CallArgs&) {
  ValueList items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(Renderer&, const Value& v, CallArgs&) {
  ValueList items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_list(Renderer&, const Value& v, CallArgs&) { return Value::list(iterate(v)); }

Value f_items(Renderer&, const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) eval_fail("Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, e] : v.as_dict().entries) out.push_back(Value::tuple({k, e}));
  return Value::list(std::move(out));
}

Value f_join(Renderer& r, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"d", "attribute"}, "filter 'join'");
  std::string sep = given(args[0]) ? args[0].str() : "";
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += (given(args[1]) ? attribute_path(r, item, args[1].str()) : item).str();
  }
  return Value::string(std::move(out));
}

Value f_map(Renderer& r, const Value& v, CallArgs& a) {
  ValueList out;
  const Value* attribute = nullptr;
  Value fallback;
  for (const auto& [k, val] : a.keyword) {
    if (k == "attribute") attribute = &val;
    if (k == "default") fallback = val;
  }
  if (attribute != nullptr) {
    for (const Value& item : iterate(v)) {
      out.push_back(attribute_path(r, item, attribute->str(), fallback));
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty()) eval_fail("map requires a filter argument");
  std::string name = a.positional[0].str();
  FilterFn fn = find_filter(name);
  if (fn == nullptr) eval_fail("no filter named '", name, "'");
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const Value& item : iterate(v)) {
    CallArgs call = rest;
    out.push_back(fn(r, item, call));
  }
  return Value::list(std::move(out));
}

// select / reject / selectattr / rejectattr: `Subject::Attribute` takes the attribute name first;
// without a test name the item's truthiness decides (jinja2's prepare_select_or_reject).
enum class Subject { Item, Attribute };
enum class Keep { Matching, NonMatching };
Value select_impl(Renderer& r, const Value& v, CallArgs& a, Subject subject_kind, Keep keep) {
  bool by_attribute = subject_kind == Subject::Attribute;
  bool keep_matching = keep == Keep::Matching;
  std::size_t next = 0;
  std::string attr;
  if (by_attribute) {
    if (a.positional.empty()) eval_fail("missing parameter for attribute name");
    attr = a.positional[next++].str();
  }
  TestFn test = nullptr;
  if (next < a.positional.size()) {
    std::string name = a.positional[next++].str();
    test = find_test(name);
    if (test == nullptr) eval_fail("no test named '", name, "'");
  }
  CallArgs test_args;
  test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(next), a.positional.end());
  test_args.keyword = a.keyword;
  ValueList out;
  for (const Value& item : iterate(v)) {
    Value subject = by_attribute ? attribute_path(r, item, attr) : item;
    CallArgs call = test_args;
    bool ok = test != nullptr ? test(r, subject, call) : subject.truthy();
    if (ok == keep_matching) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_select(Renderer& r, const Value& v, CallArgs& a) { return select_impl(r, v, a, Subject::Item, Keep::Matching); }
Value f_reject(Renderer& r, const Value& v, CallArgs& a) { return select_impl(r, v, a, Subject::Item, Keep::NonMatching); }
Value f_selectattr(Renderer& r, const Value& v, CallArgs& a) {
  return select_impl(r, v, a, Subject::Attribute, Keep::Matching);
}
Value f_rejectattr(Renderer& r, const Value& v, CallArgs& a) {
  return select_impl(r, v, a, Subject::Attribute, Keep::NonMatching);
}

// The key jinja2 compares by: the attribute (if any), lower-cased when it is a string and case
// does not matter.
enum class Case { Sensitive, Insensitive };
Case case_of(const Value& case_sensitive) { return case_sensitive.truthy() ? Case::Sensitive : Case::Insensitive; }

Value sort_key(Renderer& r, const Value& item, const Value& attribute, Case letter_case) {
  Value key = given(attribute) && !attribute.is_none() ? attribute_path(r, item, attribute.str()) : item;
  if (letter_case == Case::Insensitive && key.is_string()) return Value::string(py_lower_str(key.as_string()));
  return key;
}

Value f_unique(Renderer& r, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"case_sensitive", "attribute"}, "filter 'unique'");
  ValueList out, seen;
  for (const Value& item : iterate(v)) {
    Value key = sort_key(r, item, args[1], case_of(args[0]));
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, key); })) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_sort(Renderer& r, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"reverse", "case_sensitive", "attribute"}, "filter 'sort'");
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : iterate(v)) keyed.emplace_back(sort_key(r, item, args[2], case_of(args[1])), item);
  bool reverse = args[0].truthy();
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? py_compare(y.first, x.first, "<") < 0 : py_compare(x.first, y.first, "<") < 0;
  });
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Value f_reverse(Renderer&, const Value& v, CallArgs&) {
  if (v.is_string()) {
    std::u32string cps = utf8_decode(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value::string(utf8_encode(cps));
  }
  ValueList items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_sum(Renderer& r, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"attribute", "start"}, "filter 'sum'");
  Value total = given(args[1]) ? args[1] : Value::integer(0);
  for (const Value& item : iterate(v)) {
    total = binary_op("+", total, given(args[0]) ? attribute_path(r, item, args[0].str()) : item);
  }
  return total;
}

enum class Extreme { Min, Max };
Value min_max(Renderer& r, const Value& v, CallArgs& a, Extreme which) {
  bool want_max = which == Extreme::Max;
  auto args = bind_args(a, {"case_sensitive", "attribute"}, want_max ? "filter 'max'" : "filter 'min'");
  ValueList items = iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  std::size_t best = 0;
  Value best_key = sort_key(r, items[0], args[1], case_of(args[0]));
  for (std::size_t i = 1; i < items.size(); ++i) {
    Value key = sort_key(r, items[i], args[1], case_of(args[0]));
    int c = py_compare(key, best_key, want_max ? ">" : "<");
    if (want_max ? c > 0 : c < 0) {
      best = i;
      best_key = key;
    }
  }
  return given(args[1]) ? attribute_path(r, items[best], args[1].str()) : items[best];
}

Value f_min(Renderer& r, const Value& v, CallArgs& a) { return min_max(r, v, a, Extreme::Min); }
Value f_max(Renderer& r, const Value& v, CallArgs& a) { return min_max(r, v, a, Extreme::Max); }

Value f_dictsort(Renderer& r, const Value& v, CallArgs& a) {
  auto args = bind_args(a, {"case_sensitive", "by", "reverse"}, "filter 'dictsort'");
  std::size_t pos = given(args[1]) && args[1].str() == "value" ? 1 : 0;
  CallArgs no_args;
  Value pairs = f_items(r, v, no_args);
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& pair : pairs.items()) {
    keyed.emplace_back(sort_key(r, pair.items()[pos], Value(), case_of(args[0])), pair);
  }
  bool reverse = args[2].truthy();
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? py_compare(y.first, x.first, "<") < 0 : py_compare(x.first, y.first, "<") < 0;
  });
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

struct FilterEntry {
  const char* name;
  FilterFn fn;
};

const FilterEntry kSequenceFilters[] = {
    {"length", f_length},         {"count", f_length},           {"first", f_first},   {"last", f_last},
    {"list", f_list},             {"items", f_items},            {"join", f_join},     {"map", f_map},
    {"select", f_select},         {"reject", f_reject},          {"selectattr", f_selectattr},
    {"rejectattr", f_rejectattr}, {"unique", f_unique},          {"sort", f_sort},     {"reverse", f_reverse},
    {"sum", f_sum},               {"min", f_min},                {"max", f_max},       {"dictsort", f_dictsort},
};

}  // namespace

FilterFn find_sequence_filter(const std::string& name) {
  for (const auto& f : kSequenceFilters) {
    if (name == f.name) return f.fn;
  }
  return nullptr;
}

}  // namespace kto::jinja
