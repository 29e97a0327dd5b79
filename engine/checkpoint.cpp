// safetensors reading and writing (the format and the rules are in checkpoint.h).
#include "engine/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <type_traits>

#include "engine/atomic_file.h"
#include "engine/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoint.cpp reads and writes little-endian data as is");

namespace msmix {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr int64_t kExactIntLimit = int64_t(1) << 24;  // float32 holds every integer up to 2^24 exactly

struct DType {
  const char* name;
  int size;  // bytes per element
};
const DType kDTypes[] = {{"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
                         {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}};

const DType* find_dtype(const std::string& name) {
  for (const DType& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

// One tensor as the header describes it; offsets are relative to the data buffer.
struct Entry {
  std::string name;
  const DType* dtype;
  Shape shape;
  uint64_t begin, end;
};

std::string errno_text() { return std::strerror(errno); }

// ---------------------------------------------------------------- element conversion to float32

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (mant << 13))           // inf, NaN
                            : (sign | ((exp + 112) << 23) | (mant << 13));  // rebias 15 -> 127
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

float bf16_to_float(uint16_t h) {  // bf16 is the top half of a float32
  uint32_t bits = uint32_t(h) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// Round-to-nearest like a hardware conversion; a double beyond float's range becomes +-inf (a plain cast
// would be undefined behaviour there).
float double_to_float(double d) {
  if (std::fabs(d) >= 0x1.ffffffp+127) return d > 0 ? INFINITY : -INFINITY;
  return float(d);
}

template <class T>
T read_element(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the buffer need not be aligned for T
  return v;
}

// Integers to float32; returns the index of the first value beyond +-2^24 (or n when none), unless `rounding`
// allows them (counter buffers).
template <class T>
size_t integers_to_float(const unsigned char* src, float* dst, size_t n, bool rounding) {
  for (size_t i = 0; i < n; ++i) {
    T v = read_element<T>(src + i * sizeof(T));
    bool exact;
    if constexpr (std::is_signed<T>::value) exact = int64_t(v) >= -kExactIntLimit && int64_t(v) <= kExactIntLimit;
    else exact = uint64_t(v) <= uint64_t(kExactIntLimit);
    if (!exact && !rounding) return i;
    dst[i] = float(v);
  }
  return n;
}

// Converts one tensor's raw bytes (already read and size-checked) into dst (numel floats).
void convert(const std::string& path, const Entry& e, const unsigned char* src, float* dst, size_t n) {
  const std::string dt = e.dtype->name;
  if (dt == "F64") {
    for (size_t i = 0; i < n; ++i) dst[i] = double_to_float(read_element<double>(src + 8 * i));
  } else if (dt == "F16") {
    for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(read_element<uint16_t>(src + 2 * i));
  } else if (dt == "BF16") {
    for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(read_element<uint16_t>(src + 2 * i));
  } else if (dt == "BOOL") {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i] != 0;
  } else {
    // Integers: exact in float32 up to 2^24; larger values are refused unless the tensor is a counter.
    bool rounding = is_counter_buffer(e.name);
    auto run = [&](auto type_tag) {
      using T = decltype(type_tag);
      size_t bad = integers_to_float<T>(src, dst, n, rounding);
      MSMIX_CHECK(bad == n, "load_safetensors: {}: tensor '{}' ({}): value {} at index {} is beyond +-2^24 = {} and "
                  "would lose precision in float32", path, e.name, dt,
                  std::to_string(read_element<T>(src + bad * sizeof(T))), bad, kExactIntLimit);
    };
    if (dt == "I64") run(int64_t{});
    else if (dt == "I32") run(int32_t{});
    else if (dt == "I16") run(int16_t{});
    else if (dt == "I8") run(int8_t{});
    else if (dt == "U64") run(uint64_t{});
    else if (dt == "U32") run(uint32_t{});
    else if (dt == "U16") run(uint16_t{});
    else if (dt == "U8") run(uint8_t{});
    else throw Error(fmt::format("load_safetensors: {}: tensor '{}': no conversion from {}", path, e.name, dt));
  }
}

// ---------------------------------------------------------------- header parsing and validation

// Parses the JSON text, rejecting duplicate names (nlohmann would silently keep the last) and nesting deeper
// than the format needs (so a hostile header cannot build a huge tree).
nlohmann::json parse_header_json(const std::string& path, const std::string& text) {
  using nlohmann::json;
  std::set<std::string> top_keys, inner_keys;
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth >= 3)
      throw Error(fmt::format("load_safetensors: {}: header nests deeper than the format allows", path));
    if (event == json::parse_event_t::object_start && depth == 1) inner_keys.clear();
    if (event == json::parse_event_t::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (depth == 1 && !top_keys.insert(key).second)
        throw Error(fmt::format("load_safetensors: {}: tensor '{}' appears twice in the header", path, key));
      if (depth == 2 && !inner_keys.insert(key).second)
        throw Error(fmt::format("load_safetensors: {}: field '{}' appears twice in one header entry", path, key));
    }
    return true;
  };
  MSMIX_CHECK(!text.empty() && text[0] == '{', "load_safetensors: {}: header is not a JSON object", path);
  try {
    json header = json::parse(text, check);
    MSMIX_CHECK(header.is_object(), "load_safetensors: {}: header is not a JSON object", path);
    return header;
  } catch (const json::exception& e) {
    throw Error(fmt::format("load_safetensors: {}: header is not valid JSON: {}", path, e.what()));
  }
}

// A JSON integer in [0, max], or an error naming what it is.
uint64_t get_unsigned(const std::string& what, const nlohmann::json& v, uint64_t max) {
  MSMIX_CHECK(v.is_number_integer(), "{} must be an integer, got {}", what, v.dump());
  MSMIX_CHECK(v.is_number_unsigned(), "{} is negative: {}", what, v.dump());
  uint64_t x = v.get<uint64_t>();
  MSMIX_CHECK(x <= max, "{} is too large: {}", what, x);
  return x;
}

Entry parse_entry(const std::string& name, const nlohmann::json& v, uint64_t buffer_len) {
  MSMIX_CHECK(v.is_object(), "entry is not an object: {}", v.dump());
  MSMIX_CHECK(v.contains("dtype") && v["dtype"].is_string(), "no dtype string");
  MSMIX_CHECK(v.contains("shape") && v["shape"].is_array(), "no shape array");
  MSMIX_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2,
              "data_offsets must be [begin, end]");
  Entry e;
  e.name = name;
  std::string dtype = v["dtype"].get<std::string>();
  e.dtype = find_dtype(dtype);
  MSMIX_CHECK(e.dtype, "unsupported dtype '{}' (msmix reads F32, F64, F16, BF16, I64, I32, I16, I8, U64, U32, "
              "U16, U8, BOOL)", dtype);
  const auto& shape = v["shape"];
  MSMIX_CHECK(shape.size() <= 64, "shape has {} dimensions", shape.size());
  // Each dimension must be representable; the product is checked against the buffer below.
  for (const auto& d : shape) e.shape.push_back(int64_t(get_unsigned("shape dimension", d, uint64_t(1) << 62)));
  e.begin = get_unsigned("data_offsets begin", v["data_offsets"][0], std::numeric_limits<uint64_t>::max());
  e.end = get_unsigned("data_offsets end", v["data_offsets"][1], std::numeric_limits<uint64_t>::max());
  MSMIX_CHECK(e.begin <= e.end, "data_offsets [{}, {}] end before begin", e.begin, e.end);
  MSMIX_CHECK(e.end <= buffer_len, "data_offsets [{}, {}] run past the data buffer ({} bytes)", e.begin, e.end,
              buffer_len);
  // numel * size must equal end - begin (<= buffer_len); multiply with an overflow guard.
  uint64_t bytes = uint64_t(e.dtype->size);
  bool empty = std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end();
  if (empty) bytes = 0;
  for (int64_t d : e.shape) {
    if (empty) break;
    MSMIX_CHECK(bytes <= buffer_len / uint64_t(d), "shape {} of {} needs more bytes than the buffer holds ({})",
                shape_str(e.shape), dtype, buffer_len);
    bytes *= uint64_t(d);
  }
  MSMIX_CHECK(bytes == e.end - e.begin, "shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}",
              shape_str(e.shape), dtype, bytes, e.begin, e.end, e.end - e.begin);
  return e;
}

