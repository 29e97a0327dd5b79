// safetensors checkpoints: round trip and file layout, atomic writes, the PyTorch-written fixture
// (tests/golden/make_safetensors_fixture.py via scripts/pth_to_safetensors.py), hostile files, and loading
// into a Module with matching, missing, unexpected and mis-shaped names.
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/checkpoint.h"
#include "engine/cuda_runtime.h"
#include "engine/philox.h"
#include "models/checkpoint_io.h"
#include "tests/files.h"
#include "tests/testing.h"

using namespace msmix;
using msmix::testing::check_throws_with;
using msmix::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// A safetensors file from a header text and a data buffer; header_len overrides the length field.
std::string make_file(const std::string& header, const std::string& data, int64_t header_len = -1) {
  uint64_t n = header_len < 0 ? header.size() : uint64_t(header_len);
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char((n >> (8 * i)) & 0xff);  // little-endian
  return bytes + header + data;
}

std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size() * 4);
  return out;
}

std::string fixture_path() {
  for (std::string p : {"golden/checkpoint/fixture.safetensors", "tests/golden/checkpoint/fixture.safetensors"})
    if (fs::exists(p)) return p;
  FAIL("fixture.safetensors not found (run the tests from tests/ or the repository root)");
  return "";
}

// Little modules with PyTorch's names for a Linear(3, 2) and a BatchNorm1d(2).
struct TinyLinear : Module {
  Tensor weight, bias;
  TinyLinear() {
    weight = register_parameter("weight", Tensor::zeros({2, 3}));
    bias = register_parameter("bias", Tensor::zeros({2}));
  }
};
struct TinyBatchNorm : Module {
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  TinyBatchNorm() {
    weight = register_parameter("weight", Tensor::ones({2}));
    bias = register_parameter("bias", Tensor::zeros({2}));
    running_mean = register_buffer("running_mean", Tensor::zeros({2}));
    running_var = register_buffer("running_var", Tensor::ones({2}));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::scalar(0));
  }
};
struct TinyNet : Module {
  std::shared_ptr<TinyLinear> fc;
  std::shared_ptr<TinyBatchNorm> bn;
  TinyNet() {
    fc = register_module("fc", std::make_shared<TinyLinear>());
    bn = register_module("bn", std::make_shared<TinyBatchNorm>());
  }
};
struct Wrapped : Module {  // names "net.fc.weight", ... as in the fixture
  std::shared_ptr<TinyNet> net;
  Wrapped() { net = register_module("net", std::make_shared<TinyNet>()); }
};

// A TinyNet state with distinct values everywhere.
TensorDict tiny_state() {
  return {{"fc.weight", Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3})},
          {"fc.bias", Tensor::from_vector({-1, -2}, {2})},
          {"bn.weight", Tensor::from_vector({0.5f, 0.25f}, {2})},
          {"bn.bias", Tensor::from_vector({7, 8}, {2})},
          {"bn.running_mean", Tensor::from_vector({0.1f, 0.2f}, {2})},
          {"bn.running_var", Tensor::from_vector({3, 4}, {2})},
          {"bn.num_batches_tracked", Tensor::scalar(11)}};
}

}  // namespace

