// The tree a pickle becomes (see pickle.h): Value and Dict, and the text helpers both halves of the
// unpickler use (data/pickle.cpp is the stack machine that builds the tree).
#include "data/pickle.h"
#include "data/pickle_internal.h"
#include "engine/error.h"

namespace msmix {

namespace pickle_internal {

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 60; ++i) {
    unsigned char c = s[i];
    out += c < 0x20 || c == 0x7F ? fmt::format("\\x{:02x}", c) : std::string(1, char(c));
  }
  return out + (s.size() > 60 ? "...'" : "'");
}

size_t utf8_sequence(const uint8_t* p, size_t left, uint32_t* cp) {
  uint8_t b = p[0];
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || n > left) return 0;
  uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (p[i] & 0x3F);
  }
  static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < kMin[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return n;
}

}  // namespace pickle_internal

using pickle_internal::quoted;
using pickle_internal::utf8_sequence;

std::string encode_latin1(const std::string& utf8) {
  std::string out;
  out.reserve(utf8.size());
  const uint8_t* p = reinterpret_cast<const uint8_t*>(utf8.data());
  for (size_t i = 0; i < utf8.size();) {
    uint32_t c = 0;
    size_t n = utf8_sequence(p + i, utf8.size() - i, &c);
    MSMIX_CHECK(n > 0, "pickle: invalid UTF-8 at byte {} of a latin-1 string", i);
    MSMIX_CHECK(c < 256, "pickle: latin-1 string holds code point 0x{:X} (above 255)", c);
    out += char(c);
    i += n;
  }
  return out;
}

// ---- Value

const char* kind_name(Kind kind) {
  static const char* names[] = {"None", "bool", "int", "float", "str", "bytes", "list", "tuple", "set", "dict",
                                "ndarray", "global", "reduced object"};
  return names[int(kind)];
}

Value Value::boolean(bool b) {
  Value v;
  v.v_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.v_ = i;
  return v;
}
Value Value::floating(double f) {
  Value v;
  v.v_ = f;
  return v;
}
Value Value::str(std::string utf8) {
  Value v;
  v.v_ = Str{std::make_shared<const std::string>(std::move(utf8))};
  return v;
}
Value Value::bytes(std::string raw) {
  auto own = std::make_shared<const std::string>(std::move(raw));
  Value v;
  v.v_ = Bytes{own, std::string_view(*own)};
  return v;
}
Value Value::bytes_view(std::shared_ptr<const void> owner, const uint8_t* data, size_t size) {
  Value v;
  v.v_ = Bytes{std::move(owner), std::string_view(reinterpret_cast<const char*>(data), size)};
  return v;
}
Value Value::list(std::vector<Value> items) {
  Value v;
  v.v_ = List{std::make_shared<std::vector<Value>>(std::move(items))};
  return v;
}
Value Value::tuple(std::vector<Value> items) {
  Value v;
  v.v_ = Tuple{std::make_shared<std::vector<Value>>(std::move(items))};
  return v;
}
Value Value::set(std::vector<Value> items) {
  Value v;
  v.v_ = Set{std::make_shared<std::vector<Value>>(std::move(items))};
  return v;
}
Value Value::dict() {
  Value v;
  v.v_ = DictRef{std::make_shared<Dict>()};
  return v;
}
Value Value::global(Global g) {
  Value v;
  v.v_ = GlobalRef{std::make_shared<const Global>(std::move(g))};
  return v;
}

Value Value::array(NdArray array) {
  auto cell = std::make_shared<ArrayCell>();
  cell->array = std::move(array);
  cell->filled = true;
  Value v;
  v.v_ = Array{cell};
  return v;
}

Value Value::object(Global callable, Value args) {
  auto obj = std::make_shared<Object>();
  obj->callable = std::move(callable);
  obj->args = std::move(args);
  Value v;
  v.v_ = ObjectRef{obj};
  return v;
}

std::string Value::describe() const {
  switch (kind()) {
    case Kind::none: return "None";
    case Kind::boolean: return std::get<bool>(v_) ? "bool True" : "bool False";
    case Kind::integer: return fmt::format("int {}", std::get<int64_t>(v_));
    case Kind::floating: return fmt::format("float {}", std::get<double>(v_));
    case Kind::str: return "str " + quoted(*std::get<Str>(v_).s);
    case Kind::bytes: return fmt::format("bytes of length {}", std::get<Bytes>(v_).view.size());
    case Kind::list: case Kind::tuple: case Kind::set:
      return fmt::format("{} of {} items", kind_name(kind()), items().size());
    case Kind::dict: return fmt::format("dict with {} keys", std::get<DictRef>(v_).dict->size());
    case Kind::ndarray: {
      const ArrayCell& cell = *std::get<Array>(v_).cell;
      return cell.filled ? "ndarray " + cell.array.describe() : "unfilled ndarray shell";
    }
    case Kind::global: return "global " + std::get<GlobalRef>(v_).global->full();
    case Kind::object: return "reduced object " + std::get<ObjectRef>(v_).object->callable.full() + "(...)";
  }
  return "?";
}

void Value::type_error(const std::string& what, const char* expected) const {
  throw Error(fmt::format("pickle: {} is {}, expected {}", what, describe(), expected));
}

