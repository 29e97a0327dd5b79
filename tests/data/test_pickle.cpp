// The restricted unpickler against pickles written by Python (tests/data/make_pickle_fixtures.py): values
// equal what Python wrote (expected.json beside the fixtures), hostile pickles are refused naming the global
// and the offset, broken ones give clear errors, and no prefix or single-byte corruption of a valid pickle
// crashes. Also the real MOSI features from ../shared when present.
#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "data/pickle.h"
#include "tests/files.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;
using json = nlohmann::json;

namespace {

const std::string kDir = "golden/pickle/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

const json& expected() {
  static const json e = json::parse(read_file(kDir + "expected.json"));
  return e;
}

// The message of the msmix::Error that fn throws ("" when it throws none); any other exception fails.
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw a non-msmix exception: " << e.what());
  }
  return "";
}

// A JSON number or "nan" / "inf" / "-inf" equals d exactly (the sign of zero included).
bool same_double(double d, const json& e) {
  if (e.is_string()) {
    std::string s = e.get<std::string>();
    return s == "nan" ? std::isnan(d) : s == "inf" ? d == INFINITY : s == "-inf" ? d == -INFINITY : false;
  }
  double want = e.get<double>();
  return d == want && std::signbit(d) == std::signbit(want);
}

std::string hex(std::string_view raw) {
  std::string out;
  for (unsigned char c : raw) out += fmt::format("{:02x}", c);
  return out;
}

// Compares a Value with a tagged value from expected.json (format in make_pickle_fixtures.py).
void check_value(const Value& v, const json& e, const std::string& path) {
  const std::string t = e["t"];
  INFO(path << ": got " << v.describe());
  if (t == "none") {
    CHECK(v.is_none());
  } else if (t == "bool") {
    REQUIRE(v.is(Kind::boolean));
    CHECK(v.as_bool() == e["v"].get<bool>());
  } else if (t == "int") {
    REQUIRE(v.is(Kind::integer));
    CHECK(v.as_int() == e["v"].get<int64_t>());
  } else if (t == "float") {
    REQUIRE(v.is(Kind::floating));
    CHECK(same_double(v.as_float(), e["v"]));
  } else if (t == "str") {
    REQUIRE(v.is(Kind::str));
    CHECK(v.as_str() == e["v"].get<std::string>());
  } else if (t == "bytes") {
    REQUIRE(v.is(Kind::bytes));
    CHECK(hex(v.as_bytes()) == e["hex"].get<std::string>());
  }
  if (t == "none" || t == "bool" || t == "int" || t == "float" || t == "str" || t == "bytes") return;
  if (t == "list" || t == "tuple" || t == "set") {
    REQUIRE(std::string(kind_name(v.kind())) == t);
    REQUIRE(v.items().size() == e["items"].size());
    for (size_t i = 0; i < v.items().size(); ++i)
      check_value(v.items()[i], e["items"][i], path + "[" + std::to_string(i) + "]");
    return;
  }
  if (t == "dict") {
    REQUIRE(v.is(Kind::dict));
    const auto& entries = v.as_dict().entries();
    REQUIRE(entries.size() == e["items"].size());
    for (size_t i = 0; i < entries.size(); ++i) {
      check_value(entries[i].first, e["items"][i][0], path + ".key" + std::to_string(i));
      const json& key = e["items"][i][0];
      std::string name = key["t"] == "str" ? key["v"].get<std::string>() : key["v"].dump();
      check_value(entries[i].second, e["items"][i][1], path + "." + name);
      // lookup by key finds the same value
      const Value* found = key["t"] == "str" ? v.as_dict().find(key["v"].get<std::string>())
                                             : v.as_dict().find(key["v"].get<int64_t>());
      CHECK(found == &entries[i].second);
    }
    return;
  }
  REQUIRE(t == "ndarray");
  const NdArray& a = v.as_array(path);
  CHECK(a.dtype.str() == e["dtype"].get<std::string>());
  REQUIRE(a.shape == e["shape"].get<Shape>());
  const json& data = e["data"];
  REQUIRE(data.size() == size_t(a.numel()));
  for (int64_t i = 0; i < a.numel(); ++i) {
    INFO("element " << i);
    if (!a.dtype.is_numeric())
      CHECK(a.strings[i] == data[i].get<std::string>());
    else if (a.dtype.is_integer())
      CHECK(a.int_element(i) == data[i].get<int64_t>());
    else
      CHECK(same_double(a.element(i), data[i]));
  }
}

