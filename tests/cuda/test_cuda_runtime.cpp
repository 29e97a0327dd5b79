// The device seam: Tensor::to(cuda) and back through the caching allocator, grads crossing devices, ops
// refusing tensors on two devices, and (with no GPU) clear errors instead of crashes.
#include "engine/allocator.h"
#include "ops/attention.h"
#include "ops/cuda/kernels.h"
#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

TEST_CASE("cuda: to(cuda) and back keeps values; the caching allocator reuses device blocks") {
  MSMIX_REQUIRE_GPU();
  Tensor x = leaf({3, 1000}, 1).detach();
  Tensor g = x.to(Device::cuda());
  CHECK(g.is_cuda());
  CHECK(g.device() == Device::cuda(0));
  CHECK(g.to(Device::cpu()).to_vector() == x.to_vector());
  CHECK(g.to(Device::cuda()).same(g));  // already there: the same tensor
  CHECK(Tensor::zeros({5}, Device::cuda()).to_vector() == std::vector<float>(5, 0.0f));
  CHECK(Tensor::full({4}, -1.5f, Device::cuda()).to_vector() == std::vector<float>(4, -1.5f));

  Tensor f = Tensor::empty({70001}, Device::cuda());  // several blocks and a partial one
  f.fill_(2.5f);
  CHECK(f.to_vector() == std::vector<float>(70001, 2.5f));
  f.fill_(0);
  CHECK(f.to_vector() == std::vector<float>(70001, 0.0f));

  // Steady state: the same shapes again allocate nothing new on the device.
  for (int i = 0; i < 3; ++i) Tensor t = mul(add(g, g), 0.5f);  // warm-up: the same pattern of live blocks
  const size_t before = allocator_stats(Device::cuda()).system_allocs;
  for (int i = 0; i < 20; ++i) Tensor t = mul(add(g, g), 0.5f);
  CHECK(allocator_stats(Device::cuda()).system_allocs == before);
  CHECK(allocator_stats(Device::cuda()).in_use > 0);
}

TEST_CASE("cuda: grads flow back across to() in both directions") {
  MSMIX_REQUIRE_GPU();
  Tensor x = leaf({4, 6}, 2);
  Tensor y = sum(mul(x.to(Device::cuda()), 3.0f)).to(Device::cpu());  // cpu -> gpu math -> cpu
  y.backward();
  REQUIRE(x.grad().defined());
  CHECK(!x.grad().is_cuda());
  CHECK(x.grad().to_vector() == std::vector<float>(24, 3.0f));
  // A GPU leaf used twice accumulates its grad on the GPU (autograd's cuda::add_inplace).
  Tensor w = gpu_leaf(leaf({5}, 3));
  Tensor z = sum(add(mul(w, 2.0f), mul(w, w)));
  z.backward();
  REQUIRE(w.grad().is_cuda());
  std::vector<float> wv = w.to_vector(), gv = w.grad().to_vector();
  for (size_t i = 0; i < wv.size(); ++i) CHECK(gv[i] == doctest::Approx(2.0f + 2.0f * wv[i]).epsilon(1e-6));
}

TEST_CASE("cuda: ops given tensors on two devices throw, naming both devices") {
  MSMIX_REQUIRE_GPU();
  Tensor c = Tensor::ones({2, 3}), g = Tensor::ones({2, 3}, Device::cuda());
  Tensor w = Tensor::ones({4, 3}, Device::cuda()), v = Tensor::ones({3}, Device::cuda());
  check_throws_with([&] { add(c, g); }, {"add", "different devices", "cpu", "cuda:0"});
  check_throws_with([&] { mul(g, c); }, {"mul", "different devices", "cuda:0", "cpu"});
  check_throws_with([&] { matmul(c, reshape(g, {3, 2})); }, {"matmul", "different devices", "cpu", "cuda:0"});
  check_throws_with([&] { linear(c, w, Tensor()); }, {"linear", "different devices", "cpu", "cuda:0"});
  check_throws_with([&] { linear(g, w, Tensor::ones({4})); }, {"linear", "different devices"});
  check_throws_with([&] { layer_norm(c, v, Tensor()); }, {"layer_norm", "different devices", "cpu", "cuda:0"});
  Tensor q = Tensor::ones({1, 2, 4}, Device::cuda()), k = Tensor::ones({1, 3, 4});
  check_throws_with([&] { fused_attention(q, k, k, 1, 1.0f, Tensor(), Tensor(), 0.0f, false, default_generator()); },
                    {"fused_attention", "different devices", "cuda:0", "cpu"});
}

TEST_CASE("cuda: without a GPU, device tensors and kernel calls fail with an error, not a crash") {
  if (cuda::device_count() > 0) {
    MESSAGE("a GPU is present: the no-GPU error paths are not reachable here");
    return;
  }
  check_throws_with([] { Tensor::ones({2}, Device::cuda()); }, {"cuda:0", "GPU"});
  check_throws_with([] { Tensor::ones({2}).to(Device::cuda()); }, {"cuda:0", "GPU"});
  // The kernel entry points themselves: "built without CUDA" in a CPU-only build; in a CUDA build the
  // launch (or cuBLAS's setup) fails for want of a device and the check names what failed.
  const std::string what = cuda::compiled() ? "failed" : "built without CUDA";
  check_throws_with([] { cuda::unary_forward(UnaryOp::Relu, {}, nullptr, nullptr, 8); }, {"unary", what});
  check_throws_with([] { cuda::binary_forward(BinaryOp::Add, nullptr, {8}, nullptr, {8}, nullptr, {8}); },
                    {"binary", what});
  check_throws_with([] { cuda::softmax_forward(nullptr, nullptr, 2, 4, false); }, {"softmax", what});
  check_throws_with([] { cuda::copy_along_dim(nullptr, 4, 0, nullptr, 4, 0, 2, 4, 1); }, {"copy_along_dim", what});
  check_throws_with([] { cuda::batch_norm_apply(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 2, 3, 1); },
                    {"batch_norm", what});
  cpu::GemmBatch g;
  g.M = g.N = g.K = 4;
  check_throws_with([&] { cuda::gemm_batched(g); }, {what});
  // In a CUDA build, empty work launches nothing and so succeeds even here.
  if (cuda::compiled()) cuda::unary_forward(UnaryOp::Relu, {}, nullptr, nullptr, 0);
}