TEST_CASE("checkpoint: save then load round-trips values, shapes and metadata") {
  TempDir dir;
  Generator gen(7);
  TensorDict saved = {{"b.matrix", Tensor::randn({3, 5}, gen)},
                      {"a.scalar", Tensor::scalar(-2.5f)},
                      {"c.empty", Tensor::zeros({0, 4})},
                      {"special", Tensor::from_vector({0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f}, {6})}};
  saved["b.matrix"].set_requires_grad(true);  // a parameter saves like any tensor
  Metadata meta = {{"epoch", "12"}, {"note", "ünïcode ok"}};
  save_safetensors(dir.file("x.safetensors"), saved, meta);

  Checkpoint ck = load_safetensors(dir.file("x.safetensors"));
  CHECK(ck.metadata == meta);
  REQUIRE(ck.tensors.size() == saved.size());
  for (const auto& [name, t] : saved) {
    REQUIRE(ck.tensors.count(name));
    const Tensor& got = ck.tensors.at(name);
    CHECK(got.shape() == t.shape());
    CHECK(got.device() == Device::cpu());
    CHECK(!got.requires_grad());
    CHECK(bits(got.to_vector()) == bits(t.to_vector()));  // bit-exact, -0 and NaN included
    CHECK(ck.dtypes.at(name) == "F32");
  }

  // Without metadata the header has no "__metadata__"; an ordered list saves sorted by name.
  save_safetensors(dir.file("y.safetensors"), TensorList{{"z", Tensor::ones({1})}, {"a", Tensor::zeros({2})}});
  Checkpoint y = load_safetensors(dir.file("y.safetensors"));
  CHECK(y.metadata.empty());
  CHECK(y.tensors.at("z").to_vector() == std::vector<float>{1});
  check_throws_with(
      [&] {
        save_safetensors(dir.file("d.safetensors"), TensorList{{"a", Tensor::ones({1})}, {"a", Tensor::ones({1})}});
      },
      {"save_safetensors", "'a' given twice"});
  check_throws_with(
      [&] {
        save_safetensors(dir.file("u.safetensors"), TensorDict{{"a", Tensor()}});
      },
      {"'a' is undefined"});
  check_throws_with(
      [&] {
        save_safetensors(dir.file("m.safetensors"), TensorDict{{"__metadata__", Tensor::ones({1})}});
      },
      {"bad tensor name"});
}

TEST_CASE("checkpoint: the written bytes follow the format (length, padding, alignment, order, offsets)") {
  TempDir dir;
  TensorDict saved = {{"w", Tensor::arange(5)}, {"a", Tensor::ones({2, 2})}, {"m", Tensor::scalar(3)}};
  save_safetensors(dir.file("x.safetensors"), saved, {{"k", "v"}});
  std::string bytes = read_bytes(dir.file("x.safetensors"));
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  CHECK(n % 8 == 0);  // so the data buffer (at 8 + n) is 8-byte aligned
  REQUIRE(8 + n <= bytes.size());
  std::string header = bytes.substr(8, n);
  CHECK(header.front() == '{');
  size_t close = header.rfind('}');
  CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);  // padded with spaces only
  CHECK(close + 8 > n);                                                    // and by fewer than 8

  nlohmann::ordered_json j = nlohmann::ordered_json::parse(header);
  CHECK(j["__metadata__"] == nlohmann::ordered_json{{"k", "v"}});
  std::vector<std::string> order;
  uint64_t offset = 0;
  for (auto& [name, v] : j.items()) {
    if (name == "__metadata__") continue;
    order.push_back(name);
    CHECK(v["dtype"] == "F32");
    CHECK(v["shape"].get<Shape>() == saved.at(name).shape());
    uint64_t size = uint64_t(saved.at(name).numel()) * 4;
    CHECK(v["data_offsets"] == nlohmann::ordered_json{offset, offset + size});  // packed in name order
    std::vector<float> values(saved.at(name).numel());
    std::memcpy(values.data(), bytes.data() + 8 + n + offset, size);
    CHECK(values == saved.at(name).to_vector());
    offset += size;
  }
  CHECK(order == std::vector<std::string>{"a", "m", "w"});
  CHECK(bytes.size() == 8 + n + offset);
}

TEST_CASE("checkpoint: writes are atomic: no temp file left, never a partial target") {
  TempDir dir;
  std::string target = dir.file("best.safetensors");
  save_safetensors(target, TensorDict{{"a", Tensor::ones({3})}});
  CHECK(dir.names() == std::vector<std::string>{"best.safetensors"});
  save_safetensors(target, TensorDict{{"a", Tensor::full({3}, 2)}});  // replaces
  CHECK(load_safetensors(target).tensors.at("a").to_vector() == std::vector<float>{2, 2, 2});
  CHECK(dir.names() == std::vector<std::string>{"best.safetensors"});
  std::string before = read_bytes(target);

  // A failure before writing leaves the old file as it was.
  CHECK_THROWS_AS(save_safetensors(target, TensorDict{{"a", Tensor()}}), Error);
  CHECK(read_bytes(target) == before);
  // A failure after the temp file is written (the target is a folder, so rename fails) removes the temp file.
  fs::create_directory(dir.path / "taken");
  fs::create_directory(dir.path / "taken" / "inside");
  check_throws_with([&] { save_safetensors(dir.file("taken"), TensorDict{{"a", Tensor::ones({3})}}); },
                    {"save_safetensors", "cannot replace", "taken"});
  CHECK(dir.names() == std::vector<std::string>{"best.safetensors", "taken"});
  CHECK(read_bytes(target) == before);

  check_throws_with([&] { save_safetensors(dir.file("no/such/folder/x.safetensors"), TensorDict{}); },
                    {"save_safetensors", "folder", "no/such/folder", "does not exist"});
  if (::geteuid() != 0) {  // root may write anywhere
    fs::create_directory(dir.path / "readonly");
    fs::permissions(dir.path / "readonly", fs::perms::owner_read | fs::perms::owner_exec);
    check_throws_with([&] { save_safetensors(dir.file("readonly/x.safetensors"), TensorDict{}); },
                      {"save_safetensors", "cannot create a file in folder", "readonly"});
    fs::permissions(dir.path / "readonly", fs::perms::owner_all);
  }
}

