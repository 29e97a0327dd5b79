// numpy arrays as the restricted unpickler (data/pickle.h) rebuilds them: a dtype, a shape, and the
// elements in row-major order, little-endian. numpy pickles an array in one of two ways:
//   protocol <= 4: _reconstruct(ndarray, (0,), b'b') makes an empty shell, then BUILD passes the state
//                  (version, shape, dtype, is_fortran, data): data is the raw bytes, or a list for dtype 'O';
//   protocol 5:    numpy.core.numeric._frombuffer(buffer, dtype, shape, order).
// A dtype itself is pickled as numpy.dtype(code, align, copy) (code 'f4', 'i8', 'U12', 'O8', ...) plus a
// BUILD state (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata]).
// Nothing here is numpy code: sizes are checked against the bytes present before anything is allocated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/shape.h"
#include "engine/tensor.h"

namespace msmix {

class Value;

enum class ScalarType {
  boolean, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64,
  unicode,  // numpy '<U n': n UTF-32 code units per element
  object,   // numpy 'O': Python objects; only str elements are read
};

struct DType {
  ScalarType type = ScalarType::float64;
  int64_t itemsize = 8;     // bytes per element; unicode: 4 per character (UTF-32), object: 8
  bool big_endian = false;  // how the pickled bytes are ordered (the NdArray itself is always little-endian)

  bool is_numeric() const { return type != ScalarType::unicode && type != ScalarType::object; }
  bool is_integer() const;  // boolean included
  std::string str() const;  // numpy's name: "float32", "bool", "<U12", "object"
};

// numpy's dtype code as pickled, e.g. "f4", "<i8", "U12", "O8", "b1". Throws for anything else
// (structured, bytes 'S', datetime 'M8', complex, float16, ...).
DType parse_dtype_code(const std::string& code);
// Applies the byte-order character of a dtype's BUILD state: '<' little, '>' big, '=' native (little on
// every host msmix builds for), '|' not applicable (one-byte and object types).
void set_byte_order(DType& dtype, const std::string& order);

struct NdArray {
  DType dtype;
  Shape shape;
  Tensor values;                     // float32: the data, row-major (the tensor to_tensor() returns)
  std::vector<uint8_t> bytes;        // other numeric dtypes: numel * itemsize bytes, row-major, little-endian
  std::vector<std::string> strings;  // unicode and object dtypes: numel UTF-8 strings, row-major

  const uint8_t* raw() const;  // a numeric array's bytes, whichever of values / bytes holds them

  int64_t numel() const { return shape_numel(shape); }
  std::string describe() const;  // "float32 [2, 3]"

  // Element i (row-major) of a numeric array as double; int64 beyond 2^53 loses precision.
  double element(int64_t i) const;
  // Element i of an integer or bool array, exactly; throws for float and string arrays.
  int64_t int_element(int64_t i) const;

  // Numeric dtypes only: a float32 CPU tensor of the same shape; for a float32 array, `values` itself (shared,
  // not copied: the array is read once and handed over), for the others a converted copy.
  Tensor to_tensor() const;
  std::vector<std::string> to_strings() const;   // row-major; unicode and object dtypes only
};

// Builds an array from raw bytes laid out as numpy holds them (C or Fortran order, the dtype's byte
// order): checks size == numel * itemsize, swaps to little-endian, reorders Fortran to row-major, decodes
// UTF-32 (trailing NULs stripped, as numpy does). Shape: at most kMaxArrayRank dims, each >= 0. Refuses,
// before allocating, an array whose memory would exceed max_bytes. Throws msmix::Error.
constexpr size_t kMaxArrayRank = 64;  // numpy allows 32 (64 from numpy 2)
NdArray array_from_bytes(const DType& dtype, const Shape& shape, bool fortran, const uint8_t* data, size_t size,
                         size_t max_bytes = SIZE_MAX);
// An object array of strings from the BUILD state's list. numpy lists the elements in row-major order
// even when is_fortran is set (it walks the array with a C-order iterator), so no reordering here.
NdArray array_from_strings(const Shape& shape, std::vector<std::string> elements);

// Bytes the array holds in memory (the unpickler's allocation budget counts them).
size_t array_footprint(const NdArray& array);

// ---- numpy's pickled forms, for data/pickle.cpp. Each takes pickled values and never calls anything.
// A numpy.dtype reduced object (code, align, copy) after BUILD gave its state.
DType dtype_from_pickle(const Value& dtype_object);
// The BUILD state of a _reconstruct shell: (version, shape, dtype, is_fortran, data) or without version.
NdArray array_from_state(const Value& state, size_t max_bytes = SIZE_MAX);
// The arguments of numpy.core.numeric._frombuffer: (buffer, dtype, shape, order 'C' | 'F').
NdArray array_from_frombuffer(const Value& args, size_t max_bytes = SIZE_MAX);
// The arguments of numpy.core.multiarray.scalar: (dtype, raw bytes) -> a bool, int or float Value.
Value scalar_from_pickle(const Value& args);

}  // namespace msmix
