// The pickle writer (see pickle_writer.h): opcodes as Python's pickletools names them.
#include "data/pickle_writer.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"

namespace msmix {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pickle_writer: writes the host's floats as little-endian");

namespace {

// Protocol 2-4 opcodes used here.
enum Op : uint8_t {
  PROTO = 0x80, STOP = '.', MARK = '(',
  NONE = 'N', NEWTRUE = 0x88, NEWFALSE = 0x89,
  BININT1 = 'K', BININT2 = 'M', BININT = 'J', LONG1 = 0x8a,
  SHORT_BINUNICODE = 0x8c, BINUNICODE = 'X', BINUNICODE8 = 0x8d,
  SHORT_BINBYTES = 'C', BINBYTES = 'B', BINBYTES8 = 0x8e,
  EMPTY_TUPLE = ')', TUPLE = 't', TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87,
  EMPTY_LIST = ']', APPENDS = 'e', EMPTY_DICT = '}', SETITEMS = 'u',
  STACK_GLOBAL = 0x93, REDUCE = 'R', BUILD = 'b',
};

constexpr size_t kBufferSize = 64 << 10;  // pieces smaller than this are gathered before reaching the sink

// Decodes strict UTF-8 (no overlongs, surrogates or code points above 0x10FFFF, as our reader demands)
// into code points; `what` names the string in the error.
std::vector<uint32_t> utf8_code_points(const std::string& s, const std::string& what) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  for (size_t i = 0; i < s.size();) {
    uint8_t b = p[i];
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && n <= s.size() - i;
    uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; ok && k < n; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      c = (c << 6) | (p[i + k] & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && c >= kMin[n] && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF);
    MSMIX_CHECK(ok, "pickle writer: {} is not valid UTF-8 (byte {})", what, i);
    out.push_back(c);
    i += n;
  }
  return out;
}

}  // namespace

PickleWriter::PickleWriter(Sink sink) : sink_(std::move(sink)) {
  buffer_.reserve(kBufferSize);
  put_byte(PROTO);
  put_byte(4);
}

// ---- raw output

void PickleWriter::put(const void* data, size_t size) {
  if (buffer_.size() + size > kBufferSize) flush();
  if (size >= kBufferSize) {  // a large payload (array data): straight to the sink
    sink_(static_cast<const char*>(data), size);
    written_ += size;
    return;
  }
  buffer_.append(static_cast<const char*>(data), size);
}

void PickleWriter::put_uint(uint64_t value, int bytes) {
  uint8_t le[8];
  for (int i = 0; i < bytes; ++i) le[i] = uint8_t(value >> (8 * i));
  put(le, size_t(bytes));
}

void PickleWriter::flush() {
  if (buffer_.empty()) return;
  sink_(buffer_.data(), buffer_.size());
  written_ += buffer_.size();
  buffer_.clear();
}

// ---- usage checks

void PickleWriter::value_added(const char* what, bool key_type) {
  MSMIX_CHECK(!finished_, "pickle writer: {} after finish()", what);
  if (open_.empty()) {
    MSMIX_CHECK(!root_written_, "pickle writer: {} outside any container: a pickle holds one root value", what);
    root_written_ = true;
    return;
  }
  Frame& f = open_.back();
  MSMIX_CHECK(!f.dict || f.items % 2 == 1 || key_type, "pickle writer: dict keys must be str or int, got {}", what);
  f.items++;
}

// ---- containers

void PickleWriter::begin_dict() {  // stack: ... dict MARK
  value_added("a dict");
  open_.push_back({/*dict=*/true});
  put_byte(EMPTY_DICT);
  put_byte(MARK);
}

void PickleWriter::end_dict() {  // SETITEMS pops the pairs above the MARK into the dict below it
  MSMIX_CHECK(!open_.empty() && open_.back().dict, "pickle writer: end_dict() without begin_dict()");
  MSMIX_CHECK(open_.back().items % 2 == 0, "pickle writer: the dict ends after a key without a value");
  open_.pop_back();
  put_byte(SETITEMS);
}

// ---- scalars

void PickleWriter::str(const std::string& utf8) {
  utf8_code_points(utf8, "a str of " + std::to_string(utf8.size()) + " bytes");
  value_added("a str", /*key_type=*/true);
  const uint64_t n = utf8.size();
  if (n < 256) {
    put_byte(SHORT_BINUNICODE), put_uint(n, 1);
  } else if (n <= UINT32_MAX) {
    put_byte(BINUNICODE), put_uint(n, 4);
  } else {
    put_byte(BINUNICODE8), put_uint(n, 8);
  }
  put(utf8.data(), utf8.size());
}

void PickleWriter::integer(int64_t value) {
  value_added("an int", /*key_type=*/true);
  if (value >= 0 && value < 256) {
    put_byte(BININT1), put_uint(uint64_t(value), 1);
  } else if (value >= 0 && value < 65536) {
    put_byte(BININT2), put_uint(uint64_t(value), 2);
  } else if (value >= INT32_MIN && value <= INT32_MAX) {
    put_byte(BININT), put_uint(uint64_t(uint32_t(int32_t(value))), 4);
  } else {  // LONG1: n bytes of little-endian two's complement (8 here; Python accepts non-minimal forms)
    put_byte(LONG1), put_uint(8, 1), put_uint(uint64_t(value), 8);
  }
}

