// The restricted unpickler's stack machine (see pickle.h): opcodes in, a Value tree out (Value and Dict
// are in data/pickle_value.cpp). Nothing a pickle names is ever called: REDUCE and BUILD rebuild the
// allowlisted structures themselves.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "data/pickle.h"
#include "data/pickle_internal.h"
#include "engine/error.h"

namespace msmix {

using pickle_internal::quoted;
using pickle_internal::utf8_sequence;

namespace {

// Opcode names (Python's pickletools spelling) for messages; nullptr for bytes that are no opcode.
const char* opcode_name(uint8_t op) {
  static const std::pair<uint8_t, const char*> kNames[] = {
      {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"}, {'I', "INT"},
      {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"},
      {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
      {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
      {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
      {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
      {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"},
      {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"},
      {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"},
      {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"},
      {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
      {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"},
      {0x98, "READONLY_BUFFER"},
  };
  for (const auto& [code, name] : kNames)
    if (code == op) return name;
  return nullptr;
}

// The only callables a pickle may name. REDUCE on them builds what they would return; nothing is called.
enum class Callable { reconstruct, ndarray, dtype, scalar, frombuffer, codecs_encode, bytes, set, ordered_dict };

bool find_allowed(const std::string& module, const std::string& name, Callable* out) {
  static const struct { const char* module; const char* name; Callable callable; } kAllowed[] = {
      {"numpy.core.multiarray", "_reconstruct", Callable::reconstruct},
      {"numpy._core.multiarray", "_reconstruct", Callable::reconstruct},
      {"numpy", "ndarray", Callable::ndarray},
      {"numpy", "dtype", Callable::dtype},
      {"numpy.core.multiarray", "scalar", Callable::scalar},
      {"numpy._core.multiarray", "scalar", Callable::scalar},
      {"numpy.core.numeric", "_frombuffer", Callable::frombuffer},  // protocol 5 arrays
      {"numpy._core.numeric", "_frombuffer", Callable::frombuffer},
      {"_codecs", "encode", Callable::codecs_encode},  // protocol 2 bytes
      {"__builtin__", "bytes", Callable::bytes},       // protocol 2 empty bytes: bytes()
      {"builtins", "bytes", Callable::bytes},
      {"__builtin__", "bytearray", Callable::bytes},   // bytearray(b) and bytearray() read as bytes
      {"builtins", "bytearray", Callable::bytes},
      {"__builtin__", "set", Callable::set},  // protocol 2 sets: set([items])
      {"builtins", "set", Callable::set},
      {"__builtin__", "frozenset", Callable::set},
      {"builtins", "frozenset", Callable::set},
      {"collections", "OrderedDict", Callable::ordered_dict},
  };
  for (const auto& a : kAllowed)
    if (module == a.module && name == a.name) return *out = a.callable, true;
  return false;
}

constexpr const char* kAllowedText =
    "only numpy arrays, dtypes and scalars, _codecs.encode, bytes, bytearray, set, frozenset and "
    "collections.OrderedDict may be loaded";

}  // namespace

class Unpickler {
 public:
  // owner: keeps data alive, so bytes objects may stay views into it (null: they are copied out). release_pages:
  // data is a read-only file mapping whose pages may be dropped once an array has copied them.
  Unpickler(const uint8_t* data, size_t size, std::shared_ptr<const void> owner, bool release_pages)
      : data_(data), owner_(std::move(owner)), release_pages_(release_pages), size_(size),
        budget_(16 * size + (size_t(1) << 20)) {}
  ~Unpickler();
  Value run();

 private:
  const char* op_label() const {
    const char* name = opcode_name(op_);
    return name ? name : "unknown";
  }

  // ---- input
  const uint8_t* take(uint64_t n) {
    MSMIX_CHECK(n <= size_ - pos_, "pickle: truncated: {} needs {} more bytes, {} left", op_label(), n,
                size_ - pos_);
    const uint8_t* p = data_ + pos_;
    pos_ += size_t(n);
    return p;
  }
  uint64_t read_uint(int bytes) {  // little-endian
    const uint8_t* p = take(bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string read_line();
  std::string read_utf8(uint64_t n);
  uint64_t read_decimal_line();

  // ---- stack: marks_ hold the stack size at each MARK; nothing below the last mark may be popped
  void push(Value v) { stack_.push_back(std::move(v)); }
  Value pop();
  Value& top();
  std::vector<Value> pop_mark();
  Value make(Value container) { created_.push_back(container); return container; }
  void charge(size_t bytes, const char* what);
  // dict[key] = value, charging the key's length: hashing a long key many times costs time and memory
  void set_item(Dict& dict, const Value& key, Value value) {
    if (key.is(Kind::str)) charge(key.as_str().size(), "a dict key");
    dict.set(key, std::move(value));
  }

  void run_opcode();
  void push_global(const std::string& module, const std::string& name);
  void reduce(bool newobj);
  void build();
  void release_pages(const Value& state);
  void check_tree(const Value& root);

  const uint8_t* data_;
  std::shared_ptr<const void> owner_;  // keeps data_ alive for bytes views; null: bytes are copied
  bool release_pages_;
  size_t size_, pos_ = 0, op_pos_ = 0;
  uint8_t op_ = 0;
  bool stopped_ = false;
  size_t budget_;  // bytes that decoded strings and arrays may still take: a constant times the file size
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;  // a hash map: a huge index costs nothing
  std::vector<Value> created_;  // every container, so teardown is flat and cycles never leak
  std::unordered_set<const void*> kept_;  // containers reachable from the result
};

Unpickler::~Unpickler() {
  // Empty every container the result does not use. Children stay alive through created_ meanwhile, so
  // nothing is destroyed recursively, and reference cycles (a list holding itself) are broken.
  for (Value& v : created_) {
    if (kept_.count(v.identity())) continue;
    if (v.is(Kind::dict)) v.mutable_dict().clear();
    else if (v.is(Kind::object)) v.mutable_object().args = Value(), v.mutable_object().state = Value();
    else v.mutable_items().clear();
  }
}

std::string Unpickler::read_line() {
  const uint8_t* start = data_ + pos_;
  const void* nl = std::memchr(start, '\n', size_ - pos_);
  MSMIX_CHECK(nl != nullptr, "pickle: truncated: {} needs a line ending in a newline", op_label());
  size_t n = static_cast<const uint8_t*>(nl) - start;
  pos_ += n + 1;
  std::string line(reinterpret_cast<const char*>(start), n);
  uint32_t c;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_sequence(start + i, n - i, &c);
    MSMIX_CHECK(k > 0, "pickle: invalid UTF-8 at byte {} of the {} argument", i, op_label());
    i += k;
  }
  return line;
}

std::string Unpickler::read_utf8(uint64_t n) {
  const uint8_t* p = take(n);
  uint32_t c;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_sequence(p + i, size_t(n) - i, &c);
    MSMIX_CHECK(k > 0, "pickle: invalid UTF-8 at byte {} of a {}-byte string", i, n);
    i += k;
  }
  charge(size_t(n), "a string");
  return std::string(reinterpret_cast<const char*>(p), size_t(n));
}

uint64_t Unpickler::read_decimal_line() {
  std::string line = read_line();
  MSMIX_CHECK(!line.empty() && line.size() <= 18 && line.find_first_not_of("0123456789") == std::string::npos,
              "pickle: {} expects a decimal number, got {}", op_label(), quoted(line));
  return std::stoull(line);
}

void Unpickler::charge(size_t bytes, const char* what) {
  MSMIX_CHECK(bytes <= budget_, "pickle: {} would take more memory than a {}-byte pickle justifies", what, size_);
  budget_ -= bytes;
}

Value Unpickler::pop() {
  size_t floor = marks_.empty() ? 0 : marks_.back();
  MSMIX_CHECK(stack_.size() > floor, "pickle: stack underflow: {} needs a value", op_label());
  Value v = std::move(stack_.back());
  stack_.pop_back();
  return v;
}

Value& Unpickler::top() {
  size_t floor = marks_.empty() ? 0 : marks_.back();
  MSMIX_CHECK(stack_.size() > floor, "pickle: stack underflow: {} needs a value", op_label());
  return stack_.back();
}

std::vector<Value> Unpickler::pop_mark() {
  MSMIX_CHECK(!marks_.empty(), "pickle: {} without a MARK", op_label());
  size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<Value> items(std::make_move_iterator(stack_.begin() + mark), std::make_move_iterator(stack_.end()));
  stack_.resize(mark);
  return items;
}

void Unpickler::push_global(const std::string& module, const std::string& name) {
  Callable callable;
  MSMIX_CHECK(find_allowed(module, name, &callable), "pickle: refused global {}: {}", quoted(module + "." + name),
              kAllowedText);
  push(Value::global(Global{module, name}));
}

Value Unpickler::run() {
  try {
    while (!stopped_) {
      op_pos_ = pos_;
      MSMIX_CHECK(pos_ < size_, "pickle: truncated: the data ends before the STOP opcode");
      op_ = data_[pos_++];
      run_opcode();
    }
    Value result = pop();
    check_tree(result);
    return result;
  } catch (const Error& e) {
    const char* name = pos_ > op_pos_ ? opcode_name(op_) : nullptr;
    throw Error(name ? fmt::format("{} at byte offset {} (opcode {})", e.what(), op_pos_, name)
                     : fmt::format("{} at byte offset {}", e.what(), op_pos_));
  }
}

void Unpickler::run_opcode() {
  switch (op_) {
    case 0x80: {  // PROTO
      uint64_t v = read_uint(1);
      MSMIX_CHECK(v <= 5, "pickle: unsupported pickle protocol {} (this reader knows 2 to 5)", v);
      return;
    }
    case 0x95: {  // FRAME: a length prefix for buffering; the opcodes inside read as usual
      uint64_t n = read_uint(8);
      MSMIX_CHECK(n <= size_ - pos_, "pickle: truncated: FRAME declares {} bytes, {} left", n, size_ - pos_);
      return;
    }
    case '.': stopped_ = true; return;  // STOP
    case '(': marks_.push_back(stack_.size()); return;  // MARK
    case '0':  // POP: as CPython, an empty frame above a MARK pops the mark
      if (stack_.size() > (marks_.empty() ? 0 : marks_.back())) stack_.pop_back();
      else pop_mark();
      return;
    case '1': pop_mark(); return;  // POP_MARK
    case '2': push(top()); return;  // DUP
    // ---- memo
    case 'p': memo_[read_decimal_line()] = top(); return;  // PUT
    case 'q': memo_[read_uint(1)] = top(); return;         // BINPUT
    case 'r': memo_[read_uint(4)] = top(); return;         // LONG_BINPUT
    case 0x94: { Value v = top(); memo_[memo_.size()] = std::move(v); return; }  // MEMOIZE
    case 'g': case 'h': case 'j': {  // GET, BINGET, LONG_BINGET
      uint64_t key = op_ == 'g' ? read_decimal_line() : read_uint(op_ == 'h' ? 1 : 4);
      auto it = memo_.find(key);
      MSMIX_CHECK(it != memo_.end(), "pickle: memo key {} was never stored", key);
      push(it->second);
      return;
    }
    // ---- constants and numbers
    case 'N': push(Value()); return;
    case 0x88: push(Value::boolean(true)); return;
    case 0x89: push(Value::boolean(false)); return;
    case 'K': push(Value::integer(int64_t(read_uint(1)))); return;
    case 'M': push(Value::integer(int64_t(read_uint(2)))); return;
    case 'J': push(Value::integer(int64_t(int32_t(uint32_t(read_uint(4)))))); return;
    case 'I': {  // INT: decimal text; "01" / "00" are True / False
      std::string line = read_line();
      if (line == "01" || line == "00") return push(Value::boolean(line == "01"));
      bool negative = !line.empty() && line[0] == '-';
      size_t first = !line.empty() && (line[0] == '-' || line[0] == '+') ? 1 : 0;
      int64_t v = 0;
      bool ok = line.size() > first;
      for (size_t i = first; ok && i < line.size(); ++i)
        ok = line[i] >= '0' && line[i] <= '9' && !__builtin_mul_overflow(v, 10, &v) &&
             !__builtin_add_overflow(v, negative ? -(line[i] - '0') : line[i] - '0', &v);
      MSMIX_CHECK(ok, "pickle: INT expects a decimal int64, got {}", quoted(line));
      return push(Value::integer(v));
    }
    case 0x8a: case 0x8b: {  // LONG1, LONG4: little-endian two's complement
      int64_t n = op_ == 0x8a ? int64_t(read_uint(1)) : int64_t(int32_t(uint32_t(read_uint(4))));
      MSMIX_CHECK(n >= 0, "pickle: LONG4 declares a negative length {}", n);
      MSMIX_CHECK(n <= 8, "pickle: integer of {} bytes does not fit in int64", n);
      const uint8_t* p = take(uint64_t(n));
      uint64_t v = 0;
      for (int64_t i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
      if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
      return push(Value::integer(int64_t(v)));
    }
    case 'G': {  // BINFLOAT: big-endian IEEE double
      const uint8_t* p = take(8);
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
      double d;
      std::memcpy(&d, &bits, 8);
      return push(Value::floating(d));
    }
    // ---- strings and bytes
    case 0x8c: return push(Value::str(read_utf8(read_uint(1))));  // SHORT_BINUNICODE
    case 'X': return push(Value::str(read_utf8(read_uint(4))));   // BINUNICODE
    case 0x8d: return push(Value::str(read_utf8(read_uint(8))));  // BINUNICODE8
    case 'C': case 'B': case 0x8e: case 0x96: {  // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
      uint64_t n = read_uint(op_ == 'C' ? 1 : op_ == 'B' ? 4 : 8);
      const uint8_t* p = take(n);
      charge(size_t(n), "a bytes object");
      if (owner_) return push(Value::bytes_view(owner_, p, size_t(n)));  // an array's data: copied once, by BUILD
      return push(Value::bytes(std::string(reinterpret_cast<const char*>(p), size_t(n))));
    }
    case 'T': case 'U': {  // BINSTRING, SHORT_BINSTRING: Python 2 str, read as latin-1 (numpy's advice)
      int64_t n = op_ == 'U' ? int64_t(read_uint(1)) : int64_t(int32_t(uint32_t(read_uint(4))));
      MSMIX_CHECK(n >= 0, "pickle: BINSTRING declares a negative length {}", n);
      const uint8_t* p = take(uint64_t(n));
      std::string utf8;
      for (int64_t i = 0; i < n; ++i) {
        if (p[i] < 0x80) utf8 += char(p[i]);
        else utf8 += char(0xC0 | (p[i] >> 6)), utf8 += char(0x80 | (p[i] & 0x3F));
      }
      charge(utf8.size(), "a string");
      return push(Value::str(std::move(utf8)));
    }
    case 0x97:
      throw Error("pickle: out-of-band buffers (NEXT_BUFFER) are not supported: pickle the arrays in-band");
    case 0x98: top().as_bytes("READONLY_BUFFER target"); return;  // READONLY_BUFFER: nothing to do
    // ---- containers
    case ')': return push(Value::tuple());
    case 't': return push(make(Value::tuple(pop_mark())));
    case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
      std::vector<Value> items(op_ - 0x84);
      for (size_t i = items.size(); i-- > 0;) items[i] = pop();
      return push(make(Value::tuple(std::move(items))));
    }
    case ']': return push(make(Value::list()));
    case 'l': return push(make(Value::list(pop_mark())));
    case 'a': {  // APPEND
      Value v = pop();
      if (!top().is(Kind::list)) top().type_error("APPEND target", "a list");
      top().mutable_items().push_back(std::move(v));
      return;
    }
    case 'e': {  // APPENDS
      std::vector<Value> items = pop_mark();
      if (!top().is(Kind::list)) top().type_error("APPENDS target", "a list");
      auto& list = top().mutable_items();
      list.insert(list.end(), std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
      return;
    }
    case '}': return push(make(Value::dict()));
    case 'd': case 's': case 'u': {  // DICT, SETITEM, SETITEMS
      std::vector<Value> items;
      if (op_ == 's') {
        items.resize(2);
        items[1] = pop(), items[0] = pop();
      } else {
        items = pop_mark();
      }
      MSMIX_CHECK(items.size() % 2 == 0, "pickle: {} got an odd number of items ({})", op_label(), items.size());
      if (op_ == 'd') push(make(Value::dict()));
      Dict& dict = top().mutable_dict(std::string(op_label()) + " target");
      for (size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], std::move(items[i + 1]));
      return;
    }
    case 0x8f: return push(make(Value::set()));
    case 0x91: return push(make(Value::set(pop_mark())));  // FROZENSET
    case 0x90: {  // ADDITEMS
      std::vector<Value> items = pop_mark();
      if (!top().is(Kind::set)) top().type_error("ADDITEMS target", "a set");
      auto& set = top().mutable_items();
      set.insert(set.end(), std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
      return;
    }
    // ---- globals and objects: the allowlist
    case 'c': {  // GLOBAL "module\nname\n"
      std::string module = read_line();
      std::string name = read_line();
      return push_global(module, name);
    }
    case 0x93: {  // STACK_GLOBAL
      Value name = pop(), module = pop();
      return push_global(module.as_str("STACK_GLOBAL module"), name.as_str("STACK_GLOBAL name"));
    }
    case 'R': return reduce(false);
    case 0x81: return reduce(true);
    case 'b': return build();
    case 'i': {  // INST: protocol 0 object creation, a call; never allowed
      std::string module = read_line();
      std::string name = read_line();
      throw Error(fmt::format("pickle: refused global {}: INST creates objects; {}", quoted(module + "." + name),
                              kAllowedText));
    }
    default: {
      const char* name = opcode_name(op_);
      if (name)
        throw Error(fmt::format("pickle: opcode {} is not supported by this restricted reader", name));
      throw Error(fmt::format("pickle: unknown opcode 0x{:02x}", op_));
    }
  }
}

void Unpickler::reduce(bool newobj) {
  Value args = pop();
  Value callable_value = pop();
  const char* op = newobj ? "NEWOBJ" : "REDUCE";
  const Global& global = callable_value.as_global(std::string(op) + " callable");
  Callable callable;
  MSMIX_CHECK(find_allowed(global.module, global.name, &callable), "pickle: refused global {}", quoted(global.full()));
  const std::vector<Value>& a = args.items(std::string(op) + " arguments");
  MSMIX_CHECK(args.is(Kind::tuple), "pickle: {} arguments are {}, expected a tuple", op, args.describe());
  MSMIX_CHECK(!newobj || callable == Callable::ordered_dict, "pickle: NEWOBJ of {} is not supported", global.full());
  switch (callable) {
    case Callable::reconstruct: {  // _reconstruct(ndarray, (0,), b'b') -> an empty shell for BUILD
      MSMIX_CHECK(!a.empty() && a[0].is(Kind::global) && a[0].as_global().full() == "numpy.ndarray",
                  "pickle: _reconstruct only rebuilds numpy.ndarray, got {}", a.empty() ? "nothing" : a[0].describe());
      Value shell = Value::array(NdArray());
      std::get<Value::Array>(shell.v_).cell->filled = false;
      return push(shell);
    }
    case Callable::dtype: {  // checked now, so that a bad code is reported where it is
      MSMIX_CHECK(!a.empty(), "pickle: numpy.dtype called without a type code");
      parse_dtype_code(a[0].as_str("numpy.dtype code"));
      return push(make(Value::object(global, args)));
    }
    case Callable::scalar: return push(scalar_from_pickle(args));
    case Callable::frombuffer: {
      NdArray array = array_from_frombuffer(args, budget_);
      charge(array_footprint(array), "an ndarray");
      return push(Value::array(std::move(array)));
    }
    case Callable::codecs_encode: {  // _codecs.encode(text, 'latin1'): how protocol 2 writes bytes
      MSMIX_CHECK(a.size() == 2 && a[1].is(Kind::str), "pickle: _codecs.encode expects (str, encoding)");
      const std::string& encoding = a[1].as_str();
      MSMIX_CHECK(encoding == "latin1" || encoding == "latin-1", "pickle: _codecs.encode to {} is not supported",
                  quoted(encoding));
      std::string raw = encode_latin1(a[0].as_str("_codecs.encode text"));
      charge(raw.size(), "a bytes object");
      return push(Value::bytes(std::move(raw)));
    }
    case Callable::bytes:  // bytes() / bytearray() or a copy of one bytes argument
      MSMIX_CHECK(a.empty() || (a.size() == 1 && a[0].is(Kind::bytes)),
                  "pickle: {} is only supported with no argument or one bytes argument", global.full());
      return push(a.empty() ? Value::bytes("") : a[0]);
    case Callable::set: {  // set() or set([items]): copies the items, as Python does
      MSMIX_CHECK(a.empty() || (a.size() == 1 && a[0].is(Kind::list)),
                  "pickle: {} is only supported with no argument or one list", global.full());
      if (a.empty()) return push(make(Value::set()));
      charge(a[0].items().size() * sizeof(Value), "a set");
      return push(make(Value::set(a[0].items())));
    }
    case Callable::ordered_dict: {  // OrderedDict() or OrderedDict([(k, v), ...]) -> a dict
      MSMIX_CHECK(a.size() <= 1 && (newobj || a.empty() || a[0].is(Kind::list)),
                  "pickle: OrderedDict arguments must be empty or a list of pairs");
      Value dict = make(Value::dict());
      if (!newobj && a.size() == 1) charge(a[0].items().size() * 2 * sizeof(Value), "an OrderedDict");
      if (!newobj && a.size() == 1)
        for (const Value& pair : a[0].items()) {
          const std::vector<Value>& kv = pair.items("OrderedDict item");
          MSMIX_CHECK(kv.size() == 2, "pickle: OrderedDict item has {} entries, expected 2", kv.size());
          set_item(dict.mutable_dict(), kv[0], kv[1]);
        }
      return push(dict);
    }
    case Callable::ndarray:
      throw Error("pickle: numpy.ndarray may only be passed to _reconstruct, not called");
  }
}

void Unpickler::build() {
  Value state = pop();
  Value& target = top();
  if (target.is(Kind::ndarray)) {
    auto& cell = *std::get<Value::Array>(target.v_).cell;
    MSMIX_CHECK(!cell.filled, "pickle: BUILD on an ndarray that is already filled");
    NdArray array = array_from_state(state, budget_);
    charge(array_footprint(array), "an ndarray");
    cell.array = std::move(array);
    cell.filled = true;
    release_pages(state);
    return;
  }
  if (target.is(Kind::object)) {
    Value::Object& obj = target.mutable_object();
    MSMIX_CHECK(obj.state.is_none(), "pickle: BUILD twice on {}", target.describe());
    obj.state = state;
    if (obj.callable.name == "dtype") dtype_from_pickle(target);  // report a bad state here
    return;
  }
  if (target.is(Kind::dict) && (state.is_none() || (state.is(Kind::dict) && state.as_dict().size() == 0))) return;
  throw Error(fmt::format("pickle: BUILD (setting object state) on {} is not supported", target.describe()));
}

// The array holds its own copy now: the mapped file pages its data came from are dropped from this process
// (MADV_DONTNEED on a read-only private file mapping: a later read faults them in again, unchanged), so the
// file's pages and the tensors made from them are not resident together.
void Unpickler::release_pages(const Value& state) {
  if (!release_pages_ || !state.is(Kind::tuple)) return;
  const long page = sysconf(_SC_PAGESIZE);
  for (const Value& item : state.items()) {
    if (!item.is(Kind::bytes)) continue;
    const std::string_view bytes = item.as_bytes();
    const auto begin = reinterpret_cast<uintptr_t>(bytes.data()), end = begin + bytes.size();
    const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    const auto base = reinterpret_cast<uintptr_t>(data_);
    if (begin >= base && end <= base + size_ && first < last)
      madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }
}

// Walks the result without recursion: refuses a container that contains itself and nesting deeper than
// kMaxPickleDepth (so that destroying the tree cannot overflow the stack), and records what is reached.
void Unpickler::check_tree(const Value& root) {
  auto children = [](const Value& v) {
    std::vector<const Value*> out;
    if (v.is(Kind::list) || v.is(Kind::tuple) || v.is(Kind::set)) {
      for (const Value& c : v.items()) out.push_back(&c);
    } else if (v.is(Kind::dict)) {
      for (const auto& [key, value] : v.as_dict().entries()) out.push_back(&value);
    } else if (v.is(Kind::object)) {
      out.push_back(&v.as_object().args);
      out.push_back(&v.as_object().state);
    }
    return out;
  };
  struct Frame {
    const Value* value;
    std::vector<const Value*> children;
    size_t next = 0;
    int64_t height = 1;
  };
  if (!root.identity()) return;
  std::unordered_map<const void*, int64_t> height;  // finished containers -> levels below and including them
  std::unordered_set<const void*> open;             // on the current path
  std::vector<Frame> path;
  path.push_back({&root, children(root)});
  open.insert(root.identity());
  while (!path.empty()) {
    Frame& f = path.back();
    if (f.next < f.children.size()) {
      const Value* child = f.children[f.next++];
      const void* id = child->identity();
      if (!id) continue;
      MSMIX_CHECK(!open.count(id), "pickle: a {} contains itself (recursive structures are not supported)",
                  kind_name(child->kind()));
      auto it = height.find(id);
      if (it != height.end()) {
        MSMIX_CHECK(int64_t(path.size()) + it->second <= kMaxPickleDepth,
                    "pickle: containers nested deeper than {} levels", kMaxPickleDepth);
        f.height = std::max(f.height, it->second + 1);
        continue;
      }
      MSMIX_CHECK(int64_t(path.size()) < kMaxPickleDepth, "pickle: containers nested deeper than {} levels",
                  kMaxPickleDepth);
      open.insert(id);
      path.push_back({child, children(*child)});  // f is invalid from here
    } else {
      const void* id = f.value->identity();
      int64_t h = f.height;
      open.erase(id);
      height[id] = h;
      path.pop_back();
      if (!path.empty()) path.back().height = std::max(path.back().height, h + 1);
    }
  }
  for (const auto& [id, h] : height) kept_.insert(id);
}

// ---- entry points

namespace {
Value load(const uint8_t* data, size_t size, const std::string& name, std::shared_ptr<const void> owner,
           bool release_pages) {
  try {
    Unpickler unpickler(data, size, std::move(owner), release_pages);
    return unpickler.run();
  } catch (const Error& e) {
    std::string message = e.what();
    if (name == "<bytes>" || message.compare(0, 8, "pickle: ") != 0) throw;
    throw Error("pickle: " + name + ": " + message.substr(8));
  }
}
}  // namespace

Value load_pickle(const uint8_t* data, size_t size, const std::string& name) {
  return load(data, size, name, nullptr, false);
}

Value load_pickle(const std::string& bytes, const std::string& name) {
  return load_pickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
}

namespace {
// A file's bytes, mapped read-only when it can be (a regular, non-empty file), else read into memory.
struct FileBytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
  void* mapped = nullptr;
  std::string read;  // when not mapped
  ~FileBytes() {
    if (mapped) munmap(mapped, size);
  }
};

struct ClosedOnExit {
  int fd;
  ~ClosedOnExit() { close(fd); }
};

std::shared_ptr<const FileBytes> file_bytes(const std::string& path) {
  auto f = std::make_shared<FileBytes>();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MSMIX_CHECK(fd >= 0, "pickle: cannot open '{}': {}", path, std::strerror(errno));
  const ClosedOnExit closer{fd};  // a mapping outlives its descriptor
  struct stat st {};
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    void* p = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      madvise(p, size_t(st.st_size), MADV_SEQUENTIAL);  // read once, front to back: read ahead
      f->mapped = p, f->size = size_t(st.st_size), f->data = static_cast<const uint8_t*>(p);
    }
  }
  if (!f->mapped) {  // a pipe, /dev/stdin, an empty file, or a file system without mmap
    char chunk[1 << 16];
    for (ssize_t n; (n = read(fd, chunk, sizeof chunk)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      MSMIX_CHECK(n >= 0, "pickle: error reading '{}': {}", path, std::strerror(errno));
      f->read.append(chunk, size_t(n));
    }
    f->data = reinterpret_cast<const uint8_t*>(f->read.data()), f->size = f->read.size();
  }
  return f;
}
}  // namespace

Value load_pickle_file(const std::string& path) {
  std::shared_ptr<const FileBytes> file = file_bytes(path);
  return load(file->data, file->size, path, file, file->mapped != nullptr);
}

}  // namespace msmix
