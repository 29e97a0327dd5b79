#include "data/numpy_array.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "data/pickle.h"
#include "engine/error.h"

namespace msmix {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "numpy_array: assumes a little-endian host");

namespace {

// numel of a shape with every dim >= 0, refusing overflow (a hostile shape like (2^40, 2^40)).
int64_t checked_numel(const Shape& shape) {
  MSMIX_CHECK(shape.size() <= kMaxArrayRank, "pickle: ndarray has {} dims, more than {}", shape.size(), kMaxArrayRank);
  int64_t n = 1;
  for (int64_t d : shape) {
    MSMIX_CHECK(d >= 0, "pickle: ndarray shape {} has a negative dim", shape_str(shape));
    MSMIX_CHECK(!__builtin_mul_overflow(n, d, &n), "pickle: ndarray shape {} is too large", shape_str(shape));
  }
  return n;
}

// Calls f(row_major_index, fortran_index) for every element: Fortran order has the first dim fastest.
template <class F>
void for_each_fortran(const Shape& shape, int64_t numel, F&& f) {
  const int64_t rank = int64_t(shape.size());
  std::vector<int64_t> stride(rank), index(rank, 0);
  int64_t s = 1;
  for (int64_t d = 0; d < rank; ++d) stride[d] = s, s *= shape[d];
  int64_t src = 0;
  for (int64_t dst = 0; dst < numel; ++dst) {
    f(dst, src);
    for (int64_t d = rank - 1; d >= 0; --d) {  // row-major increment: last dim fastest
      src += stride[d];
      if (++index[d] < shape[d]) break;
      src -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
}

// Appends code point c as UTF-8.
void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6)), out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12)), out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18)), out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
  }
}

// One numpy unicode element: itemsize / 4 UTF-32LE code units, trailing NULs stripped (numpy does too).
std::string decode_utf32(const uint8_t* p, int64_t units, int64_t element) {
  while (units > 0 && std::memcmp(p + 4 * (units - 1), "\0\0\0\0", 4) == 0) --units;
  std::string out;
  out.reserve(size_t(units));
  for (int64_t u = 0; u < units; ++u) {
    uint32_t c;
    std::memcpy(&c, p + 4 * u, 4);
    MSMIX_CHECK(c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF),
                "pickle: unicode array element {} holds an invalid code point 0x{:X}", element, c);
    append_utf8(out, c);
  }
  return out;
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

bool DType::is_integer() const {
  switch (type) {
    case ScalarType::boolean: case ScalarType::int8: case ScalarType::int16: case ScalarType::int32:
    case ScalarType::int64: case ScalarType::uint8: case ScalarType::uint16: case ScalarType::uint32:
    case ScalarType::uint64:
      return true;
    default:
      return false;
  }
}

std::string DType::str() const {
  switch (type) {
    case ScalarType::boolean: return "bool";
    case ScalarType::int8: return "int8";
    case ScalarType::int16: return "int16";
    case ScalarType::int32: return "int32";
    case ScalarType::int64: return "int64";
    case ScalarType::uint8: return "uint8";
    case ScalarType::uint16: return "uint16";
    case ScalarType::uint32: return "uint32";
    case ScalarType::uint64: return "uint64";
    case ScalarType::float32: return "float32";
    case ScalarType::float64: return "float64";
    case ScalarType::unicode: return fmt::format("<U{}", itemsize / 4);
    case ScalarType::object: return "object";
  }
  return "?";
}