TEST_CASE("checkpoint: CUDA tensors are copied to the host when saved") {
  if (cuda::device_count() == 0) {
    MESSAGE("no GPU: skipped");
    return;
  }
  TempDir dir;
  Tensor x = Tensor::from_vector({1.5f, -2, 3}, {3}).to(Device::cuda());
  save_safetensors(dir.file("gpu.safetensors"), TensorDict{{"x", x}});
  Checkpoint ck = load_safetensors(dir.file("gpu.safetensors"));
  CHECK(ck.tensors.at("x").device() == Device::cpu());
  CHECK(ck.tensors.at("x").to_vector() == std::vector<float>{1.5f, -2, 3});
}

TEST_CASE("checkpoint: the PyTorch-written fixture loads with the expected values and dtypes") {
  Checkpoint ck = load_safetensors(fixture_path());
  auto values = [&](const std::string& name) { return ck.tensors.at(name).to_vector(); };
  auto shape = [&](const std::string& name) { return ck.tensors.at(name).shape(); };
  CHECK(ck.tensors.size() == 19);
  CHECK(ck.metadata.at("format") == "pt");
  CHECK(ck.metadata.at("source") == "fixture.pth");

  CHECK(shape("net.fc.weight") == Shape{2, 3});
  CHECK(values("net.fc.weight") == std::vector<float>{-1.25f, -0.75f, -0.25f, 0.25f, 0.75f, 1.25f});
  CHECK(values("net.fc.bias") == std::vector<float>{0.25f, -0.75f});
  CHECK(values("net.bn.running_mean") == std::vector<float>{0.1f, -0.2f});
  CHECK(values("net.bn.running_var") == std::vector<float>{0.9f, 1.1f});
  CHECK(shape("net.bn.num_batches_tracked") == Shape{});
  CHECK(values("net.bn.num_batches_tracked") == std::vector<float>{3});
  CHECK(ck.dtypes.at("net.bn.num_batches_tracked") == "I64");

  CHECK(ck.dtypes.at("dtypes.f64") == "F64");
  CHECK(values("dtypes.f64") == std::vector<float>{float(0.1), float(1.0 / 3.0), -INFINITY, 2.5f});
  CHECK(ck.dtypes.at("dtypes.f16") == "F16");
  CHECK(shape("dtypes.f16") == Shape{3, 3});
  std::vector<float> f16 = values("dtypes.f16");
  CHECK(std::vector<float>(f16.begin(), f16.end() - 1) ==
        std::vector<float>{1, -2, 0.5f, 65504, std::ldexp(1.0f, -24), std::ldexp(1.0f, -14), INFINITY, -INFINITY});
  CHECK(std::isnan(f16.back()));
  CHECK(ck.dtypes.at("dtypes.bf16") == "BF16");
  CHECK(values("dtypes.bf16") == std::vector<float>{1, -3.5f, std::ldexp(1.0f, 100), 1.0f / 128});
  CHECK(values("dtypes.i64") == std::vector<float>{-16777216, -1, 0, 7, 16777216});
  CHECK(values("dtypes.i32") == std::vector<float>{-5, 100000});
  CHECK(values("dtypes.i16") == std::vector<float>{-32768, 32767});
  CHECK(values("dtypes.i8") == std::vector<float>{-128, 0, 127});
  CHECK(values("dtypes.u8") == std::vector<float>{0, 1, 255});
  CHECK(ck.dtypes.at("dtypes.bool") == "BOOL");
  CHECK(values("dtypes.bool") == std::vector<float>{1, 0, 0, 1});
  CHECK(shape("dtypes.empty") == Shape{0, 3});
  CHECK(shape("dtypes.scalar") == Shape{});
  CHECK(values("dtypes.scalar") == std::vector<float>{42.5f});
  CHECK(shape("dtypes.transposed") == Shape{3, 2});
  CHECK(values("dtypes.transposed") == std::vector<float>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("checkpoint: hostile files give a clear error naming the file, the tensor and the problem") {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  auto expect = [&](const std::string& bytes, std::vector<std::string> parts) {
    write_bytes(path, bytes);
    parts.push_back("load_safetensors");
    parts.push_back(path);
    check_throws_with([&] { load_safetensors(path); }, parts);
  };
  const std::string eight(8, 'x');  // 8 data bytes
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
    return fmt::format(R"("{}": {{"dtype": "{}", "shape": {}, "data_offsets": [{}, {}]}})", name, dtype, shape, b, e);
  };

  // the file and its length field
  expect("abc", {"too short"});
  expect(make_file("{}", "", 1000), {"header length 1000 is larger than the file"});
  expect(make_file("{}", "", int64_t(1) << 62), {"larger than the file"});
  expect(make_file("{}", "") + "garbage", {"the last 7 bytes of the data buffer belong to no tensor"});
  check_throws_with([&] { load_safetensors(dir.file("missing.safetensors")); }, {"cannot open", "missing.safetensors"});
  check_throws_with([&] { load_safetensors(dir.path.string()); }, {"not a regular file"});
  // the JSON itself
  expect(make_file("[1, 2]", ""), {"header is not a JSON object"});
  expect(make_file("{\"a\": ", ""), {"not valid JSON"});
  expect(make_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [[[1]]], \"data_offsets\": [0, 0]}}", ""),
         {"nests deeper"});
  expect(make_file("{" + entry("a", "F32", "[2]", 0, 8) + ", " + entry("a", "F32", "[2]", 0, 8) + "}", eight),
         {"tensor 'a' appears twice"});
  expect(make_file(R"({"a": {"dtype": "F32", "dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", eight),
         {"field 'dtype' appears twice"});
  expect(make_file(R"({"__metadata__": {"epoch": 3}})", ""), {"__metadata__ 'epoch' is not a string"});
  expect(make_file(R"({"__metadata__": [1]})", ""), {"__metadata__ is not an object"});
  // one entry's fields
  expect(make_file(R"({"a": 5})", ""), {"tensor 'a'", "not an object"});
  expect(make_file(R"({"a": {"shape": [2], "data_offsets": [0, 8]}})", eight), {"tensor 'a'", "no dtype"});
  expect(make_file(R"({"a": {"dtype": "F32", "data_offsets": [0, 8]}})", eight), {"tensor 'a'", "no shape"});
  expect(make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", eight),
         {"tensor 'a'", "data_offsets must be [begin, end]"});
  expect(make_file("{" + entry("a", "C64", "[1]", 0, 8) + "}", eight), {"tensor 'a'", "unsupported dtype 'C64'"});
  expect(make_file("{" + entry("a", "F8_E4M3", "[8]", 0, 8) + "}", eight), {"unsupported dtype 'F8_E4M3'"});
  expect(make_file("{" + entry("a", "F32", "[-2]", 0, 8) + "}", eight), {"tensor 'a'", "shape dimension is negative"});
  expect(make_file("{" + entry("a", "F32", "[2.5]", 0, 8) + "}", eight), {"tensor 'a'", "must be an integer"});
  expect(make_file("{" + entry("a", "F32", "[1099511627776, 1099511627776]", 0, 8) + "}", eight),
         {"tensor 'a'", "needs more bytes than the buffer holds"});
  expect(make_file("{" + entry("a", "F32", "[4611686018427387905, 8, 0]", 0, 0) + "}", ""),
         {"tensor 'a'", "too large"});
  expect(make_file("{" + entry("a", "F32", "[18446744073709551616]", 0, 8) + "}", eight), {"tensor 'a'", "integer"});
  // offsets
  expect(make_file("{" + entry("a", "F32", "[4]", 0, 16) + "}", eight),
         {"tensor 'a'", "run past the data buffer (8 bytes)"});
  expect(make_file("{" + entry("a", "F32", "[0]", 8, 0) + "}", eight), {"tensor 'a'", "end before begin"});
  expect(make_file("{" + entry("a", "F32", "[2]", 0, 4) + "}", eight), {"tensor 'a'", "needs 8 bytes", "hold 4"});
  expect(make_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", eight),
         {"tensor 'a'", "negative"});
  expect(make_file("{" + entry("a", "F32", "[2]", 0, 8) + ", " + entry("b", "F32", "[2]", 4, 12) + "}",
                   std::string(12, 'x')),
         {"tensor 'b' [4, 12) overlaps tensor 'a' [0, 8)"});
  expect(make_file("{" + entry("a", "F32", "[1]", 0, 4) + ", " + entry("b", "F32", "[1]", 8, 12) + "}",
                   std::string(12, 'x')),
         {"bytes [4, 8) of the data buffer belong to no tensor", "'b'"});
  // integer values float32 cannot hold exactly
  std::string big(8, '\0');
  int64_t v = (int64_t(1) << 24) + 1;
  std::memcpy(big.data(), &v, 8);
  expect(make_file("{" + entry("ids", "I64", "[1]", 0, 8) + "}", big),
         {"tensor 'ids' (I64)", "value 16777217 at index 0", "beyond +-2^24"});
  std::string big32(8, '\0');
  int32_t w = -(1 << 25);
  std::memcpy(big32.data() + 4, &w, 4);
  expect(make_file("{" + entry("ids", "I32", "[2]", 0, 8) + "}", big32), {"(I32)", "value -33554432 at index 1"});
  expect(make_file("{" + entry("u", "U64", "[1]", 0, 8) + "}", std::string(8, '\xff')),
         {"(U64)", "value 18446744073709551615"});
  // ... except a counter buffer, which is rounded
  write_bytes(path, make_file("{" + entry("bn.num_batches_tracked", "I64", "[]", 0, 8) + "}", big));
  CHECK(load_safetensors(path).tensors.at("bn.num_batches_tracked").item() == 16777216.0f);
}

TEST_CASE("checkpoint: corrupted and truncated copies of a valid file never crash the reader") {
  std::string good = read_bytes(fixture_path());
  REQUIRE(good.size() > 100);
  TempDir dir;
  std::string path = dir.file("fuzz.safetensors");
  auto try_load = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    try {
      load_safetensors(path);
    } catch (const Error&) {  // the only allowed failure
    }
  };
  for (size_t len = 0; len < good.size(); len += 7) try_load(good.substr(0, len));
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  for (int round = 0; round < 300; ++round) {
    std::string bytes = good;
    for (int k = 0; k < 3; ++k) {  // flip a few header bytes to digits, brackets, quotes or random bytes
      uint32_t r = philox::block(2024, 0, uint64_t(round * 3 + k)).v[0];
      size_t at = 8 + r % header_len;
      const char pool[] = "0123456789-[]{}\",:e. x\xff";
      bytes[at] = (r >> 20) % 2 ? pool[(r >> 8) % (sizeof(pool) - 1)] : char(r >> 24);
    }
    try_load(bytes);
  }
  CHECK(true);
}

