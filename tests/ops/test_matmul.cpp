#include <tuple>

#include "ops/cpu/matmul.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// op(x) for one stored matrix: its rows and cols after the optional transpose.
int64_t rows_of(const Tensor& x, bool trans) { return trans ? x.size(-1) : x.size(-2); }
int64_t cols_of(const Tensor& x, bool trans) { return trans ? x.size(-2) : x.size(-1); }

// Reference: loops over the batch items itself (a 2-D operand is reused for every item) and multiplies each
// pair with the naive kernel, one matrix at a time.
Tensor naive_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t M = rows_of(a, ta), K = cols_of(a, ta), N = cols_of(b, tb);
  const Tensor& batched = a.dim() > 2 ? a : b;
  Shape out_shape(batched.shape().begin(), batched.shape().end() - 2);
  const int64_t batch = shape_numel(out_shape);
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape);
  for (int64_t i = 0; i < batch; ++i) {
    cpu::GemmBatch g;
    g.a = a.data() + (a.dim() > 2 ? i * M * K : 0);
    g.b = b.data() + (b.dim() > 2 ? i * K * N : 0);
    g.c = out.data() + i * M * N;
    g.M = M, g.N = N, g.K = K, g.trans_a = ta, g.trans_b = tb;
    cpu::gemm_batched_naive(g);
  }
  return out;
}

// Stored shape of an operand that is op'd to [rows, cols].
Shape stored(Shape batch, int64_t rows, int64_t cols, bool trans) {
  batch.push_back(trans ? cols : rows);
  batch.push_back(trans ? rows : cols);
  return batch;
}

const bool kBools[] = {false, true};

}  // namespace

TEST_CASE("gemm_batched_naive: hand-computed products, transposes, a summed batch") {
  // A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]]: AB = [[19, 22], [43, 50]], A^T B = [[26, 30], [38, 44]].
  std::vector<float> a = {1, 2, 3, 4}, b = {5, 6, 7, 8}, c(4);
  cpu::GemmBatch g;
  g.a = a.data(), g.b = b.data(), g.c = c.data(), g.M = 2, g.N = 2, g.K = 2;
  cpu::gemm_batched_naive(g);
  CHECK(c == std::vector<float>{19, 22, 43, 50});
  g.trans_a = true;
  cpu::gemm_batched_naive(g);
  CHECK(c == std::vector<float>{26, 30, 38, 44});
  g.trans_a = false, g.trans_b = true;  // A B^T = [[17, 23], [39, 53]]
  cpu::gemm_batched_naive(g);
  CHECK(c == std::vector<float>{17, 23, 39, 53});
  // Two items [1 x 1] summed into one C: 1*5 + 2*6 (+ the 100 already there when accumulating).
  std::vector<float> s = {100};
  cpu::GemmBatch sum_g;
  sum_g.a = a.data(), sum_g.b = b.data(), sum_g.c = s.data();
  sum_g.batch = 2, sum_g.M = sum_g.N = sum_g.K = 1, sum_g.stride_a = sum_g.stride_b = 1, sum_g.stride_c = 0;
  cpu::gemm_batched_naive(sum_g);
  CHECK(s[0] == 17);
  sum_g.accumulate = true;
  cpu::gemm_batched_naive(sum_g);
  CHECK(s[0] == 34);
}

TEST_CASE("gemm_batched (BLAS) matches the naive kernel on every path, including the folded ones") {
  const int64_t B = 3, M = 7, N = 5, K = 9;
  Tensor a = leaf({B, M * K}, 1).detach(), b = leaf({B, K * N}, 2).detach();
  for (bool ta : kBools)
    for (bool tb : kBools)
      for (int64_t sa : {int64_t(0), M * K})
        for (int64_t sb : {int64_t(0), K * N})
          for (int64_t sc : {int64_t(0), M * N})
            for (bool acc : kBools) {
              CAPTURE(ta); CAPTURE(tb); CAPTURE(sa); CAPTURE(sb); CAPTURE(sc); CAPTURE(acc);
              Tensor c_blas = Tensor::full({B, M * N}, 0.5f), c_ref = Tensor::full({B, M * N}, 0.5f);
              cpu::GemmBatch g;
              g.a = a.data(), g.b = b.data(), g.batch = B, g.M = M, g.N = N, g.K = K;
              g.trans_a = ta, g.trans_b = tb, g.stride_a = sa, g.stride_b = sb, g.stride_c = sc, g.accumulate = acc;
              g.c = c_blas.data();
              cpu::gemm_batched(g);
              g.c = c_ref.data();
              cpu::gemm_batched_naive(g);
              check_close(c_blas, c_ref, 1e-5, 1e-5);
            }
}

