#include "engine/allocator.h"
#include "engine/cuda_runtime.h"
#include "engine/philox.h"
#include "tests/testing.h"

using namespace msmix;
using msmix::testing::check_throws_with;

TEST_CASE("tensor creation and properties") {
  Tensor z = Tensor::zeros({2, 3});
  CHECK(z.dim() == 2);
  CHECK(z.numel() == 6);
  CHECK(z.size(-1) == 3);
  CHECK(z.device() == Device::cpu());
  for (float v : z.to_vector()) CHECK(v == 0);
  for (float v : Tensor::full({4}, 2.5f).to_vector()) CHECK(v == 2.5f);
  CHECK(Tensor::arange(5).to_vector() == std::vector<float>{0, 1, 2, 3, 4});
  CHECK(Tensor::arange(1, 2, 0.25f).to_vector() == std::vector<float>{1, 1.25f, 1.5f, 1.75f});
  CHECK(Tensor::scalar(3).dim() == 0);
  CHECK(Tensor::scalar(3).item() == 3);
  CHECK(Tensor::zeros({0, 5}).numel() == 0);
  check_throws_with([] { Tensor::from_vector({1, 2, 3}, {2, 2}); }, {"from_vector", "[2, 2]"});
  check_throws_with([] { Tensor::zeros({2, 2}).item(); }, {"item", "[2, 2]"});
  check_throws_with([] { Tensor::zeros({2}).size(3); }, {"size", "rank 1"});
  check_throws_with([] { Tensor().shape(); }, {"undefined"});
  check_throws_with([] { Tensor::zeros({-1, 2}); }, {"negative"});
}

TEST_CASE("storage is shared by handles and detach, not by clone") {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3});
  Tensor b = a;
  Tensor d = a.detach();
  Tensor c = a.clone();
  a.data()[0] = 9;
  CHECK(b.to_vector()[0] == 9);
  CHECK(d.to_vector()[0] == 9);
  CHECK(c.to_vector()[0] == 1);
}

TEST_CASE("printing shows shape, device and values") {
  std::string s = Tensor::from_vector({1, 2, 3, 4}, {2, 2}).str();
  CHECK(s.find("[2, 2] cpu") != std::string::npos);
  CHECK(s.find("[[1, 2],") != std::string::npos);
  CHECK(Tensor::arange(100).str().find("...") != std::string::npos);
}

TEST_CASE("device parsing and CUDA absence") {
  CHECK(Device::parse("cuda:1") == Device::cuda(1));
  CHECK(Device::parse("cpu").is_cpu());
  check_throws_with([] { Device::parse("tpu"); }, {"tpu"});
  if (cuda::device_count() == 0) {
    check_throws_with([] { Tensor::zeros({2}).to(Device::cuda()); }, {"cuda:0", "GPU"});
  }
}

TEST_CASE("Philox 4x32-10 matches the Random123 known-answer vectors") {
  // Known-answer tests from Random123's kat_vectors (philox4x32, 10 rounds).
  philox::U32x4 zero = {{0, 0, 0, 0}};
  philox::U32x4 r = philox::philox4x32_10(zero, 0, 0);
  CHECK(r.v[0] == 0x6627e8d5u);
  CHECK(r.v[1] == 0xe169c58du);
  CHECK(r.v[2] == 0xbc57ac4cu);
  CHECK(r.v[3] == 0x9b00dbd8u);
  philox::U32x4 ones = {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}};
  r = philox::philox4x32_10(ones, 0xffffffffu, 0xffffffffu);
  CHECK(r.v[0] == 0x408f276du);
  CHECK(r.v[1] == 0x41c83b0eu);
  CHECK(r.v[2] == 0xa20bc7c6u);
  CHECK(r.v[3] == 0x6d5451fdu);
  philox::U32x4 pi = {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
  r = philox::philox4x32_10(pi, 0xa4093822u, 0x299f31d0u);
  CHECK(r.v[0] == 0xd16cfe09u);
  CHECK(r.v[1] == 0x94fdccebu);
  CHECK(r.v[2] == 0x5001e420u);
  CHECK(r.v[3] == 0x24126ea1u);
}

