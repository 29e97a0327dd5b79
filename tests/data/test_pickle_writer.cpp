// The pickle writer and write_mmsa: values written and read back by our restricted unpickler are the
// values given (every int width, strings, arrays of any rank, unicode arrays), datasets round-trip through
// load_mmsa bit for bit (synthetic MOSI with text_bert, SIMS with T/A/V labels, NaN and -inf features,
// the real MOSI file when present), Python's pickle + numpy read the same shapes, dtypes and bits, and
// misuse or an unwritable path is a clear msmix::Error that leaves no file behind.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

#include "data/mmsa_writer.h"
#include "data/pickle.h"
#include "data/pickle_writer.h"
#include "data/synthetic.h"
#include "msmix/commands.h"
#include "msmix/data_command.h"
#include "tests/files.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;
namespace fs = std::filesystem;

namespace {

// Runs `fill` on a writer into a string and returns the finished pickle.
std::string pickled(const std::function<void(PickleWriter&)>& fill) {
  std::string bytes;
  PickleWriter w([&](const char* p, size_t n) { bytes.append(p, n); });
  fill(w);
  w.finish();
  CHECK(w.bytes_written() == bytes.size());
  return bytes;
}

void check_same_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  REQUIRE_MESSAGE(got.defined() == want.defined(), what << ": defined " << got.defined() << " vs " << want.defined());
  if (!want.defined()) return;
  REQUIRE_MESSAGE(got.shape() == want.shape(),
                  what << ": " << shape_str(got.shape()) << " vs " << shape_str(want.shape()));
  CHECK_MESSAGE(std::memcmp(got.data(), want.data(), size_t(want.numel()) * sizeof(float)) == 0,
                what << ": bits differ");
}

void check_same_dataset(const Dataset& got, const Dataset& want) {
  for (const char* name : {"train", "valid", "test"}) {
    const Split& g = got.split(name);
    const Split& w = want.split(name);
    INFO("split " << name);
    CHECK(g.ids == w.ids);
    CHECK(g.raw_text == w.raw_text);
    CHECK(g.audio_lengths == w.audio_lengths);
    CHECK(g.vision_lengths == w.vision_lengths);
    check_same_bits(g.text, w.text, "text");
    check_same_bits(g.text_bert, w.text_bert, "text_bert");
    check_same_bits(g.audio, w.audio, "audio");
    check_same_bits(g.vision, w.vision, "vision");
    check_same_bits(g.labels, w.labels, "regression_labels");
    check_same_bits(g.labels_t, w.labels_t, "regression_labels_T");
    check_same_bits(g.labels_a, w.labels_a, "regression_labels_A");
    check_same_bits(g.labels_v, w.labels_v, "regression_labels_V");
  }
}

Dataset small_synthetic(const std::string& name, bool text_bert = false) {
  SyntheticOptions o;
  o.size_scale = 0.125;  // train 32 / valid 8 / test 16
  o.with_text_bert = text_bert;
  return make_synthetic(name, 5, o).dataset;
}

}  // namespace

// ---------------------------------------------------------------- the writer, read back by our reader

TEST_CASE("pickle writer: ints of every width, strings and lists read back as written") {
  const std::vector<int64_t> ints = {0,      1,          255,        256,       65535,     65536,     -1,
                                     -256,   INT32_MAX,  INT32_MIN,  int64_t(INT32_MAX) + 1,  int64_t(INT32_MIN) - 1,
                                     INT64_MAX, INT64_MIN};
  for (int64_t v : ints) CHECK(load_pickle(pickled([&](PickleWriter& w) { w.integer(v); })).as_int() == v);
  CHECK(load_pickle(pickled([&](PickleWriter& w) { w.int_list(ints); })).to_int64s() == ints);
  CHECK(load_pickle(pickled([&](PickleWriter& w) { w.int_list({}); })).items().empty());

  const std::string long_text(70000, 'x');  // BINUNICODE (>= 256 bytes), and past the writer's buffer
  for (const std::string& s : {std::string(""), std::string("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x99\x82"), long_text})
    CHECK(load_pickle(pickled([&](PickleWriter& w) { w.str(s); })).as_str() == s);
}

