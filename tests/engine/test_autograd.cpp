#include "tests/testing.h"

using namespace msmix;
using msmix::testing::check_throws_with;

TEST_CASE("backward accumulates through shared subexpressions") {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3}).set_requires_grad();
  Tensor y = mul(x, x);       // x^2
  Tensor z = add(y, mul(y, x));  // x^2 + x^3
  sum(z).backward();
  // d/dx = 2x + 3x^2
  CHECK(x.grad().to_vector() == std::vector<float>{5, 16, 33});
  // A second backward adds into the leaf grad.
  sum(mul(x, 2.0f)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{7, 18, 35});
  x.zero_grad();
  CHECK(!x.grad().defined());
}

TEST_CASE("leaf grads never share storage, so in-place updates stay local") {
  Tensor a = Tensor::ones({2}).set_requires_grad();
  Tensor b = Tensor::ones({2}).set_requires_grad();
  sum(add(a, b)).backward();  // add's backward hands the same grad to both inputs
  CHECK(a.grad().data() != b.grad().data());
  a.grad().data()[0] = 100;
  CHECK(b.grad().to_vector()[0] == 1);
}

TEST_CASE("backward(grad_output) uses the caller's tensor without a copy, yet leaf grads never alias it") {
  Tensor a = Tensor::ones({3}).set_requires_grad(), b = Tensor::ones({3}).set_requires_grad();
  Tensor w = Tensor::from_vector({1, 2, 3}, {3});
  add(a, b).backward(w);  // add passes w through to both leaves
  CHECK(a.grad().data() != w.data());
  CHECK(b.grad().data() != w.data());
  w.data()[0] = 100;  // the caller reuses its buffer
  a.grad().data()[1] = -5;  // and the optimizer clips in place
  CHECK(a.grad().to_vector() == std::vector<float>{1, -5, 3});
  CHECK(b.grad().to_vector() == std::vector<float>{1, 2, 3});
  CHECK(w.to_vector() == std::vector<float>{100, 2, 3});
  // backward on a leaf itself: its grad is a copy too.
  Tensor c = Tensor::ones({3}).set_requires_grad();
  c.backward(w);
  CHECK(c.grad().data() != w.data());
}

TEST_CASE("NoGradGuard records nothing") {
  Tensor x = Tensor::ones({2}).set_requires_grad();
  {
    NoGradGuard guard;
    Tensor y = mul(x, 3.0f);
    CHECK(!y.requires_grad());
    CHECK(y.is_leaf());
  }
  CHECK(mul(x, 3.0f).requires_grad());
}

TEST_CASE("a 100000-op chain runs backward and is freed without recursion") {
  Tensor x = Tensor::from_vector({1}, {1}).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add(y, 0.0f);
  sum(y).backward();
  CHECK(x.grad().item() == 1);
  // A chain dropped without backward must also be freed iteratively.
  Tensor z = x;
  for (int i = 0; i < 100000; ++i) z = mul(z, 1.0f);
  z = Tensor();
}

TEST_CASE("backward frees the graph and intermediate grads") {
  Tensor x = Tensor::ones({4}).set_requires_grad();
  Tensor h = exp(x);
  Tensor out = sum(h);
  out.backward();
  CHECK(!h.grad().defined());
  CHECK(h.is_leaf());  // its node was released
  CHECK(x.grad().defined());
}

TEST_CASE("backward errors name the problem") {
  check_throws_with([] { Tensor::ones({2}).backward(); }, {"backward", "[2]"});
  check_throws_with([] { Tensor::ones({1}).backward(); }, {"does not require grad"});
  Tensor x = Tensor::ones({3}).set_requires_grad();
  Tensor y = mul(x, 2.0f);
  check_throws_with([&] { y.backward(Tensor::ones({4})); }, {"[4]", "[3]"});
}

TEST_CASE("clone and to are differentiable") {
  Tensor x = Tensor::from_vector({1, 2}, {2}).set_requires_grad();
  sum(mul(x.clone(), x.to(Device::cpu()))).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{2, 4});
}