TEST_CASE("random draws are reproducible, order independent, and well distributed") {
  Generator g1(42), g2(42);
  CHECK(Tensor::randn({1000}, g1).to_vector() == Tensor::randn({1000}, g2).to_vector());
  CHECK(g1.offset == 500);
  // The second draw continues the stream: it differs from the first.
  Generator fresh(42);
  CHECK(Tensor::rand({8}, g1).to_vector() != Tensor::rand({8}, fresh).to_vector());
  // Element i depends only on (seed, offset, i).
  Tensor u = Tensor::rand({10}, *std::make_unique<Generator>(7));
  for (int i = 0; i < 10; ++i) CHECK(u.to_vector()[i] == philox::uniform(7, 0, i));
  Generator g(3);
  std::vector<float> n = Tensor::randn({200000}, g).to_vector();
  double m = 0, v = 0;
  for (float x : n) m += x;
  m /= n.size();
  for (float x : n) v += (x - m) * (x - m);
  v /= n.size();
  CHECK(std::fabs(m) < 0.01);
  CHECK(std::fabs(v - 1) < 0.01);
  std::vector<float> uu = Tensor::rand({200000}, g, -1, 3).to_vector();
  CHECK(*std::min_element(uu.begin(), uu.end()) >= -1);
  CHECK(*std::max_element(uu.begin(), uu.end()) < 3);
  // Beta(2, 2) has mean 1/2 and variance 1/20.
  double bm = 0, bv = 0;
  std::vector<double> bs;
  for (int i = 0; i < 20000; ++i) bs.push_back(g.beta(2, 2));
  for (double x : bs) bm += x;
  bm /= bs.size();
  for (double x : bs) bv += (x - bm) * (x - bm);
  bv /= bs.size();
  CHECK(std::fabs(bm - 0.5) < 0.01);
  CHECK(std::fabs(bv - 0.05) < 0.003);
}

TEST_CASE("caching allocator reuses blocks") {
  Device cpu = Device::cpu();
  { Tensor warm = Tensor::empty({1000}); }
  AllocatorStats before = allocator_stats(cpu);
  for (int i = 0; i < 100; ++i) Tensor t = Tensor::empty({1000});
  AllocatorStats after = allocator_stats(cpu);
  CHECK(after.in_use == before.in_use);
  if (std::getenv("MSMIX_ALLOC") == nullptr) CHECK(after.system_allocs == before.system_allocs);
}

// The pools CUDA graphs use, checked on the CPU allocator (the same class serves both devices): a pool's block
// is never handed out outside the pool, comes back inside it, and joins the shared cache on release.
TEST_CASE("caching allocator: a private pool keeps its blocks until released") {
  const Device cpu = Device::cpu();
  const size_t bytes = (size_t(7) << 20) + 3;  // a size class nothing else here uses
  const size_t cls = size_t(8) << 20;            // its size class
  const size_t in_use = allocator_stats(cpu).in_use;
  const int pool = allocator_new_pool(cpu);
  allocator_use_pool(cpu, pool);
  void* a = allocate(cpu, bytes);
  allocator_use_pool(cpu, 0);
  deallocate(cpu, a, bytes);  // back to the pool's own free list
  CHECK(allocator_stats(cpu).in_use == in_use + cls);  // still the graph's: in use (and in the peak)
  void* b = allocate(cpu, bytes);
  CHECK(b != a);  // the shared cache cannot have it
  allocator_use_pool(cpu, pool);
  void* c = allocate(cpu, bytes);
  CHECK(c == a);  // the pool reuses it
  void* d = allocate(cpu, bytes);
  CHECK(allocator_stats(cpu).in_use == in_use + 3 * cls);  // b, c (= a) and d
  allocator_use_pool(cpu, 0);
  deallocate(cpu, d, bytes);
  CHECK(allocator_stats(cpu).in_use == in_use + 3 * cls);
  allocator_release_pool(cpu, pool);  // d's block joins the shared cache; c is still live
  CHECK(allocator_stats(cpu).in_use == in_use + 2 * cls);
  void* e = allocate(cpu, bytes);
  if (std::getenv("MSMIX_ALLOC") == nullptr) CHECK(e == d);
  deallocate(cpu, c, bytes);  // freed after the release: the shared cache's too
  void* f = allocate(cpu, bytes);
  if (std::getenv("MSMIX_ALLOC") == nullptr) CHECK(f == c);
  for (void* p : {b, e, f}) deallocate(cpu, p, bytes);
  CHECK(allocator_stats(cpu).in_use == in_use);
  testing::check_throws_with([&] { allocator_use_pool(cpu, pool); }, {"allocator", "no pool"});
}

#include "engine/cpu_flags.h"

TEST_CASE("flush-denormal mode turns denormal results into zeros and back") {
  volatile float tiny = 1e-30f;
  set_flush_denormal(true);
  float flushed = tiny * 1e-10f;  // 1e-40 is a denormal
  set_flush_denormal(false);
  float kept = tiny * 1e-10f;
  CHECK(flushed == 0.0f);
  CHECK(kept > 0.0f);
}
