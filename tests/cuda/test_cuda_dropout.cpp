// CUDA dropout against the CPU: the same generator state gives the same mask bit for bit (both evaluate
// engine/philox.h on (seed, offset, i)), forward and backward, for odd sizes, a non-zero stream offset and
// p = 1, and NaN / inf inputs (NaN where dropped, as PyTorch's x * mask * scale); Tensor::rand / randn drawn on
// the GPU against the CPU's. Skipped without a GPU.
#include <cmath>
#include <cstring>

#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

TEST_CASE("cuda dropout: the GPU's mask and grads equal the CPU's exactly") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 4000;
  for (Shape shape : {Shape{1}, Shape{3}, Shape{4}, Shape{5}, Shape{7, 33}, Shape{3, 1025}, Shape{0, 2}, Shape{}}) {
    for (float p : {0.1f, 0.5f, 1.0f}) {
      for (uint64_t skip : {0, 3}) {  // blocks of the stream already taken: a non-zero offset
        auto f = [p, skip](const std::vector<Tensor>& t) {
          Generator gen(1234);  // a fresh generator per call: both devices draw the same stretch
          gen.take(skip);
          return dropout(t[0], p, true, gen);
        };
        check_twins(fmt::format("dropout {} p {} skip {}", shape_str(shape), p, skip), f, {leaf(shape, seed++)},
                    Tol{0, 0}, Tol{0, 0});
      }
    }
  }
  // Enough elements that several blocks of threads each take many Philox blocks.
  check_twins("dropout 2M + 3", [](const std::vector<Tensor>& t) {
    Generator gen(99);
    return dropout(t[0], 0.2f, true, gen);
  }, {leaf({(int64_t(1) << 21) + 3}, seed++)}, Tol{0, 0}, Tol{0, 0});
}

TEST_CASE("cuda dropout: a NaN or inf input stays NaN where dropped, as on the CPU (x * 0)") {
  MSMIX_REQUIRE_GPU();
  std::vector<float> v(1031, 1.0f);
  v[0] = std::nanf(""), v[9] = INFINITY, v[500] = -INFINITY, v[1030] = std::nanf("");
  Tensor x = Tensor::from_vector(v, {1031});
  for (float p : {0.5f, 1.0f}) {
    CAPTURE(p);
    Generator g_cpu(3), g_gpu(3);
    const std::vector<float> cpu = dropout(x, p, true, g_cpu).to_vector();
    const std::vector<float> gpu = dropout(x.to(Device::cuda()), p, true, g_gpu).to_vector();
    size_t mismatches = 0;
    for (size_t i = 0; i < v.size(); ++i)
      mismatches += std::isnan(cpu[i]) ? !std::isnan(gpu[i]) : std::memcmp(&cpu[i], &gpu[i], sizeof(float)) != 0;
    CHECK(mismatches == 0);
    if (p == 1.0f)  // every element dropped: nan * 0 and inf * 0 are NaN
      for (size_t i : {size_t(0), size_t(9), size_t(500), size_t(1030)}) CHECK(std::isnan(gpu[i]));
  }
}

TEST_CASE("cuda random: Tensor::rand and randn draw on the GPU the CPU's numbers and advance the generator alike") {
  MSMIX_REQUIRE_GPU();
  for (Shape shape : {Shape{1}, Shape{3}, Shape{5, 7}, Shape{1025, 3}, Shape{0, 4}}) {
    CAPTURE(shape_str(shape));
    for (uint64_t skip : {0, 5}) {  // a non-zero offset
      Generator cpu_gen(77), gpu_gen(77);
      cpu_gen.take(skip), gpu_gen.take(skip);
      Tensor uc = Tensor::rand(shape, cpu_gen, -2.0f, 3.0f),
             ug = Tensor::rand(shape, gpu_gen, -2.0f, 3.0f, Device::cuda());
      Tensor nc = Tensor::randn(shape, cpu_gen, 0.5f, 2.0f),
             ng = Tensor::randn(shape, gpu_gen, 0.5f, 2.0f, Device::cuda());
      REQUIRE(ug.is_cuda());
      REQUIRE(ng.is_cuda());
      CHECK(cpu_gen.offset == gpu_gen.offset);
      // The same Philox elements, scaled with the same two roundings: rand's bits are equal (unless a NATIVE=1
      // build let the compiler fuse the CPU loop's multiply-add); randn's may move with the device's log / cos.
      const bool native = std::string(MSMIX_BUILD_FLAGS).find("NATIVE=1") != std::string::npos;
      check_close(ug, uc, 0, native ? 1e-6 : 0, "rand");
      check_close(ng, nc, 1e-5, 1e-5, "randn");
    }
  }
}