DType parse_dtype_code(const std::string& code) {
  size_t at = 0;
  DType dtype;
  if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '=' || code[0] == '|')) {
    set_byte_order(dtype, code.substr(0, 1));
    at = 1;
  }
  MSMIX_CHECK(at < code.size(), "pickle: empty numpy dtype code '{}'", code);
  char kind = code[at];
  std::string digits = code.substr(at + 1);
  bool numeric = !digits.empty() && digits.size() <= 9 &&
                 digits.find_first_not_of("0123456789") == std::string::npos;
  MSMIX_CHECK(numeric || (kind == 'O' && digits.empty()),
              "pickle: unsupported numpy dtype '{}' (supported: b1, i1-i8, u1-u8, f4, f8, U<n>, O)", code);
  int64_t n = digits.empty() ? 8 : std::stoll(digits);
  auto pick = [&](std::initializer_list<std::pair<int64_t, ScalarType>> sizes) {
    for (auto [size, type] : sizes)
      if (n == size) return dtype.type = type, dtype.itemsize = size, dtype;
    throw Error(fmt::format("pickle: unsupported numpy dtype '{}' (supported: b1, i1-i8, u1-u8, f4, f8, U<n>, O)",
                            code));
  };
  switch (kind) {
    case 'b': return pick({{1, ScalarType::boolean}});
    case 'i':
      return pick({{1, ScalarType::int8}, {2, ScalarType::int16}, {4, ScalarType::int32}, {8, ScalarType::int64}});
    case 'u':
      return pick({{1, ScalarType::uint8}, {2, ScalarType::uint16}, {4, ScalarType::uint32}, {8, ScalarType::uint64}});
    case 'f': return pick({{4, ScalarType::float32}, {8, ScalarType::float64}});
    case 'O': return pick({{4, ScalarType::object}, {8, ScalarType::object}});
    case 'U':
      dtype.type = ScalarType::unicode;
      dtype.itemsize = 4 * n;  // n characters of UTF-32
      return dtype;
    default:
      throw Error(fmt::format("pickle: unsupported numpy dtype '{}' (supported: b1, i1-i8, u1-u8, f4, f8, U<n>, O)",
                              code));
  }
}

void set_byte_order(DType& dtype, const std::string& order) {
  MSMIX_CHECK(order == "<" || order == ">" || order == "=" || order == "|",
              "pickle: unknown numpy byte order '{}' (expected '<', '>', '=' or '|')", order);
  dtype.big_endian = order == ">";
}

std::string NdArray::describe() const { return dtype.str() + " " + shape_str(shape); }

const uint8_t* NdArray::raw() const {
  return values.defined() ? reinterpret_cast<const uint8_t*>(values.data()) : bytes.data();
}

double NdArray::element(int64_t i) const {
  const uint8_t* p = raw() + i * dtype.itemsize;
  switch (dtype.type) {
    case ScalarType::boolean: return *p != 0;
    case ScalarType::int8: return load<int8_t>(p);
    case ScalarType::int16: return load<int16_t>(p);
    case ScalarType::int32: return load<int32_t>(p);
    case ScalarType::int64: return double(load<int64_t>(p));
    case ScalarType::uint8: return *p;
    case ScalarType::uint16: return load<uint16_t>(p);
    case ScalarType::uint32: return load<uint32_t>(p);
    case ScalarType::uint64: return double(load<uint64_t>(p));
    case ScalarType::float32: return load<float>(p);
    case ScalarType::float64: return load<double>(p);
    default: throw Error(fmt::format("pickle: ndarray {} holds strings, not numbers", describe()));
  }
}

int64_t NdArray::int_element(int64_t i) const {
  MSMIX_CHECK(dtype.is_integer(), "pickle: ndarray {} does not hold integers", describe());
  if (dtype.type == ScalarType::uint64) {
    uint64_t u = load<uint64_t>(raw() + i * 8);
    MSMIX_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()), "pickle: uint64 value {} exceeds int64", u);
    return int64_t(u);
  }
  if (dtype.type == ScalarType::int64) return load<int64_t>(raw() + i * 8);
  return int64_t(element(i));  // every other integer type is exact in a double
}

Tensor NdArray::to_tensor() const {
  MSMIX_CHECK(dtype.is_numeric(), "pickle: cannot convert ndarray {} to a float tensor", describe());
  if (values.defined()) return values;
  Tensor t = Tensor::empty(shape);
  float* out = t.data();
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) out[i] = float(element(i));
  return t;
}

std::vector<std::string> NdArray::to_strings() const {
  MSMIX_CHECK(!dtype.is_numeric(), "pickle: ndarray {} holds numbers, not strings", describe());
  return strings;
}