TEST_CASE("pickle writer: nested dicts keep keys, order and values") {
  Value v = load_pickle(pickled([](PickleWriter& w) {
    w.begin_dict();
    w.str("z"), w.integer(1);
    w.str("inner"), w.begin_dict(), w.end_dict();
    w.integer(7), w.begin_dict();
    w.str("a"), w.str("b");
    w.end_dict();
    w.end_dict();
  }));
  CHECK(v.keys() == std::vector<std::string>{"z", "inner"});
  CHECK(v.at("z").as_int() == 1);
  CHECK(v.at("inner").as_dict().size() == 0);
  CHECK(v.at(7).at("a").as_str() == "b");
}

TEST_CASE("pickle writer: float32 arrays of any rank come back with their shape and bits") {
  Generator gen(3);
  const Shape shapes[] = {{}, {0}, {5}, {2, 3}, {2, 0, 4}, {2, 3, 4, 5, 2}, {70, 300}};  // the last: 84 KB of data
  for (const Shape& shape : shapes) {
    Tensor x = Tensor::randn(shape, gen);
    if (x.numel() > 2) x.data()[0] = NAN, x.data()[1] = -INFINITY;
    Value v = load_pickle(pickled([&](PickleWriter& w) { w.float32_array(x); }));
    const NdArray& a = v.as_array();
    CHECK(a.dtype.str() == "float32");
    check_same_bits(a.to_tensor(), x, "array " + shape_str(shape));
  }
}

TEST_CASE("pickle writer: unicode arrays are numpy '<U n' with n the longest element in code points") {
  const std::vector<std::string> words = {"a", "", "\xc3\xa9t\xc3\xa9", "\xf0\x9f\x99\x82!", "video$_$12"};
  Value v = load_pickle(pickled([&](PickleWriter& w) { w.unicode_array(words); }));
  CHECK(v.as_array().dtype.str() == "<U10");
  CHECK(v.as_array().shape == Shape{5});
  CHECK(v.to_strings() == words);
  Value empty = load_pickle(pickled([&](PickleWriter& w) { w.unicode_array({}); }));
  CHECK(empty.as_array().dtype.str() == "<U1");  // numpy's array([], dtype=str) is '<U1' too
  CHECK(empty.to_strings().empty());
  Value blank = load_pickle(pickled([&](PickleWriter& w) { w.unicode_array({"", ""}); }));
  CHECK(blank.to_strings() == std::vector<std::string>{"", ""});
}

TEST_CASE("pickle writer: misuse and invalid UTF-8 are errors before anything bad is written") {
  std::string bytes;
  auto sink = [&](const char* p, size_t n) { bytes.append(p, n); };
  {
    PickleWriter w(sink);
    w.begin_dict();
    w.str("key");
    check_throws_with([&] { w.end_dict(); }, {"key without a value"});
    check_throws_with([&] { w.finish(); }, {"1 container(s) still open"});
    w.integer(1);
    check_throws_with([&] { w.float32_array(Tensor::zeros({2})); }, {"dict keys must be str or int", "ndarray"});
    check_throws_with([&] { w.str("bad \xc3"); }, {"not valid UTF-8", "byte 4"});
    check_throws_with([&] { w.unicode_array({"ok", "\xed\xa0\x80"}); }, {"element 1", "not valid UTF-8"});
    w.end_dict();
    check_throws_with([&] { w.integer(2); }, {"one root value"});
    check_throws_with([&] { w.end_dict(); }, {"without begin_dict"});
    w.finish();
    check_throws_with([&] { w.finish(); }, {"twice"});
    check_throws_with([&] { w.str("late"); }, {"after finish"});
  }
  // What was written around the refused calls is still a valid pickle of {'key': 1}.
  Value v = load_pickle(bytes);
  CHECK(v.keys() == std::vector<std::string>{"key"});
  CHECK(v.at("key").as_int() == 1);
  PickleWriter empty(sink);
  check_throws_with([&] { empty.finish(); }, {"before any value"});
}

// ---------------------------------------------------------------- datasets through load_mmsa

TEST_CASE("write_mmsa: synthetic MOSI (with text_bert) and SIMS (T/A/V labels) read back bit for bit") {
  TempDir dir("roundtrip");
  for (const auto& [name, bert] :
       {std::pair<std::string, bool>{"mosi", true}, {"sims", false}, {"mosi-aligned", false}}) {
    INFO(name);
    Dataset d = small_synthetic(name, bert);
    const std::string path = dir.file(name + ".pkl");
    write_mmsa(d, path);
    Dataset back = load_mmsa(path);
    CHECK(back.name == name);
    check_same_dataset(back, d);
    CHECK(back.train.labels_t.defined() == (name == "sims"));
    CHECK(back.train.text_bert.defined() == bert);
    CHECK(back.train.audio_lengths.empty() == (name == "mosi-aligned"));
  }
  CHECK(dir.names().size() == 3);  // no temp files left
}