std::vector<std::string> files_with(const char* field) {
  std::vector<std::string> out;
  for (const auto& [name, spec] : expected()["files"].items())
    if (spec.contains(field)) out.push_back(name);
  return out;
}

}  // namespace

TEST_CASE("pickle: fixtures from Python (protocols 2, 4, 5) load to the values Python wrote") {
  std::vector<std::string> files = files_with("value");
  REQUIRE(files.size() == 10);
  for (const std::string& name : files) {
    CAPTURE(name);
    Value v = load_pickle_file(kDir + name);
    check_value(v, expected()["values"][expected()["files"][name]["value"].get<std::string>()], name);
  }
}

TEST_CASE("pickle: a file mapped, read from a pipe, or given in memory loads the same values") {
  // load_pickle_file maps a regular file (bytes objects stay views into the mapping, which the Values keep
  // alive) and reads anything else; load_pickle copies out of memory it does not own.
  TempDir tmp("pickle-pipe");
  const std::string fifo = tmp.file("fifo.pkl");
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::string& name : files_with("value")) {
    CAPTURE(name);
    const json& want = expected()["values"][expected()["files"][name]["value"].get<std::string>()];
    const std::string bytes = read_file(kDir + name);
    std::thread writer([&] {
      std::ofstream out(fifo, std::ios::binary);
      out.write(bytes.data(), std::streamsize(bytes.size()));
    });
    Value piped = load_pickle_file(fifo);
    writer.join();
    check_value(piped, want, name);
    Value in_memory;
    {
      std::string copy = bytes;
      in_memory = load_pickle(copy);
    }  // the buffer is gone: nothing may point into it
    check_value(in_memory, want, name);
  }
  std::ofstream(tmp.file("empty.pkl")).flush();
  check_throws_with([&] { load_pickle_file(tmp.file("empty.pkl")); }, {"empty.pkl", "truncated"});
  check_throws_with([&] { load_pickle_file(tmp.file("missing.pkl")); },
                    {"cannot open", "missing.pkl", "No such file"});
}

TEST_CASE("pickle: hostile and malformed fixtures are refused with a clear error") {
  std::vector<std::string> files = files_with("error");
  REQUIRE(files.size() >= 25);
  for (const std::string& name : files) {
    CAPTURE(name);
    std::vector<std::string> parts = expected()["files"][name]["error"];
    parts.push_back(name);  // the path is in the message
    check_throws_with([&] { load_pickle_file(kDir + name); }, parts);
  }
}

TEST_CASE("pickle: no prefix of a valid pickle loads, and each gives an msmix::Error") {
  for (const std::string& name : files_with("value")) {
    std::string bytes = read_file(kDir + name);
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::string message = error_of([&] { load_pickle(bytes.substr(0, n)); });
      REQUIRE_MESSAGE(!message.empty(), name << " cut to " << n << " bytes loaded");
      REQUIRE_MESSAGE(message.find("byte offset") != std::string::npos, message);
    }
  }
}

TEST_CASE("pickle: single-byte corruptions never crash (a value or an msmix::Error)") {
  for (const char* name : {"arrays_p2.pkl", "strings_p4.pkl", "python_p5.pkl"}) {
    std::string bytes = read_file(kDir + name);
    for (size_t i = 0; i < bytes.size(); ++i)
      for (unsigned char b : {0x00, 0xff, 0x7f}) {
        std::string mutated = bytes;
        mutated[i] = char(b);
        try {
          load_pickle(mutated);
        } catch (const Error&) {
        } catch (const std::exception& e) {
          FAIL(name << " byte " << i << " = " << int(b) << " threw a non-msmix exception: " << e.what());
        }
      }
  }
}