// Refuses an array that would take more than max_bytes (a zero-width unicode dtype makes any numel "fit").
static void check_footprint(size_t bytes, size_t max_bytes, const std::string& what) {
  MSMIX_CHECK(bytes <= max_bytes, "pickle: {} would take {} bytes, more than the pickle's size justifies", what, bytes);
}

NdArray array_from_bytes(const DType& dtype, const Shape& shape, bool fortran, const uint8_t* data, size_t size,
                         size_t max_bytes) {
  MSMIX_CHECK(dtype.type != ScalarType::object, "pickle: an object ndarray needs a list of elements, not raw bytes");
  const int64_t numel = checked_numel(shape);
  int64_t expected;
  MSMIX_CHECK(!__builtin_mul_overflow(numel, dtype.itemsize, &expected) && uint64_t(expected) == size,
              "pickle: ndarray {} {} needs {} x {} bytes, the pickle holds {}", dtype.str(), shape_str(shape), numel,
              dtype.itemsize, size);
  // UTF-8 takes at most the 4 bytes per code point that UTF-32 does
  size_t strings = dtype.type == ScalarType::unicode ? size_t(numel) * sizeof(std::string) : 0;
  check_footprint(size + strings, max_bytes, "ndarray " + dtype.str() + " " + shape_str(shape));
  NdArray array;
  array.dtype = dtype;
  array.dtype.big_endian = false;
  array.shape = shape;
  const int64_t item = dtype.itemsize;
  // Bytes in row-major, little-endian order, copied once: float32 straight into the tensor to_tensor() hands
  // out (no second copy of a dataset's features), other dtypes into `bytes`. Unicode swaps per 4-byte code
  // unit, numbers per element.
  std::vector<uint8_t> ordered;
  uint8_t* out;
  if (dtype.type == ScalarType::float32) {
    array.values = Tensor::empty(shape);
    out = reinterpret_cast<uint8_t*>(array.values.data());
  } else {
    ordered.resize(size);
    out = ordered.data();
  }
  if (size > 0) {
    if (fortran && shape.size() > 1)
      for_each_fortran(shape, numel, [&](int64_t dst, int64_t src) {
        std::memcpy(out + dst * item, data + src * item, size_t(item));
      });
    else
      std::memcpy(out, data, size);
  }
  const int64_t unit = dtype.type == ScalarType::unicode ? 4 : item;
  if (dtype.big_endian && unit > 1)
    for (size_t i = 0; i + size_t(unit) <= size; i += size_t(unit))
      for (int64_t a = 0, b = unit - 1; a < b; ++a, --b) std::swap(out[i + a], out[i + b]);
  if (dtype.type == ScalarType::unicode) {
    array.strings.reserve(size_t(numel));
    for (int64_t i = 0; i < numel; ++i) array.strings.push_back(decode_utf32(out + i * item, item / 4, i));
  } else if (dtype.type != ScalarType::float32) {
    array.bytes = std::move(ordered);
  }
  return array;
}

NdArray array_from_strings(const Shape& shape, std::vector<std::string> elements) {
  const int64_t numel = checked_numel(shape);
  MSMIX_CHECK(uint64_t(numel) == elements.size(), "pickle: object ndarray {} needs {} elements, the pickle holds {}",
              shape_str(shape), numel, elements.size());
  NdArray array;
  array.dtype.type = ScalarType::object;
  array.shape = shape;
  array.strings = std::move(elements);
  return array;
}

size_t array_footprint(const NdArray& array) {
  size_t total = sizeof(NdArray) + array.bytes.size();
  if (array.values.defined()) total += size_t(array.values.numel()) * sizeof(float);
  for (const std::string& s : array.strings) total += sizeof(std::string) + s.size();
  return total;
}

// ---- numpy's pickled forms