TEST_CASE("write_mmsa: NaN and -inf features, no ids, and a rewrite over an existing file") {
  Dataset d = small_synthetic("mosi");
  d.train.ids.clear(), d.train.raw_text.clear();  // optional in a Dataset: the keys are then left out
  d.valid.audio.data()[3] = -INFINITY;
  d.valid.vision.data()[0] = NAN;
  d.test.raw_text[2] = "d\xc3\xa9j\xc3\xa0 vu \xf0\x9f\x99\x82";
  TempDir dir("special");
  const std::string path = dir.file("d.pkl");
  write_mmsa(small_synthetic("sims"), path);  // replaced below
  write_mmsa(d, path);
  check_same_dataset(load_mmsa(path), d);
  CHECK_FALSE(load_pickle_file(path).at("train").has("id"));
}

TEST_CASE("write_mmsa: the real MOSI utterance file (../shared) reads back identically when present") {
  const std::string path = shared_mosi_utterance();
  if (path.empty()) {
    MESSAGE(kMissingSharedData);
    return;
  }
  Dataset real = load_mmsa(path);
  REQUIRE(!real.train.ids.empty());
  TempDir dir("real");
  write_mmsa(real, dir.file("copy.pkl"));
  check_same_dataset(load_mmsa(dir.file("copy.pkl")), real);
}

TEST_CASE("write_mmsa: unwritable paths and invalid datasets are clear errors that leave no file") {
  TempDir dir("errors");
  Dataset d = small_synthetic("mosi-aligned");
  check_throws_with([&] { write_mmsa(d, dir.file("missing/x.pkl")); },
                    {"write_mmsa", "missing/x.pkl", "cannot create a file in", "No such file or directory"});
  std::ofstream(dir.file("plain")) << "a file";
  check_throws_with([&] { write_mmsa(d, dir.file("plain/x.pkl")); }, {"plain/x.pkl", "Not a directory"});
  fs::create_directories(dir.file("folder"));
  check_throws_with([&] { write_mmsa(d, dir.file("folder")); }, {"is a directory"});
  check_throws_with([&] { write_mmsa(d, ""); }, {"path is empty"});

  std::ofstream(dir.file("old.pkl")) << "previous contents";
  Dataset bad = d;
  bad.valid.labels = Tensor::zeros({3});  // N differs from the features
  check_throws_with([&] { write_mmsa(bad, dir.file("old.pkl")); }, {"split 'valid'", "regression_labels has 3"});
  std::ifstream old(dir.file("old.pkl"));
  std::string contents((std::istreambuf_iterator<char>(old)), std::istreambuf_iterator<char>());
  CHECK(contents == "previous contents");
  std::vector<std::string> names = dir.names();
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"folder", "old.pkl", "plain"});
}

// ---------------------------------------------------------------- the command