TEST_CASE("pickle: hand-made hostile streams") {
  auto fails = [](const std::string& bytes, std::vector<std::string> parts) {
    check_throws_with([&] { load_pickle(bytes); }, parts);
  };
  using namespace std::string_literals;
  const std::string p2 = "\x80\x02"s;
  fails("", {"truncated", "byte offset 0"});
  fails(p2 + "a."s, {"stack underflow", "APPEND", "byte offset 2"});
  fails(p2 + "N(a."s, {"stack underflow", "byte offset 4"});  // values below a MARK are out of reach
  fails(p2 + "t."s, {"TUPLE without a MARK", "byte offset 2"});
  fails(p2 + "."s, {"stack underflow", "STOP"});
  fails("\x80\x06N."s, {"protocol 6"});
  fails(p2 + "j\xff\xff\xff\xff."s, {"memo key 4294967295 was never stored", "byte offset 2"});
  fails(p2 + "\x8e\x00\x00\x00\x00\x00\x00\x00\x40."s, {"truncated", "4611686018427387904", "byte offset 2"});
  fails(p2 + "X\xff\xff\xff\xff."s, {"truncated", "BINUNICODE", "4294967295"});
  fails(p2 + "\x8b\xff\xff\xff\xff."s, {"negative length"});
  fails(p2 + "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."s, {"9 bytes does not fit in int64"});
  fails(p2 + "X\x02\x00\x00\x00\xc3\x28."s, {"invalid UTF-8", "byte offset 2"});
  fails(p2 + "X\x02\x00\x00\x00\xc0\x80."s, {"invalid UTF-8"});          // overlong NUL
  fails(p2 + "X\x03\x00\x00\x00\xed\xa0\x80."s, {"invalid UTF-8"});      // a surrogate
  fails(p2 + "\x8c\x01" "a\x8c\x01" "b\x93."s, {"refused global 'a.b'", "byte offset 8", "STACK_GLOBAL"});
  fails(p2 + "cbuiltins\ngetattr\n."s, {"refused global 'builtins.getattr'", "byte offset 2"});
  fails(p2 + "\x97."s, {"out-of-band buffers"});
  fails(p2 + "Q."s, {"BINPERSID is not supported"});
  fails(p2 + "\xff."s, {"unknown opcode 0xff", "byte offset 2"});
  fails(p2 + "}K\x01K\x02K\x03u."s, {"SETITEMS without a MARK"});
  fails(p2 + "}(K\x01u."s, {"odd number"});
  fails(p2 + "}(]K\x01u."s, {"dict key list of 0 items is not supported"});
  fails(p2 + "N]a."s, {"APPEND target is None, expected a list"});
  fails(p2 + "]q\x00h\x00" "a."s, {"contains itself"});  // l = []; l.append(l)
  // a = [], b = []; a.append(b); b.append(a)
  fails(p2 + "]q\x00]q\x01" "ah\x01h\x00" "a0."s, {"contains itself"});
  fails(p2 + "\x95\x10\x00\x00\x00\x00\x00\x00\x00N."s, {"truncated", "FRAME declares 16 bytes", "byte offset 2"});
  fails(p2 + "I12x\n."s, {"INT expects a decimal int64"});
  fails(p2 + "I99999999999999999999\n."s, {"INT expects a decimal int64"});

  // A memo index is a hash key: a huge one costs nothing.
  Value none = load_pickle(p2 + "Nr\xff\xff\xff\xffj\xff\xff\xff\xff."s);
  CHECK(none.is_none());
  CHECK(load_pickle(p2 + "I01\n."s).as_bool());
  CHECK(load_pickle(p2 + "I-42\n."s).as_int() == -42);
  CHECK(load_pickle(p2 + "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80."s).as_int() == INT64_MIN);
  CHECK(load_pickle(p2 + "\x8a\x02\xff\x7f."s).as_int() == 32767);
  CHECK(load_pickle(p2 + "\x8a\x01\xff."s).as_int() == -1);
  CHECK(load_pickle(p2 + "U\x02\xe9x."s).as_str() == "\xc3\xa9x");  // Python 2 str read as latin-1
  CHECK(load_pickle(p2 + "N0K\x05."s).as_int() == 5);                    // POP
  CHECK(load_pickle(p2 + "K\x05(1."s).as_int() == 5);                    // POP_MARK
  CHECK(load_pickle(p2 + "K\x05(0."s).as_int() == 5);                    // POP on an empty mark pops the mark
  CHECK(load_pickle(p2 + "]2K\x07" "a0."s).items().size() == 1);         // DUP shares the list
  // A shared (not recursive) structure is fine: [x, x] with x = [[...]] nested, no blow-up.
  CHECK(load_pickle(p2 + "]q\x00K\x01" "a]h\x00h\x00\x86" "a."s).items()[0].items().size() == 2);
}

