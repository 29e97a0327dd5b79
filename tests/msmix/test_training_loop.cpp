// End to end: a small MLP built from raw ops (linear, relu, mse_loss) trained with Adam on a synthetic
// regression target. The loss must fall at least 10x in 200 steps, and the loop must run in flat memory:
// after the first steps every tensor a step needs comes from the caching allocator's free lists.
#include <cstdlib>
#include <string>

#include "engine/allocator.h"
#include "msmix/grad_clip.h"
#include "msmix/optimizer.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

struct MLP {
  Tensor w1, b1, w2, b2;  // [H, D], [H], [1, H], [1]
  MLP(int64_t d, int64_t h, uint64_t seed)
      : w1(leaf({h, d}, seed, 1.0f / std::sqrt(float(d)))),
        b1(leaf({h}, seed + 1, 0.1f)),
        w2(leaf({1, h}, seed + 2, 1.0f / std::sqrt(float(h)))),
        b2(leaf({1}, seed + 3, 0.1f)) {}
  Tensor forward(const Tensor& x) const { return linear(relu(linear(x, w1, b1)), w2, b2); }  // [N, D] -> [N, 1]
  std::vector<Tensor> parameters() const { return {w1, b1, w2, b2}; }
};

}  // namespace

TEST_CASE("training loop: Adam drives an MLP's MSE down 10x in 200 steps, in flat memory") {
  const int64_t N = 64, D = 8, H = 32;
  Generator gen(7);
  Tensor x = Tensor::randn({N, D}, gen);
  Tensor y;
  {
    NoGradGuard no_grad;
    MLP teacher(D, 16, 100);  // a realisable nonlinear target, scaled to variance ~1
    y = mul(teacher.forward(x), 2.0f).detach();
  }
  MLP model(D, H, 200);
  AdamOptions o;
  o.lr = 1e-2f;
  Adam opt(model.parameters(), o);

  const Device cpu = Device::cpu();
  const char* alloc = std::getenv("MSMIX_ALLOC");
  const bool caching = !(alloc && std::string(alloc) == "system");
  float first_loss = 0, last_loss = 0, grad_norm = 0;
  AllocatorStats at20;
  for (int step = 1; step <= 200; ++step) {
    opt.zero_grad();
    {
      Tensor loss = mse_loss(model.forward(x), y);
      loss.backward();
      last_loss = loss.item();
      if (step == 1) first_loss = last_loss;
    }  // the graph and the activations are gone here
    grad_norm = clip_grad_norm(model.parameters(), 100.0f).item();
    opt.step();
    if (step == 20) at20 = allocator_stats(cpu);
  }
  AllocatorStats at200 = allocator_stats(cpu);
  MESSAGE("MSE " << first_loss << " -> " << last_loss << ", final grad norm " << grad_norm);
  CHECK(std::isfinite(grad_norm));
  CHECK(last_loss * 10 <= first_loss);
  CHECK(at200.in_use == at20.in_use);  // the same live tensors: params, grads, Adam state, data
  if (caching) CHECK(at200.system_allocs == at20.system_allocs);  // every block reused from the cache
}
