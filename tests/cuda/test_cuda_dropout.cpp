// CUDA dropout against the CPU: the same generator state gives the same mask bit for bit (both evaluate
// engine/philox.h on (seed, offset, i)), forward and backward, for odd sizes, a non-zero stream offset and
// p = 1. Skipped without a GPU.
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