TEST_CASE("pickle: nesting is limited to kMaxPickleDepth levels") {
  auto nested = [](int depth) {  // depth lists: [[[...]]], built with EMPTY_LIST x depth and APPEND x depth-1
    return "\x80\x02" + std::string(depth, ']') + std::string(depth - 1, 'a') + ".";
  };
  Value ok = load_pickle(nested(kMaxPickleDepth));
  int levels = 1;
  for (const Value* v = &ok; !v->items().empty(); v = &v->items()[0]) ++levels;
  CHECK(levels == kMaxPickleDepth);
  check_throws_with([&] { load_pickle(nested(kMaxPickleDepth + 1)); }, {"nested deeper than 100 levels"});
  check_throws_with([&] { load_pickle(nested(200000)); }, {"nested deeper than"});  // no stack overflow
  // Deep nesting made by appending into lists already stored in others (heights change after insertion):
  // memo i = list i; then list i.append(list i+1) for every i, innermost last.
  auto u32 = [](uint32_t i) { return std::string(reinterpret_cast<const char*>(&i), 4); };  // little-endian host
  std::string s = "\x80\x02]";
  const uint32_t n = 5000;
  for (uint32_t i = 0; i < n; ++i) s += "]r" + u32(i) + "0";           // list i, LONG_BINPUT i, POP
  for (uint32_t i = 0; i + 1 < n; ++i) s += "j" + u32(i) + "j" + u32(i + 1) + "a0";  // list i .append(list i+1)
  s += "j" + u32(0) + "a.";
  check_throws_with([&] { load_pickle(s); }, {"nested deeper than"});
}