TEST_CASE("checkpoint: load_into a module: matching, missing, unexpected and mis-shaped names") {
  TempDir dir;
  auto save = [&](const std::string& name, const TensorDict& state) {
    save_safetensors(dir.file(name), state);
    return dir.file(name);
  };

  SUBCASE("matching names load every value; save_module writes what load_into reads") {
    std::string path = save("tiny.safetensors", tiny_state());
    TinyNet net;
    LoadReport r = load_into(net, path);
    CHECK(r.loaded.size() == 7);
    CHECK(r.notes.empty());
    for (const auto& [name, t] : net.state_dict()) CHECK(t.to_vector() == tiny_state().at(name).to_vector());
    CHECK(net.fc->weight.requires_grad());  // still a parameter
    CHECK(net.bn->num_batches_tracked.item() == 11);

    save_module(net, dir.file("again.safetensors"), {{"epoch", "1"}});
    TinyNet other;
    load_into(other, dir.file("again.safetensors"));
    CHECK(other.fc->bias.to_vector() == std::vector<float>{-1, -2});
    CHECK(load_safetensors(dir.file("again.safetensors")).metadata.at("epoch") == "1");
  }
  SUBCASE("a missing name is an error when strict, a note otherwise") {
    TensorDict state = tiny_state();
    state.erase("fc.bias");
    std::string path = save("missing.safetensors", state);
    TinyNet net;
    check_throws_with([&] { load_into(net, path); }, {"load_into", path, "missing [fc.bias]", "unexpected []"});
    CHECK(net.fc->weight.to_vector() == std::vector<float>(6, 0));  // nothing copied on failure
    LoadReport r = load_into(net, path, /*strict=*/false);
    CHECK(r.missing == std::vector<std::string>{"fc.bias"});
    REQUIRE(r.notes.size() == 1);
    CHECK(r.notes[0].find("left as initialised: fc.bias") != std::string::npos);
    CHECK(net.fc->bias.to_vector() == std::vector<float>{0, 0});
    CHECK(net.fc->weight.to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  }
  SUBCASE("an absent num_batches_tracked keeps the module's value with a note, even when strict") {
    TensorDict state = tiny_state();
    state.erase("bn.num_batches_tracked");
    std::string path = save("old.safetensors", state);
    TinyNet net;
    net.bn->num_batches_tracked.fill_(5);
    LoadReport r = load_into(net, path);
    CHECK(net.bn->num_batches_tracked.item() == 5);
    CHECK(r.missing.empty());
    REQUIRE(r.notes.size() == 1);
    CHECK(r.notes[0].find("kept the module's value: bn.num_batches_tracked") != std::string::npos);
  }
  SUBCASE("an unexpected name is an error when strict, ignored with a note otherwise") {
    TensorDict state = tiny_state();
    state["fc.extra"] = Tensor::ones({1});
    std::string path = save("extra.safetensors", state);
    TinyNet net;
    check_throws_with([&] { load_into(net, path); }, {"missing []", "unexpected [fc.extra]"});
    LoadReport r = load_into(net, path, false);
    CHECK(r.unexpected == std::vector<std::string>{"fc.extra"});
    CHECK(r.notes.at(0).find("ignored: fc.extra") != std::string::npos);
  }
  SUBCASE("a mis-shaped name is an error either way, listed with both shapes") {
    TensorDict state = tiny_state();
    state["fc.weight"] = Tensor::ones({3, 2});
    state.erase("bn.bias");
    std::string path = save("shape.safetensors", state);
    TinyNet net;
    for (bool strict : {true, false})
      check_throws_with([&] { load_into(net, path, strict); }, {"mis-shaped [fc.weight (module [2, 3], file [3, 2])]"});
    check_throws_with([&] { load_into(net, path, true); }, {"missing [bn.bias]"});
    CHECK(net.fc->bias.to_vector() == std::vector<float>{0, 0});  // nothing copied on failure
  }
  SUBCASE("names with MMSA's 'Model.' wrapper prefix get a hint") {
    TensorDict state;
    for (auto& [name, t] : tiny_state()) state["Model." + name] = t;
    std::string path = save("mmsa.safetensors", state);
    TinyNet net;
    check_throws_with([&] { load_into(net, path); }, {"unexpected [Model.bn.bias", "--strip-prefix Model."});
  }
  SUBCASE("the PyTorch fixture: int64 num_batches_tracked converts with a note") {
    Wrapped model;
    check_throws_with([&] { load_into(model, fixture_path()); }, {"unexpected [dtypes.bf16, dtypes.bool"});
    LoadReport r = load_into(model, fixture_path(), /*strict=*/false);
    CHECK(r.loaded.size() == 7);
    CHECK(model.net->bn->num_batches_tracked.item() == 3);
    CHECK(model.net->bn->running_var.to_vector() == std::vector<float>{0.9f, 1.1f});
    CHECK(model.net->fc->weight.to_vector() == std::vector<float>{-1.25f, -0.75f, -0.25f, 0.25f, 0.75f, 1.25f});
    bool noted = false;
    for (auto& note : r.notes)
      noted |= note.find("converted to float32: net.bn.num_batches_tracked (I64)") != std::string::npos;
    CHECK(noted);
  }
}

TEST_CASE("checkpoint: is_counter_buffer") {
  CHECK(is_counter_buffer("num_batches_tracked"));
  CHECK(is_counter_buffer("Model.bn.num_batches_tracked"));
  CHECK(!is_counter_buffer("bn.num_batches_tracked_x"));
  CHECK(!is_counter_buffer("bn.xnum_batches_tracked"));
  CHECK(!is_counter_buffer("weight"));
}