bool Value::as_bool(const std::string& what) const {
  if (kind() == Kind::boolean) return std::get<bool>(v_);
  if (kind() == Kind::integer) return std::get<int64_t>(v_) != 0;
  type_error(what, "a bool");
}
int64_t Value::as_int(const std::string& what) const {
  if (kind() == Kind::integer) return std::get<int64_t>(v_);
  if (kind() == Kind::boolean) return std::get<bool>(v_);
  type_error(what, "an int");
}
double Value::as_float(const std::string& what) const {
  if (kind() == Kind::floating) return std::get<double>(v_);
  if (kind() == Kind::integer || kind() == Kind::boolean) return double(as_int());
  type_error(what, "a float");
}
const std::string& Value::as_str(const std::string& what) const {
  if (kind() != Kind::str) type_error(what, "a str");
  return *std::get<Str>(v_).s;
}
std::string_view Value::as_bytes(const std::string& what) const {
  if (kind() != Kind::bytes) type_error(what, "bytes");
  return std::get<Bytes>(v_).view;
}
const std::vector<Value>& Value::items(const std::string& what) const {
  return const_cast<Value*>(this)->mutable_items(what);
}
std::vector<Value>& Value::mutable_items(const std::string& what) {
  switch (kind()) {
    case Kind::list: return *std::get<List>(v_).items;
    case Kind::tuple: return *std::get<Tuple>(v_).items;
    case Kind::set: return *std::get<Set>(v_).items;
    default: type_error(what, "a list or tuple");
  }
}
const Dict& Value::as_dict(const std::string& what) const { return const_cast<Value*>(this)->mutable_dict(what); }
Dict& Value::mutable_dict(const std::string& what) {
  if (kind() != Kind::dict) type_error(what, "a dict");
  return *std::get<DictRef>(v_).dict;
}
const NdArray& Value::as_array(const std::string& what) const {
  if (kind() != Kind::ndarray || !std::get<Array>(v_).cell->filled) type_error(what, "an ndarray");
  return std::get<Array>(v_).cell->array;
}
NdArray& Value::mutable_array(const std::string& what) {
  if (kind() != Kind::ndarray) type_error(what, "an ndarray");
  return std::get<Array>(v_).cell->array;
}
const Global& Value::as_global(const std::string& what) const {
  if (kind() != Kind::global) type_error(what, "a global");
  return *std::get<GlobalRef>(v_).global;
}
const Value::Object& Value::as_object(const std::string& what) const {
  return const_cast<Value*>(this)->mutable_object(what);
}
Value::Object& Value::mutable_object(const std::string& what) {
  if (kind() != Kind::object) type_error(what, "a reduced object");
  return *std::get<ObjectRef>(v_).object;
}

const void* Value::identity() const {
  switch (kind()) {
    case Kind::list: return std::get<List>(v_).items.get();
    case Kind::tuple: return std::get<Tuple>(v_).items.get();
    case Kind::set: return std::get<Set>(v_).items.get();
    case Kind::dict: return std::get<DictRef>(v_).dict.get();
    case Kind::object: return std::get<ObjectRef>(v_).object.get();
    default: return nullptr;
  }
}

bool Value::has(const std::string& key) const { return kind() == Kind::dict && as_dict().find(key) != nullptr; }

std::vector<std::string> Value::keys(const std::string& what) const {
  std::vector<std::string> out;
  for (const auto& [key, value] : as_dict(what).entries())
    if (key.is(Kind::str)) out.push_back(key.as_str());
  return out;
}

namespace {
std::string key_list(const Dict& dict) {
  std::string out;
  for (const auto& [key, value] : dict.entries()) {
    if (out.size() > 200) return out + ", ...";
    out += (out.empty() ? "" : ", ") + (key.is(Kind::str) ? quoted(key.as_str()) : std::to_string(key.as_int()));
  }
  return out;
}
}  // namespace

const Value& Value::at(const std::string& key, const std::string& where) const {
  const Dict& dict = as_dict(where);
  const Value* v = dict.find(key);
  MSMIX_CHECK(v != nullptr, "pickle: key {} missing in {} (keys: {})", quoted(key), where, key_list(dict));
  return *v;
}

const Value& Value::at(int64_t key, const std::string& where) const {
  const Dict& dict = as_dict(where);
  const Value* v = dict.find(key);
  MSMIX_CHECK(v != nullptr, "pickle: key {} missing in {} (keys: {})", key, where, key_list(dict));
  return *v;
}

// ---- Dict

const Value* Dict::find(const std::string& key) const {
  auto it = str_index_.find(key);
  return it == str_index_.end() ? nullptr : &entries_[it->second].second;
}

const Value* Dict::find(int64_t key) const {
  auto it = int_index_.find(key);
  return it == int_index_.end() ? nullptr : &entries_[it->second].second;
}

void Dict::set(const Value& key, Value value) {
  size_t slot = entries_.size();
  if (key.is(Kind::str)) {
    slot = str_index_.emplace(key.as_str(), slot).first->second;
  } else if (key.is(Kind::integer) || key.is(Kind::boolean)) {  // Python: True == 1 as a key
    slot = int_index_.emplace(key.as_int(), slot).first->second;
  } else {
    throw Error(fmt::format("pickle: dict key {} is not supported (only str and int keys)", key.describe()));
  }
  if (slot == entries_.size())
    entries_.emplace_back(key, std::move(value));
  else
    entries_[slot].second = std::move(value);  // Python keeps the first key and its position
}

void Dict::clear() {
  entries_.clear();
  str_index_.clear();
  int_index_.clear();
}

}  // namespace msmix