DType dtype_from_pickle(const Value& dtype_object) {
  const Value::Object& obj = dtype_object.as_object("numpy dtype");
  MSMIX_CHECK(obj.callable.name == "dtype", "pickle: expected a numpy dtype, got a {} object", obj.callable.full());
  const std::vector<Value>& args = obj.args.items("numpy.dtype arguments");
  MSMIX_CHECK(!args.empty(), "pickle: numpy.dtype called without a type code");
  DType dtype = parse_dtype_code(args[0].as_str("numpy.dtype code"));
  if (obj.state.is_none()) return dtype;
  // (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata])
  const std::vector<Value>& state = obj.state.items("numpy dtype state");
  MSMIX_CHECK(state.size() == 8 || state.size() == 9, "pickle: numpy dtype state has {} entries, expected 8 or 9",
              state.size());
  int64_t version = state[0].as_int("numpy dtype state version");
  MSMIX_CHECK(version == 3 || version == 4, "pickle: numpy dtype state version {} unsupported (expected 3 or 4)",
              version);
  set_byte_order(dtype, state[1].as_str("numpy dtype byte order"));
  MSMIX_CHECK(state[2].is_none(), "pickle: numpy sub-array dtypes are not supported");
  MSMIX_CHECK(state[3].is_none() && state[4].is_none(),
              "pickle: structured numpy dtypes (with fields) are not supported");
  int64_t elsize = state[5].as_int("numpy dtype elsize");
  MSMIX_CHECK(elsize < 0 || elsize == dtype.itemsize, "pickle: numpy dtype {} declares {} bytes per element",
              dtype.str(), elsize);
  return dtype;
}

NdArray array_from_state(const Value& state_value, size_t max_bytes) {
  std::vector<Value> state = state_value.items("ndarray state");
  if (state.size() == 5) {  // drop the version
    int64_t version = state[0].as_int("ndarray state version");
    MSMIX_CHECK(version == 1, "pickle: ndarray state version {} unsupported (expected 1)", version);
    state.erase(state.begin());
  }
  MSMIX_CHECK(state.size() == 4,
              "pickle: ndarray state has {} entries, expected (version, shape, dtype, is_fortran, data)",
              state_value.items().size());
  Shape shape;
  for (const Value& d : state[0].items("ndarray shape")) shape.push_back(d.as_int("ndarray shape dim"));
  DType dtype = dtype_from_pickle(state[1]);
  bool fortran = state[2].as_bool("ndarray is_fortran flag");
  const Value& data = state[3];
  if (dtype.type == ScalarType::object) {
    const std::vector<Value>& items = data.items("object ndarray data");
    size_t bytes = 0;  // the copies below: one list may hold the same long string many times
    for (size_t i = 0; i < items.size(); ++i) {
      MSMIX_CHECK(items[i].is(Kind::str), "pickle: object ndarray element {} is {}; only str elements are supported", i,
                  items[i].describe());
      bytes += sizeof(std::string) + items[i].as_str().size();
    }
    check_footprint(bytes, max_bytes, "object ndarray " + shape_str(shape));
    std::vector<std::string> elements;
    elements.reserve(items.size());
    for (const Value& item : items) elements.push_back(item.as_str());
    return array_from_strings(shape, std::move(elements));  // row-major whatever is_fortran says
  }
  if (data.is(Kind::str)) {  // protocol 2 from Python 2, loaded as latin-1 text: numpy encodes it back
    std::string raw = encode_latin1(data.as_str());
    return array_from_bytes(dtype, shape, fortran, reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), max_bytes);
  }
  const std::string_view raw = data.as_bytes("ndarray data");
  return array_from_bytes(dtype, shape, fortran, reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), max_bytes);
}