// Validates the whole header; returns the entries sorted by their place in the buffer.
std::vector<Entry> parse_entries(const std::string& path, const nlohmann::json& header, uint64_t buffer_len,
                                 Metadata& metadata) {
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      MSMIX_CHECK(v.is_object(), "load_safetensors: {}: __metadata__ is not an object", path);
      for (const auto& [key, value] : v.items()) {
        MSMIX_CHECK(value.is_string(), "load_safetensors: {}: __metadata__ '{}' is not a string: {}", path, key,
                    value.dump());
        metadata[key] = value.get<std::string>();
      }
      continue;
    }
    try {
      entries.push_back(parse_entry(name, v, buffer_len));
    } catch (const Error& e) {
      throw Error(fmt::format("load_safetensors: {}: tensor '{}': {}", path, name, e.what()));
    }
  }
  // The tensors must tile the buffer exactly: no overlap (two tensors sharing bytes), no gap, nothing after.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t expected = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    MSMIX_CHECK(e.begin >= expected, "load_safetensors: {}: tensor '{}' [{}, {}) overlaps tensor '{}' [{}, {})", path,
                e.name, e.begin, e.end, entries[i - 1].name, entries[i - 1].begin, entries[i - 1].end);
    MSMIX_CHECK(e.begin == expected, "load_safetensors: {}: bytes [{}, {}) of the data buffer belong to no tensor "
                "(before tensor '{}')", path, expected, e.begin, e.name);
    expected = e.end;
  }
  MSMIX_CHECK(expected == buffer_len, "load_safetensors: {}: the last {} bytes of the data buffer belong to no tensor",
              path, buffer_len - expected);
  return entries;
}