void PickleWriter::int_list(const std::vector<int64_t>& values) {  // [] or [ MARK v... APPENDS
  value_added("a list");
  put_byte(EMPTY_LIST);
  if (values.empty()) return;
  put_byte(MARK);
  open_.push_back({});  // the items count as values of the list, not of the enclosing dict
  for (int64_t v : values) integer(v);
  open_.pop_back();
  put_byte(APPENDS);
}

// ---- the pieces of a numpy array

void PickleWriter::bytes_object(const void* data, uint64_t size) {
  if (size < 256) {
    put_byte(SHORT_BINBYTES), put_uint(size, 1);
  } else if (size <= UINT32_MAX) {
    put_byte(BINBYTES), put_uint(size, 4);
  } else {
    put_byte(BINBYTES8), put_uint(size, 8);
  }
  put(data, size_t(size));
}

void PickleWriter::global(const char* module, const char* name) {  // module name STACK_GLOBAL
  for (const char* s : {module, name}) {
    const size_t n = std::strlen(s);
    put_byte(SHORT_BINUNICODE), put_uint(n, 1), put(s, n);
  }
  put_byte(STACK_GLOBAL);
}

void PickleWriter::int_tuple(const std::vector<int64_t>& values) {
  if (values.empty()) return put_byte(EMPTY_TUPLE);
  if (values.size() > 3) put_byte(MARK);
  open_.push_back({});
  for (int64_t v : values) integer(v);
  open_.pop_back();
  static const uint8_t kSmall[] = {TUPLE1, TUPLE2, TUPLE3};
  put_byte(values.size() <= 3 ? kSmall[values.size() - 1] : uint8_t(TUPLE));
}

// numpy.dtype(code, False, True) with its BUILD state (3, '<', None, None, None, elsize, alignment, flags):
// version 3, little-endian, no sub-array, no fields. numpy writes elsize and alignment -1 for fixed-size
// types and the real values for flexible ones ('U n'); flags 8 marks unicode (NPY_NEEDS_INIT is not set).
void PickleWriter::dtype(const std::string& code, int64_t elsize, int64_t alignment, int64_t flags) {
  global("numpy", "dtype");
  put_byte(SHORT_BINUNICODE), put_uint(code.size(), 1), put(code.data(), code.size());
  put_byte(NEWFALSE), put_byte(NEWTRUE), put_byte(TUPLE3);
  put_byte(REDUCE);
  put_byte(MARK);
  open_.push_back({});
  integer(3);
  put_byte(SHORT_BINUNICODE), put_uint(1, 1), put("<", 1);
  put_byte(NONE), put_byte(NONE), put_byte(NONE);
  integer(elsize), integer(alignment), integer(flags);
  open_.pop_back();
  put_byte(TUPLE);
  put_byte(BUILD);
}

// stack: _reconstruct(ndarray, (0,), b'b') -> shell;  shell (1, shape, dtype, False, data) BUILD -> array
void PickleWriter::array(const std::vector<int64_t>& shape, const std::string& code, int64_t elsize,
                         int64_t alignment, int64_t flags, const void* data, uint64_t size) {
  global("numpy.core.multiarray", "_reconstruct");
  global("numpy", "ndarray");
  put_byte(BININT1), put_uint(0, 1), put_byte(TUPLE1);
  bytes_object("b", 1);
  put_byte(TUPLE3);
  put_byte(REDUCE);
  put_byte(MARK);
  put_byte(BININT1), put_uint(1, 1);  // state version
  int_tuple(shape);
  dtype(code, elsize, alignment, flags);
  put_byte(NEWFALSE);  // is_fortran
  bytes_object(data, size);
  put_byte(TUPLE);
  put_byte(BUILD);
}

void PickleWriter::float32_array(const Tensor& values) {
  MSMIX_CHECK(values.defined(), "pickle writer: float32_array of an undefined tensor");
  value_added("an ndarray");
  const Tensor host = values.is_cuda() ? values.to(Device::cpu()) : values;
  array(host.shape(), "f4", -1, -1, 0, host.data(), uint64_t(host.numel()) * sizeof(float));
}

void PickleWriter::unicode_array(const std::vector<std::string>& utf8) {
  // Decode everything before writing anything: an invalid element leaves the output untouched.
  std::vector<std::vector<uint32_t>> decoded(utf8.size());
  size_t width = 1;  // code points per element; numpy's smallest unicode dtype is '<U1'
  for (size_t i = 0; i < utf8.size(); ++i) {
    decoded[i] = utf8_code_points(utf8[i], "unicode array element " + std::to_string(i));
    width = std::max(width, decoded[i].size());
  }
  value_added("an ndarray");
  std::vector<uint32_t> units(utf8.size() * width, 0);  // [N, width] UTF-32, NUL-padded
  for (size_t i = 0; i < decoded.size(); ++i) std::copy(decoded[i].begin(), decoded[i].end(), &units[i * width]);
  const int64_t elsize = 4 * int64_t(width);
  array({int64_t(utf8.size())}, "U" + std::to_string(width), elsize, 4, 8, units.data(),
        uint64_t(units.size()) * 4);
}

void PickleWriter::finish() {
  MSMIX_CHECK(!finished_, "pickle writer: finish() called twice");
  MSMIX_CHECK(open_.empty(), "pickle writer: finish() with {} container(s) still open", open_.size());
  MSMIX_CHECK(root_written_, "pickle writer: finish() before any value");
  finished_ = true;
  put_byte(STOP);
  flush();
}

}  // namespace msmix