TEST_CASE("matmul: 2-D products on odd shapes, all four transpose combinations") {
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {1, 1, 1}, {1, 7, 33}, {7, 33, 1}, {33, 1, 7}, {129, 7, 33}, {33, 129, 7}, {7, 33, 129}, {129, 129, 129}};
  for (auto [M, K, N] : shapes)
    for (bool ta : kBools)
      for (bool tb : kBools) {
        CAPTURE(M); CAPTURE(K); CAPTURE(N); CAPTURE(ta); CAPTURE(tb);
        Tensor a = leaf(stored({}, M, K, ta), 3).detach(), b = leaf(stored({}, K, N, tb), 4).detach();
        Tensor c = matmul(a, b, ta, tb);
        CHECK(c.shape() == Shape{M, N});
        check_close(c, naive_matmul(a, b, ta, tb), 1e-4, 1e-4);
      }
}

TEST_CASE("matmul: equal batch dims, and a 2-D operand shared by the batch") {
  const int64_t M = 7, K = 33, N = 5;
  const Shape batch = {2, 3};
  for (bool ta : kBools)
    for (bool tb : kBools) {
      CAPTURE(ta); CAPTURE(tb);
      Tensor a3 = leaf(stored(batch, M, K, ta), 5).detach(), b3 = leaf(stored(batch, K, N, tb), 6).detach();
      Tensor a2 = leaf(stored({}, M, K, ta), 7).detach(), b2 = leaf(stored({}, K, N, tb), 8).detach();
      const Shape want = {2, 3, M, N};
      Tensor both = matmul(a3, b3, ta, tb), shared_b = matmul(a3, b2, ta, tb), shared_a = matmul(a2, b3, ta, tb);
      CHECK(both.shape() == want);
      CHECK(shared_b.shape() == want);
      CHECK(shared_a.shape() == want);
      check_close(both, naive_matmul(a3, b3, ta, tb), 1e-4, 1e-4, "batched");
      check_close(shared_b, naive_matmul(a3, b2, ta, tb), 1e-4, 1e-4, "shared b");
      check_close(shared_a, naive_matmul(a2, b3, ta, tb), 1e-4, 1e-4, "shared a");
    }
}

TEST_CASE("matmul: gradients for every transpose combination and batch form") {
  const int64_t M = 3, K = 4, N = 2;
  auto f = [](bool ta, bool tb) {
    return [ta, tb](const std::vector<Tensor>& v) { return matmul(v[0], v[1], ta, tb); };
  };
  for (bool ta : kBools)
    for (bool tb : kBools) {
      CAPTURE(ta); CAPTURE(tb);
      check_gradients(f(ta, tb), {leaf(stored({}, M, K, ta), 9), leaf(stored({}, K, N, tb), 10)});
      check_gradients(f(ta, tb), {leaf(stored({2}, M, K, ta), 11), leaf(stored({2}, K, N, tb), 12)});
      check_gradients(f(ta, tb), {leaf(stored({2, 2}, M, K, ta), 13), leaf(stored({}, K, N, tb), 14)});
      check_gradients(f(ta, tb), {leaf(stored({}, M, K, ta), 15), leaf(stored({2, 2}, K, N, tb), 16)});
    }
}