// ---------------------------------------------------------------- file access

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void read_at(const std::string& path, int fd, void* dst, uint64_t bytes, uint64_t offset) {
  auto* p = static_cast<unsigned char*>(dst);
  while (bytes > 0) {
    ssize_t got = ::pread(fd, p, std::min<uint64_t>(bytes, 1 << 30), off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    MSMIX_CHECK(got > 0, "load_safetensors: {}: read failed at byte {}: {}", path, offset,
                got == 0 ? "file shrank while reading" : errno_text());
    p += got, bytes -= uint64_t(got), offset += uint64_t(got);
  }
}

}  // namespace

bool is_counter_buffer(const std::string& name) {
  const std::string leaf = "num_batches_tracked";
  size_t dot = name.rfind('.');
  return name.compare(dot == std::string::npos ? 0 : dot + 1, std::string::npos, leaf) == 0;
}

// ---------------------------------------------------------------- save

void save_safetensors(const std::string& path, const TensorDict& tensors, const Metadata& metadata) {
  save_safetensors(path, TensorList(tensors.begin(), tensors.end()), metadata);
}

void save_safetensors(const std::string& path, const TensorList& tensors, const Metadata& metadata) {
  TensorList sorted = tensors;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  // Header: {"__metadata__": {...}, "a": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...}
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [name, t] = sorted[i];
    MSMIX_CHECK(!name.empty() && name != "__metadata__", "save_safetensors: {}: bad tensor name '{}'", path, name);
    MSMIX_CHECK(i == 0 || name != sorted[i - 1].first, "save_safetensors: {}: tensor '{}' given twice", path, name);
    MSMIX_CHECK(t.defined(), "save_safetensors: {}: tensor '{}' is undefined", path, name);
    uint64_t bytes = uint64_t(t.numel()) * 4;
    header[name] = {{"dtype", "F32"}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata value that is not UTF-8
    throw Error(fmt::format("save_safetensors: {}: header cannot be written as JSON: {}", path, e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data buffer starts 8-byte aligned
  uint64_t header_len = text.size();

  AtomicFile file(path, "save_safetensors");
  file.write(&header_len, 8);
  file.write(text.data(), text.size());
  for (const auto& [name, t] : sorted) {
    if (t.numel() == 0) continue;
    if (t.is_cuda()) {
      Tensor host = Tensor::empty(t.shape());
      host.copy_(t);  // device to host; not recorded by autograd
      file.write(host.data(), size_t(host.numel()) * 4);
    } else {
      file.write(t.data(), size_t(t.numel()) * 4);
    }
  }
  file.commit();
}

// ---------------------------------------------------------------- load

Checkpoint load_safetensors(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MSMIX_CHECK(f.fd >= 0, "load_safetensors: cannot open {}: {}", path, errno_text());
  struct stat st;
  MSMIX_CHECK(::fstat(f.fd, &st) == 0 && S_ISREG(st.st_mode), "load_safetensors: {} is not a regular file", path);
  uint64_t file_size = uint64_t(st.st_size);
  MSMIX_CHECK(file_size >= 8, "load_safetensors: {}: {} bytes is too short for a safetensors file", path, file_size);

  uint64_t header_len = 0;
  read_at(path, f.fd, &header_len, 8, 0);
  MSMIX_CHECK(header_len <= file_size - 8, "load_safetensors: {}: header length {} is larger than the file ({} bytes)",
              path, header_len, file_size);
  MSMIX_CHECK(header_len <= kMaxHeaderBytes, "load_safetensors: {}: header length {} exceeds the format's limit {}",
              path, header_len, kMaxHeaderBytes);
  std::string text(header_len, '\0');
  read_at(path, f.fd, text.data(), header_len, 8);

  Checkpoint ck;
  nlohmann::json header = parse_header_json(path, text);
  uint64_t buffer_start = 8 + header_len, buffer_len = file_size - buffer_start;
  std::vector<Entry> entries = parse_entries(path, header, buffer_len, ck.metadata);

  // Everything is consistent: each tensor's bytes lie inside the file, so no allocation exceeds it
  // (a 1-byte dtype widens 4x into float32).
  std::vector<unsigned char> raw;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape);
    uint64_t bytes = e.end - e.begin;
    if (std::string(e.dtype->name) == "F32") {
      read_at(path, f.fd, t.data(), bytes, buffer_start + e.begin);
    } else {
      raw.resize(bytes);
      read_at(path, f.fd, raw.data(), bytes, buffer_start + e.begin);
      convert(path, e, raw.data(), t.data(), size_t(t.numel()));
    }
    ck.tensors[e.name] = t;
    ck.dtypes[e.name] = e.dtype->name;
  }
  return ck;
}

}  // namespace msmix
