#include "engine/random.h"

#include <cmath>

#include "engine/cuda_runtime.h"
#include "engine/error.h"
#include "engine/philox.h"

namespace msmix {

float Generator::uniform() {
  uint64_t start = take(1);
  return philox::uniform(seed, start, 0);
}

float Generator::normal() {
  uint64_t start = take(1);
  return philox::normal(seed, start, 0);
}

uint64_t Generator::next_u64() {
  const philox::U32x4 b = philox::block(seed, take(1), 0);
  return (uint64_t(b.v[0]) << 32) | b.v[1];
}

uint64_t Generator::randint(uint64_t n) {
  MSMIX_CHECK(n > 0, "randint: empty range");
  return next_u64() % n;
}

float Generator::gamma(float shape) {
  MSMIX_CHECK(shape > 0, "gamma: shape must be positive, got {}", shape);
  if (shape < 1) {  // boost: Gamma(a) = Gamma(a + 1) * U^(1/a)
    float u = 1.0f - uniform();
    return gamma(shape + 1) * std::pow(u, 1.0f / shape);
  }
  // Marsaglia and Tsang (2000).
  float d = shape - 1.0f / 3.0f, c = 1.0f / std::sqrt(9.0f * d);
  for (;;) {
    float x = normal(), v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    float u = 1.0f - uniform();
    if (std::log(u) < 0.5f * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

float Generator::beta(float a, float b) {
  float x = gamma(a), y = gamma(b);
  return x / (x + y);
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

GraphPhilox& graph_philox() {
  static GraphPhilox g;
  return g;
}

KernelOffset kernel_offset(const Generator& gen, uint64_t offset, bool on_gpu, const char* op) {
  if (!on_gpu || !cuda::capturing()) return {offset, nullptr};
  const GraphPhilox& graph = graph_philox();
  MSMIX_CHECK(graph.device_offset && &gen == &default_generator(),
              "{}: in a captured CUDA graph step only the default generator's draws can be replayed", op);
  return {offset - graph.capture_start, graph.device_offset};
}

void manual_seed(uint64_t seed) { default_generator() = Generator(seed); }

}  // namespace msmix
