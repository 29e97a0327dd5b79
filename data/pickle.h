// A restricted unpickler for MMSA's feature files: Python pickle protocols 2 to 5, read into a tree of
// Values, without Python and without ever running anything the pickle asks for.
//
// A pickle is a small stack-machine program; GLOBAL + REDUCE normally import and call any Python callable
// (os.system, builtins.eval, ...). Here GLOBAL only names an allowlisted numpy / codecs / collections
// callable, and REDUCE never calls: it builds the known structure that callable would have produced
// (an ndarray shell that BUILD fills, a dtype, a numpy scalar, bytes, an empty OrderedDict). Anything else
// is refused with an msmix::Error naming the global and the byte offset. Hostile input (truncation,
// lengths past the end, stack underflow, huge memo indices, deep nesting, recursive structures, bad
// UTF-8) is an msmix::Error naming the problem and the offset, and what is allocated stays proportional
// to the file's size.
//
//   Value root = load_pickle_file("mosi.pkl");
//   const Value& train = root.at("train");
//   Tensor audio = train.at("audio", "split 'train'").to_tensor("train/audio");  // float32 [N, T, D]
//   std::vector<std::string> ids = train.at("id", "split 'train'").to_strings("train/id");
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "data/numpy_array.h"
#include "engine/tensor.h"

namespace msmix {

class Dict;

// A Python callable named by GLOBAL / STACK_GLOBAL (only allowlisted ones ever become a Value).
struct Global {
  std::string module, name;
  std::string full() const { return module + "." + name; }  // "numpy.dtype"
};

enum class Kind { none, boolean, integer, floating, str, bytes, list, tuple, set, dict, ndarray, global, object };
const char* kind_name(Kind kind);  // "none", "bool", "int", "float", "str", ..., "reduced object"

// A pickled value. Containers, strings and arrays are shared (reference semantics, as in Python): the
// memo and DUP hand out the same object, and APPEND/SETITEM/BUILD change it in place. bytes and
// bytearray are both bytes; frozenset is a set; dict keys are str or int (bool counts as int).
class Value {
 public:
  struct Object;  // a "reduced object": REDUCE of an allowed callable kept as (callable, args, state)

  Value() = default;  // None
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value str(std::string utf8);
  static Value bytes(std::string raw);
  // bytes that stay where they are (in a mapped file): `owner` keeps them alive as long as the Value
  static Value bytes_view(std::shared_ptr<const void> owner, const uint8_t* data, size_t size);
  static Value list(std::vector<Value> items = {});
  static Value tuple(std::vector<Value> items = {});
  static Value set(std::vector<Value> items = {});
  static Value dict();
  static Value array(NdArray array);
  static Value global(Global g);
  static Value object(Global callable, Value args);

  Kind kind() const { return Kind(v_.index()); }
  bool is_none() const { return kind() == Kind::none; }
  bool is(Kind k) const { return kind() == k; }
  // "dict with 3 keys", "ndarray float32 [2, 3]", "str 'abc'", "int 7", "global numpy.dtype".
  std::string describe() const;

  // Typed access: throws "pickle: <what> is <describe()>, expected <kind>" on a mismatch.
  bool as_bool(const std::string& what = "value") const;
  int64_t as_int(const std::string& what = "value") const;   // int or bool
  double as_float(const std::string& what = "value") const;  // float, int or bool
  const std::string& as_str(const std::string& what = "value") const;
  std::string_view as_bytes(const std::string& what = "value") const;
  const std::vector<Value>& items(const std::string& what = "value") const;  // list, tuple or set
  const Dict& as_dict(const std::string& what = "value") const;
  const NdArray& as_array(const std::string& what = "value") const;  // a filled ndarray
  const Global& as_global(const std::string& what = "value") const;
  const Object& as_object(const std::string& what = "value") const;

  // Dict access. `where` names the dict in the message: at("audio", "split 'train'") throws
  // "pickle: key 'audio' missing in split 'train' (keys: 'id', 'text', ...)".
  bool has(const std::string& key) const;  // false when this is not a dict
  const Value& at(const std::string& key, const std::string& where = "dict") const;
  const Value& at(int64_t key, const std::string& where = "dict") const;
  std::vector<std::string> keys(const std::string& what = "value") const;  // str keys, in insertion order