TEST_CASE("data_write_command: synthetic:NAME with a seed, or a .pkl, written and summarised") {
  TempDir dir("command");
  DataSpecOptions o;
  o.seed = 9, o.scale = 0.125, o.max_steps = 6;
  const std::string line = data_write_command("synthetic:sims", dir.file("s.pkl"), o);
  CHECK(line.find("wrote " + dir.file("s.pkl")) == 0);
  CHECK(line.find("synthetic:sims seed 9, train 32 / valid 8 / test 16") != std::string::npos);
  CHECK(line.find("audio [6, 33]") != std::string::npos);
  CHECK(line.find("labels M/T/A/V") != std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
  const Dataset want = load_data_spec("synthetic:sims", o);
  REQUIRE(want.valid.ids.size() == 8);  // MMSA's loader needs ids and raw_text: synthetic sets have them
  REQUIRE(want.valid.raw_text.size() == 8);
  CHECK(want.train.audio.size(1) == 6);
  Dataset got = load_mmsa(dir.file("s.pkl"));
  check_same_dataset(got, want);

  // A .pkl in, a .pkl out: the same data.
  data_write_command(dir.file("s.pkl"), dir.file("copy.pkl"));
  check_same_dataset(load_mmsa(dir.file("copy.pkl")), got);

  check_throws_with([&] { data_write_command(dir.file("s.pkl"), dir.file("x.pkl"), o); }, {"synthetic:NAME only"});
  check_throws_with([&] { data_write_command("synthetic:mosi", dir.file("x.txt")); }, {"x.txt", ".pkl"});
  check_throws_with([&] { data_write_command("synthetic:nope", dir.file("x.pkl")); }, {"nope"});
  check_throws_with([&] { data_write_command(dir.file("absent.pkl"), dir.file("x.pkl")); }, {"no such file"});
}

// ---------------------------------------------------------------- Python reads what we write

namespace {

// Loads the file with plain pickle.load and prints one line per split key:
//   "split/key ndarray <dtype> [shape] <checksum> <float64 sum>"  (numeric arrays)
//   "split/key ndarray <dtype> [shape] <checksum>"                (unicode arrays)
//   "split/key list int [n] <checksum> <sum>"                      (lists of ints)
// checksum: sum over i of (i + 1) * (the uint32 bits of float element i) mod 2^64, for strings FNV-1a 64
// of the elements' UTF-8 joined by NUL, for int lists sum of (i + 1) * value mod 2^64: exact, order-aware.
const char* kPythonReader = R"(
import pickle, sys
import numpy as np
with open(sys.argv[1], 'rb') as f:
    root = pickle.load(f)
assert type(root) is dict and list(root) == ['train', 'valid', 'test'], list(root)
def fnv(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) % 2**64
    return h
for split, keys in root.items():
    assert type(keys) is dict
    for key, v in keys.items():
        name = split + '/' + key
        if isinstance(v, np.ndarray):
            assert v.flags.c_contiguous
            shape = '[' + ','.join(str(d) for d in v.shape) + ']'
            if v.dtype.kind == 'U':
                h = fnv(b'\0'.join(s.encode('utf-8') for s in v.tolist()))
                print(name, 'ndarray', v.dtype.str, shape, h)
            else:
                bits = v.reshape(-1).view(np.uint32).astype(np.uint64)
                weights = np.arange(1, bits.size + 1, dtype=np.uint64)
                print(name, 'ndarray', v.dtype.str, shape, int((bits * weights).sum(dtype=np.uint64)),
                      repr(float(v.astype(np.float64).sum())))
        else:
            assert type(v) is list and all(type(x) is int for x in v), name
            h = sum((i + 1) * x for i, x in enumerate(v)) % 2**64
            print(name, 'list', 'int', '[%d]' % len(v), h, float(sum(v)))
)";

// The first interpreter that imports numpy, or "".
std::string python_with_numpy() {
  for (const char* candidate : {"python3", "/usr/bin/python3"}) {
    std::string command = std::string(candidate) + " -c 'import numpy' >/dev/null 2>&1";
    if (std::system(command.c_str()) == 0) return candidate;
  }
  return "";
}

std::string run_command(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char chunk[4096];
  for (size_t n; (n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0;) out.append(chunk, n);
  CHECK_MESSAGE(::pclose(pipe) == 0, "'" << command << "' failed; output:\n" << out);
  return out;
}

struct Expected {
  std::string line;  // everything but the float64 sum
  double sum = 0, abs_sum = 0;
};

std::string dims(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

Expected expect_floats(const std::string& name, const Tensor& x) {
  Expected e;
  uint64_t h = 0;
  const float* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    h += uint64_t(i + 1) * bits;
    e.sum += p[i], e.abs_sum += std::fabs(p[i]);
  }
  e.line = fmt::format("{} ndarray <f4 {} {}", name, dims(x.shape()), h);
  return e;
}

// numpy's '<U n': n is the longest element in code points (UTF-8 bytes that are not continuation bytes).
Expected expect_strings(const std::string& name, const std::vector<std::string>& strings) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t width = 1;
  for (size_t i = 0; i < strings.size(); ++i) {
    std::string piece = (i ? std::string(1, '\0') : std::string()) + strings[i];
    for (unsigned char b : piece) h = (h ^ b) * 0x100000001b3ULL;
    width = std::max(width, size_t(std::count_if(strings[i].begin(), strings[i].end(),
                                                 [](char c) { return (c & 0xC0) != 0x80; })));
  }
  return {fmt::format("{} ndarray <U{} [{}] {}", name, width, strings.size(), h)};
}

Expected expect_ints(const std::string& name, const std::vector<int64_t>& values) {
  Expected e;
  uint64_t h = 0;
  for (size_t i = 0; i < values.size(); ++i) h += uint64_t(i + 1) * uint64_t(values[i]), e.sum += double(values[i]);
  e.line = fmt::format("{} list int [{}] {}", name, values.size(), h);
  e.abs_sum = e.sum;
  return e;
}

// What kPythonReader should print for d, in the order write_mmsa writes the keys.
std::vector<Expected> expected_lines(const Dataset& d) {
  std::vector<Expected> out;
  for (const Split* s : {&d.train, &d.valid, &d.test}) {
    auto key = [&](const char* k) { return s->name + "/" + k; };
    out.push_back(expect_strings(key("id"), s->ids));
    out.push_back(expect_strings(key("raw_text"), s->raw_text));
    out.push_back(expect_floats(key("text"), s->text));
    if (s->text_bert.defined()) out.push_back(expect_floats(key("text_bert"), s->text_bert));
    out.push_back(expect_floats(key("audio"), s->audio));
    out.push_back(expect_floats(key("vision"), s->vision));
    if (!s->audio_lengths.empty()) out.push_back(expect_ints(key("audio_lengths"), s->audio_lengths));
    if (!s->vision_lengths.empty()) out.push_back(expect_ints(key("vision_lengths"), s->vision_lengths));
    out.push_back(expect_floats(key("regression_labels"), s->labels));
    if (s->labels_t.defined()) {
      out.push_back(expect_floats(key("regression_labels_T"), s->labels_t));
      out.push_back(expect_floats(key("regression_labels_A"), s->labels_a));
      out.push_back(expect_floats(key("regression_labels_V"), s->labels_v));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("write_mmsa: Python's pickle.load with numpy reads the same shapes, dtypes and bits") {
  const std::string python = python_with_numpy();
  if (python.empty()) {
    MESSAGE("skipped: no python3 with numpy found (tried python3, /usr/bin/python3)");
    return;
  }
  TempDir dir("python");
  const std::string script = dir.file("read.py");
  std::ofstream(script) << kPythonReader;
  for (const auto& [name, bert] : {std::pair<std::string, bool>{"mosi", true}, {"sims", false}}) {
    INFO(name);
    Dataset d = small_synthetic(name, bert);
    d.train.raw_text[0].clear();  // 60 code points in 120 bytes: numpy's width counts code points
    for (int i = 0; i < 60; ++i) d.train.raw_text[0] += "\xc3\xa9";
    const std::string path = dir.file(name + ".pkl");
    write_mmsa(d, path);
    const std::vector<Expected> want = expected_lines(d);
    CHECK(want[0].line.find("train/id ndarray <U19 [32] ") == 0);  // "mosi_train_0003$_$7"
    CHECK(want[1].line.find("train/raw_text ndarray <U60 [32] ") == 0);
    std::istringstream got(run_command(python + " " + script + " " + path + " 2>&1"));
    std::string line;
    size_t i = 0;
    for (; std::getline(got, line); ++i) {
      REQUIRE_MESSAGE(i < want.size(), "python printed an extra line: " << line);
      if (line.find("<f4") == std::string::npos && line.find(" list int ") == std::string::npos) {
        CHECK(line == want[i].line);
        continue;
      }
      // numeric: everything before the float64 sum exactly, the sum to rounding (numpy sums pairwise)
      const size_t cut = line.rfind(' ');
      CHECK(line.substr(0, cut) == want[i].line);
      const double sum = std::stod(line.substr(cut + 1));
      CHECK_MESSAGE(std::fabs(sum - want[i].sum) <= 1e-12 * want[i].abs_sum + 1e-12,
                    want[i].line << ": python sum " << sum << ", C++ " << want[i].sum);
    }
    CHECK(i == want.size());
  }
}

TEST_CASE("msmix data synth NAME --write: the CLI writes a file that reads back as the same dataset") {
  const std::string path = (std::filesystem::temp_directory_path() / "msmix_cli_synth_sims.pkl").string();
  std::ostringstream out, err;
  REQUIRE(run_cli({"data", "synth", "sims", "--write", path, "--seed", "3", "--scale", "0.25"}, out, err) == 0);
  CHECK(out.str().find(path) != std::string::npos);
  Dataset written = load_mmsa(path);
  Dataset direct = load_data_spec("synthetic:sims", DataSpecOptions{3, 0.25, 0});
  REQUIRE(written.train.size() == direct.train.size());
  CHECK(std::equal(written.train.text.data(), written.train.text.data() + written.train.text.numel(),
                   direct.train.text.data()));
  std::filesystem::remove(path);
  // A stray second argument is an error, not ignored.
  std::ostringstream out2, err2;
  CHECK(run_cli({"data", "synthetic:mosi", "extra"}, out2, err2) == 1);
  CHECK(err2.str().find("unexpected argument 'extra'") != std::string::npos);
}