TEST_CASE("matmul: only the inputs that need a grad get one") {
  Tensor a = leaf({2, 3, 4}, 17), b = leaf({4, 5}, 18).detach();
  sum(matmul(a, b)).backward();
  CHECK(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  // d sum(A B) / dA = row sums of B, the same for every row of every batch item.
  std::vector<float> bv = b.to_vector(), ga = a.grad().to_vector();
  for (int64_t k = 0; k < 4; ++k) {
    double s = 0;
    for (int64_t n = 0; n < 5; ++n) s += bv[k * 5 + n];
    for (int64_t row = 0; row < 6; ++row) CHECK(ga[row * 4 + k] == doctest::Approx(s).epsilon(1e-5));
  }
}

TEST_CASE("matmul: empty dims give empty or zero results, and zero grads") {
  Tensor a = leaf({3, 0}, 19), b = leaf({0, 4}, 20);
  Tensor c = matmul(a, b);  // K = 0: the zero matrix
  CHECK(c.shape() == Shape{3, 4});
  check_close(c, Tensor::zeros({3, 4}));
  sum(c).backward();
  CHECK(a.grad().shape() == Shape{3, 0});
  CHECK(b.grad().shape() == Shape{0, 4});
  CHECK(matmul(Tensor::zeros({0, 5}), Tensor::zeros({5, 2})).shape() == Shape{0, 2});
  CHECK(matmul(Tensor::zeros({3, 5}), Tensor::zeros({2, 5}), false, true).shape() == Shape{3, 2});
  CHECK(matmul(Tensor::zeros({4, 3, 5}), Tensor::zeros({5, 0})).shape() == Shape{4, 3, 0});
  // An empty batch against a shared weight: the weight's grad is a sum over nothing, zero.
  Tensor x = leaf({0, 3, 5}, 21), w = leaf({5, 2}, 22);
  Tensor y = matmul(x, w);
  CHECK(y.shape() == Shape{0, 3, 2});
  y.backward(Tensor::zeros({0, 3, 2}));
  check_close(w.grad(), Tensor::zeros({5, 2}));
}

TEST_CASE("matmul: errors name the op and the shapes") {
  check_throws_with([] { matmul(Tensor::zeros({32, 768}), Tensor::zeros({128, 64})); },
                    {"matmul: inner dims differ: [32, 768] @ [128, 64]"});
  check_throws_with([] { matmul(Tensor::zeros({32, 64}), Tensor::zeros({128, 64}), false, false); },
                    {"inner dims differ", "[32, 64] @ [128, 64]"});
  check_throws_with([] { matmul(Tensor::zeros({64, 32}), Tensor::zeros({64, 128}), true, true); },
                    {"inner dims differ", "[64, 32]^T @ [64, 128]^T"});
  check_throws_with([] { matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({5, 4, 6})); },
                    {"matmul: batch dims differ", "[2, 3, 4] @ [5, 4, 6]"});
  check_throws_with([] { matmul(Tensor::zeros({4}), Tensor::zeros({4, 2})); }, {"matmul", "at least 2 dims", "[4]"});
  check_throws_with([] { matmul(Tensor(), Tensor::zeros({4, 2})); }, {"matmul", "undefined"});
}

TEST_CASE("linear: x @ W^T + b against matmul and a naive bias, with and without bias") {
  Tensor x = leaf({2, 3, 7}, 23), w = leaf({5, 7}, 24), bias = leaf({5}, 25);
  std::vector<float> ref = naive_matmul(reshape(x, {6, 7}).detach(), w.detach(), false, true).to_vector();
  Tensor no_bias = linear(x, w, Tensor());
  CHECK(no_bias.shape() == Shape{2, 3, 5});
  check_close(no_bias.to_vector(), ref, 1e-5, 1e-5, "no bias");
  std::vector<float> bv = bias.to_vector();
  for (size_t i = 0; i < ref.size(); ++i) ref[i] += bv[i % 5];
  check_close(linear(x, w, bias).to_vector(), ref, 1e-5, 1e-5, "bias");
  CHECK(linear(leaf({7}, 26), w, bias).shape() == Shape{5});  // one vector in, one out
  CHECK(linear(Tensor::zeros({0, 7}), w, bias).shape() == Shape{0, 5});
}

TEST_CASE("linear: gradients for x, weight and bias; frozen inputs get none") {
  auto f = [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); };
  check_gradients(f, {leaf({2, 3, 4}, 27), leaf({5, 4}, 28), leaf({5}, 29)});
  check_gradients(f, {leaf({4}, 30), leaf({3, 4}, 31), leaf({3}, 32)});
  check_gradients([](const std::vector<Tensor>& v) { return linear(v[0], v[1], Tensor()); },
                  {leaf({3, 4}, 33), leaf({2, 4}, 34)});
  Tensor x = leaf({3, 4}, 35).detach(), w = leaf({2, 4}, 36), b = leaf({2}, 37).detach();
  sum(linear(x, w, b)).backward();
  CHECK(w.grad().defined());
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(b.grad().defined());
  // Empty rows: dW and db are sums over no rows, zero.
  Tensor w2 = leaf({2, 4}, 38), b2 = leaf({2}, 39);
  linear(Tensor::zeros({0, 4}), w2, b2).backward(Tensor::zeros({0, 2}));
  check_close(w2.grad(), Tensor::zeros({2, 4}));
  check_close(b2.grad(), Tensor::zeros({2}));
}

TEST_CASE("linear: errors name the op and the shapes") {
  check_throws_with([] { linear(Tensor::zeros({4, 7}), Tensor::zeros({3, 5}), Tensor()); },
                    {"linear", "[4, 7]", "[3, 5]"});
  check_throws_with([] { linear(Tensor::zeros({4, 5}), Tensor::zeros({3, 5}), Tensor::zeros({4})); },
                    {"linear", "bias [4]", "3 output features"});
  check_throws_with([] { linear(Tensor::zeros({4, 5}), Tensor::zeros({5}), Tensor()); }, {"linear", "weight", "[5]"});
}