TEST_CASE("pickle: dict helpers and conversions name what is missing") {
  Value root = load_pickle_file(kDir + "mmsa_like_p4.pkl");
  const json& e = expected()["values"]["mmsa_like"];
  CHECK(root.keys() == std::vector<std::string>{"train", "valid", "test"});
  const Value& train = root.at("train", "the file");
  check_throws_with([&] { train.at("text_bert", "split 'train'"); },
                    {"key 'text_bert' missing in split 'train'", "'audio'", "'regression_labels'"});
  check_throws_with([&] { root.at(3, "the file"); }, {"key 3 missing in the file"});
  check_throws_with([&] { train.at("id").as_dict("train/id"); }, {"train/id is ndarray <U", "expected a dict"});
  check_throws_with([&] { train.at("id").to_tensor("train/id"); }, {"train/id", "expected numbers"});
  check_throws_with([&] { train.at("audio").to_strings("train/audio"); }, {"train/audio", "expected strings"});
  CHECK_FALSE(train.has("text_bert"));
  CHECK(train.has("audio"));

  // float64 audio -> float32 tensor; float32 text as is
  const json& e_train = e["items"][0][1];
  auto field = [&](const std::string& key) -> const json& {
    for (const auto& item : e_train["items"])
      if (item[0]["v"] == key) return item[1];
    FAIL("no " << key);
    return e_train;
  };
  Tensor audio = train.at("audio").to_tensor("train/audio");
  CHECK(audio.shape() == field("audio")["shape"].get<Shape>());
  std::vector<float> want;
  for (const auto& x : field("audio")["data"]) want.push_back(float(x.get<double>()));
  check_close(audio.to_vector(), want, 0, 0, "audio");
  CHECK(train.at("text").to_tensor().shape() == Shape{3, 1, 4});
  CHECK(train.at("id").to_strings() == field("id")["data"].get<std::vector<std::string>>());
  CHECK(train.at("annotations").to_strings() == std::vector<std::string>(3, "Positive"));
  CHECK(train.at("audio_lengths").to_int64s() == std::vector<int64_t>{2, 2, 2});
  CHECK(train.at("vision_lengths").to_int64s() == std::vector<int64_t>{1, 1, 1});
  CHECK(train.at("audio_lengths").to_tensor().to_vector() == std::vector<float>{2, 2, 2});
  check_throws_with([&] { train.at("regression_labels").to_int64s("train/regression_labels"); },
                    {"train/regression_labels[", "expected a whole number"});

  // numpy scalars became plain numbers; a Fortran int32 array converts row-major
  Value py = load_pickle_file(kDir + "python_p4.pkl");
  CHECK(py.at("np_float32").as_float() == 1.25);
  CHECK(py.at("np_int64").as_int() == -123456789012);
  CHECK(py.at("np_bool").as_bool());
  Value arrays = load_pickle_file(kDir + "arrays_p5.pkl");
  CHECK(arrays.at("i4_fortran").to_tensor().to_vector() == std::vector<float>{1, -2, 3, -4, 5, -6});
  CHECK(arrays.at("i4_big").to_int64s() == std::vector<int64_t>{1, -2, 300000, -400000});
  CHECK(arrays.at("zero_d").to_tensor().shape() == Shape{});
  CHECK(arrays.at("empty").to_tensor().shape() == Shape{0, 3});
}

TEST_CASE("pickle: the real MOSI utterance features (../shared) load") {
  const std::string path = shared_mosi_utterance();
  if (path.empty()) {
    MESSAGE(kMissingSharedData);
    return;
  }
  Value root = load_pickle_file(path);
  const std::pair<const char*, int64_t> splits[] = {{"train", 1233}, {"valid", 214}, {"test", 752}};
  for (const auto& split : splits) {
    const char* name = split.first;
    const int64_t n = split.second;
    CAPTURE(name);
    std::string where = fmt::format("split '{}'", name);
    const Value& s = root.at(name, "mosi_utterance.pkl");
    CHECK(s.at("text", where).to_tensor().shape() == Shape{n, 1, 100});
    CHECK(s.at("audio", where).to_tensor().shape() == Shape{n, 1, 73});
    CHECK(s.at("vision", where).to_tensor().shape() == Shape{n, 1, 100});
    std::vector<std::string> ids = s.at("id", where).to_strings();
    REQUIRE(int64_t(ids.size()) == n);
    for (const std::string& id : ids) REQUIRE_MESSAGE(id.find("$_$") != std::string::npos, id);
    CHECK(int64_t(s.at("raw_text", where).to_strings().size()) == n);
    CHECK(s.at("audio_lengths", where).to_int64s() == std::vector<int64_t>(size_t(n), 1));
    std::set<std::string> annotations;
    for (const std::string& a : s.at("annotations", where).to_strings()) annotations.insert(a);
    for (const std::string& a : annotations) CHECK((a == "Positive" || a == "Negative" || a == "Neutral"));
    std::vector<float> labels = s.at("regression_labels", where).to_tensor().to_vector();
    REQUIRE(int64_t(labels.size()) == n);
    double mean = 0, sq = 0;
    for (float y : labels) {
      REQUIRE((y >= -3 && y <= 3));
      mean += y / double(n), sq += double(y) * y / double(n);
    }
    double sd = std::sqrt(sq - mean * mean);
    CHECK(std::fabs(mean) < 1.0);  // MOSI sentiment is roughly centred, spread over the scale
    CHECK((sd > 0.8 && sd < 2.5));
  }
}