NdArray array_from_frombuffer(const Value& args_value, size_t max_bytes) {
  const std::vector<Value>& args = args_value.items("_frombuffer arguments");
  MSMIX_CHECK(args.size() == 4, "pickle: _frombuffer takes (buffer, dtype, shape, order), got {} arguments",
              args.size());
  const std::string_view raw = args[0].as_bytes("_frombuffer buffer");
  DType dtype = dtype_from_pickle(args[1]);
  Shape shape;
  for (const Value& d : args[2].items("_frombuffer shape")) shape.push_back(d.as_int("_frombuffer shape dim"));
  const std::string& order = args[3].as_str("_frombuffer order");
  MSMIX_CHECK(order == "C" || order == "F", "pickle: _frombuffer order '{}' (expected 'C' or 'F')", order);
  return array_from_bytes(dtype, shape, order == "F", reinterpret_cast<const uint8_t*>(raw.data()), raw.size(),
                          max_bytes);
}

Value scalar_from_pickle(const Value& args_value) {
  const std::vector<Value>& args = args_value.items("numpy scalar arguments");
  MSMIX_CHECK(args.size() == 2, "pickle: numpy scalar takes (dtype, bytes), got {} arguments", args.size());
  DType dtype = dtype_from_pickle(args[0]);
  if (dtype.type == ScalarType::object) return args[1];  // numpy returns the pickled object itself
  const std::string raw =
      args[1].is(Kind::str) ? encode_latin1(args[1].as_str()) : std::string(args[1].as_bytes("numpy scalar data"));
  NdArray one = array_from_bytes(dtype, {}, false, reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  if (dtype.type == ScalarType::unicode) return Value::str(one.strings[0]);
  if (dtype.type == ScalarType::boolean) return Value::boolean(one.raw()[0] != 0);
  if (dtype.is_integer()) return Value::integer(one.int_element(0));
  return Value::floating(one.element(0));
}

// ---- Value conversions for datasets (declared in pickle.h)

Tensor Value::to_tensor(const std::string& what) const {
  if (is(Kind::ndarray)) {
    const NdArray& array = as_array(what);
    MSMIX_CHECK(array.dtype.is_numeric(), "pickle: {} is ndarray {}, expected numbers", what, array.describe());
    return array.to_tensor();
  }
  if (!is(Kind::list) && !is(Kind::tuple)) type_error(what, "an ndarray or a list of numbers");
  const std::vector<Value>& list = items();
  std::vector<float> values(list.size());
  for (size_t i = 0; i < list.size(); ++i) values[i] = float(list[i].as_float(fmt::format("{}[{}]", what, i)));
  return Tensor::from_vector(values, {int64_t(values.size())});
}

std::vector<std::string> Value::to_strings(const std::string& what) const {
  if (is(Kind::ndarray)) {
    const NdArray& array = as_array(what);
    MSMIX_CHECK(!array.dtype.is_numeric(), "pickle: {} is ndarray {}, expected strings", what, array.describe());
    return array.strings;
  }
  if (!is(Kind::list) && !is(Kind::tuple)) type_error(what, "an ndarray or a list of str");
  std::vector<std::string> out;
  out.reserve(items().size());
  for (size_t i = 0; i < items().size(); ++i) out.push_back(items()[i].as_str(fmt::format("{}[{}]", what, i)));
  return out;
}

std::vector<int64_t> Value::to_int64s(const std::string& what) const {
  auto whole = [&](double d, size_t i) {
    MSMIX_CHECK(std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15,
                "pickle: {}[{}] is {}, expected a whole number", what, i, d);
    return int64_t(d);
  };
  std::vector<int64_t> out;
  if (is(Kind::ndarray)) {
    const NdArray& array = as_array(what);
    MSMIX_CHECK(array.dtype.is_numeric(), "pickle: {} is ndarray {}, expected integers", what, array.describe());
    out.resize(size_t(array.numel()));
    for (int64_t i = 0; i < array.numel(); ++i)
      out[i] = array.dtype.is_integer() ? array.int_element(i) : whole(array.element(i), size_t(i));
    return out;
  }
  if (!is(Kind::list) && !is(Kind::tuple)) type_error(what, "an ndarray or a list of ints");
  for (size_t i = 0; i < items().size(); ++i) {
    const Value& v = items()[i];
    out.push_back(v.is(Kind::floating) ? whole(v.as_float(), i) : v.as_int(fmt::format("{}[{}]", what, i)));
  }
  return out;
}

}  // namespace msmix
