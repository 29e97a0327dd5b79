// A small pickle writer for MMSA's feature files: the reverse of data/pickle.h for the few kinds of value
// those files hold. Python's plain pickle.load (with numpy 1.x installed) reads the output, and so does
// our restricted unpickler.
//
// Output is protocol 4 without framing or memo (both are optional for a reader), emitted as the values
// arrive, so a multi-gigabyte feature array goes straight from the tensor to the sink without a copy.
// Arrays are pickled the way numpy >= 1.16 pickles them under protocol 4 (see data/numpy_array.h):
//   _reconstruct(numpy.ndarray, (0,), b'b')                                    an empty shell
//   BUILD (1, shape, dtype, False, raw C-order little-endian bytes)            fills it
//   dtype = numpy.dtype('f4' | 'U<n>', False, True) + BUILD (3, '<', None, None, None, elsize, align, flags)
//
//   std::string bytes;
//   PickleWriter w([&](const char* p, size_t n) { bytes.append(p, n); });
//   w.begin_dict();
//   w.str("audio");  w.float32_array(audio);           // float32 [N, T, D]
//   w.str("id");     w.unicode_array(ids);             // numpy '<U n' [N]
//   w.str("audio_lengths"); w.int_list(lengths);       // a Python list of int
//   w.end_dict();
//   w.finish();                                        // STOP, then flushes the sink
//
// Misuse (a dict with a key but no value, finish() inside a container, a value after finish()) and
// values pickle cannot carry (invalid UTF-8) are msmix::Error, thrown before the bad bytes are written.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace msmix {

class PickleWriter {
 public:
  // Receives the pickle in order, in pieces; throwing from it aborts the write.
  using Sink = std::function<void(const char* data, size_t size)>;

  explicit PickleWriter(Sink sink);  // writes PROTO 4

  // Containers. Between begin_dict and end_dict: key, value, key, value, ... (keys are str()).
  void begin_dict();
  void end_dict();

  // Scalars and flat values.
  void str(const std::string& utf8);              // Python str; throws on invalid UTF-8
  void integer(int64_t value);                    // Python int
  void int_list(const std::vector<int64_t>& values);  // Python list of int

  // numpy arrays. float32: the tensor's shape (any rank, rank 0 included) and its values, C order.
  // A CUDA tensor is copied to the host first.
  void float32_array(const Tensor& values);
  // A 1-D numpy unicode array '<U n', n = the longest element in code points (at least 1, as numpy).
  // numpy drops trailing NUL characters of each element when reading, so those do not round-trip.
  void unicode_array(const std::vector<std::string>& utf8);

  void finish();  // STOP and a final flush; the writer takes no values after it

  uint64_t bytes_written() const { return written_ + buffer_.size(); }

 private:
  // ---- raw output: small pieces are buffered, large payloads go to the sink directly
  void put(const void* data, size_t size);
  void put_byte(uint8_t b) { put(&b, 1); }
  void put_uint(uint64_t value, int bytes);  // little-endian
  void flush();

  // ---- opcode groups
  void bytes_object(const void* data, uint64_t size);    // SHORT_BINBYTES / BINBYTES / BINBYTES8
  void global(const char* module, const char* name);     // STACK_GLOBAL module.name
  void int_tuple(const std::vector<int64_t>& values);    // (a, b, ...) for shapes
  void dtype(const std::string& code, int64_t elsize, int64_t alignment, int64_t flags);
  void array(const std::vector<int64_t>& shape, const std::string& code, int64_t elsize, int64_t alignment,
             int64_t flags, const void* data, uint64_t size);

  // ---- usage checks: one frame per open container, counting its items
  // A value is about to be pushed onto the open container (or is the root); key_type: str or int, which
  // alone may be dict keys.
  void value_added(const char* what, bool key_type = false);
  struct Frame {
    bool dict = false;  // then items alternate key, value
    int64_t items = 0;
  };

  Sink sink_;
  std::string buffer_;
  uint64_t written_ = 0;
  std::vector<Frame> open_;
  bool finished_ = false;
  bool root_written_ = false;
};

}  // namespace msmix