  // Conversions for datasets; `what` names the value in messages ("train/audio").
  // numeric ndarray (any shape) or a flat list/tuple of numbers -> float32 CPU tensor.
  Tensor to_tensor(const std::string& what = "value") const;
  // unicode or object ndarray (row-major) or a list/tuple of str.
  std::vector<std::string> to_strings(const std::string& what = "value") const;
  // integer/bool ndarray, list/tuple of ints, or float values that are whole numbers.
  std::vector<int64_t> to_int64s(const std::string& what = "value") const;

  // Mutable access for the unpickler (same checks as the const versions).
  std::vector<Value>& mutable_items(const std::string& what = "value");
  Dict& mutable_dict(const std::string& what = "value");
  NdArray& mutable_array(const std::string& what = "value");  // shells included
  Object& mutable_object(const std::string& what = "value");
  // Identity of a shared container (list, tuple, set, dict, object), else nullptr.
  const void* identity() const;

 private:
  struct Str { std::shared_ptr<const std::string> s; };
  struct Bytes {
    std::shared_ptr<const void> owner;  // what holds the bytes: a std::string of their own, or a mapped file
    std::string_view view;
  };
  struct List { std::shared_ptr<std::vector<Value>> items; };
  struct Tuple { std::shared_ptr<std::vector<Value>> items; };
  struct Set { std::shared_ptr<std::vector<Value>> items; };
  struct DictRef { std::shared_ptr<Dict> dict; };
  struct ArrayCell {
    NdArray array;
    bool filled = false;  // false for a _reconstruct shell that BUILD has not filled yet
  };
  struct Array { std::shared_ptr<ArrayCell> cell; };
  struct GlobalRef { std::shared_ptr<const Global> global; };
  struct ObjectRef { std::shared_ptr<Object> object; };
  // The order follows Kind.
  using Variant = std::variant<std::monostate, bool, int64_t, double, Str, Bytes, List, Tuple, Set, DictRef, Array,
                               GlobalRef, ObjectRef>;
  Variant v_;

  [[noreturn]] void type_error(const std::string& what, const char* expected) const;
  friend class Unpickler;
};

struct Value::Object {
  Global callable;
  Value args;   // the REDUCE arguments (a tuple)
  Value state;  // None until BUILD
};

// A Python dict with str or int keys, in insertion order; setting an existing key replaces its value.
class Dict {
 public:
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  const Value* find(const std::string& key) const;  // nullptr when absent
  const Value* find(int64_t key) const;
  void set(const Value& key, Value value);  // throws for keys other than str, int, bool
  void clear();

 private:
  std::vector<std::pair<Value, Value>> entries_;
  std::unordered_map<std::string, size_t> str_index_;
  std::unordered_map<int64_t, size_t> int_index_;
};

// Parse limits (also documented in the error messages).
constexpr int kMaxPickleDepth = 100;  // containers nested deeper than this are refused

// Reads a whole pickle. Errors are msmix::Error: "pickle: <problem> at byte offset N (opcode NAME)";
// load_pickle_file adds the path. `name` labels the input in messages. Bytes objects are copied out of memory
// the caller owns.
Value load_pickle(const std::string& bytes, const std::string& name = "<bytes>");
Value load_pickle(const uint8_t* data, size_t size, const std::string& name = "<bytes>");
// Maps the file (read only; a file that cannot be mapped is read) and keeps the mapping alive through the Values:
// bytes objects stay views into it, the arrays are copied once, from the page cache into their own memory
// (float32 straight into the tensor that to_tensor() then hands out), and the mapped pages each array came from
// are then dropped from the process, so a MOSEI-sized file needs about its size in memory, not three times.
Value load_pickle_file(const std::string& path);

// Python's str.encode('latin-1') of a UTF-8 string: how protocol 2 stores bytes (_codecs.encode) and how
// Python 2 strings come back under encoding='latin1'. Throws for code points above 255.
std::string encode_latin1(const std::string& utf8);

}  // namespace msmix
