// CUDA kernels against their CPU twins, forward and backward: elementwise binary (broadcasting) and unary
// ops, reductions, softmax / log_softmax and layer_norm, on shapes with odd sizes, size 1, rank 0 and
// broadcasting, plus inputs long enough to take the kernels' other launch paths (block-per-row, split
// reductions, grid-stride loops). Every case is skipped with a message when no GPU is visible.
#include <cmath>

#include "ops/cuda/kernels.h"
#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// A leaf with values in [lo, lo + width) away from zero (log, sqrt, division, pow).
Tensor positive_leaf(const Shape& shape, uint64_t seed, float lo = 0.2f, float width = 2.0f) {
  Generator gen(seed);
  Tensor t = Tensor::rand(shape, gen, lo, lo + width);
  t.set_requires_grad(true);
  return t;
}

// Integers in [-2, 2]: ties for max and eq.
Tensor integer_leaf(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v = Tensor::rand(shape, gen, -2.5f, 2.5f).to_vector();
  for (float& x : v) x = std::round(x);
  Tensor t = Tensor::from_vector(v, shape);
  t.set_requires_grad(true);
  return t;
}

int64_t numel_of(const Shape& s) { return shape_numel(s); }

}  // namespace

TEST_CASE("cuda binary ops: broadcasting forward and sum_to backward match the CPU") {
  MSMIX_REQUIRE_GPU();
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{7, 33}, {7, 33}},      {{5, 1, 9}, {4, 1}},      {{3, 4, 5}, {5}},         {{2, 3, 1, 7}, {1, 3, 5, 1}},
      {{1}, {6, 3}},           {{}, {4, 4}},             {{1025}, {1025}},         {{17, 1, 65}, {1, 31, 1}},
      {{2, 1, 3, 1, 5}, {4, 1, 6, 1}}, {{1, 1}, {1}},    {{0, 3}, {1, 3}},         {{64, 50}, {50}},
      // Bias rows (rows_kernel from 32 columns): rows first or the vector first, rows past the unrolled
      // grid, columns past one block; 31 columns stay with broadcast_kernel.
      {{300, 128}, {128}},     {{128}, {70, 128}},       {{9, 13, 1025}, {1025}},  {{40999, 32}, {32}},
      {{31}, {5, 31}}};
  const std::vector<std::pair<const char*, Fn>> ops = {
      {"add", [](const std::vector<Tensor>& t) { return add(t[0], t[1]); }},
      {"sub", [](const std::vector<Tensor>& t) { return sub(t[0], t[1]); }},
      {"mul", [](const std::vector<Tensor>& t) { return mul(t[0], t[1]); }},
      {"div", [](const std::vector<Tensor>& t) { return div(t[0], t[1]); }}};
  uint64_t seed = 1;
  for (const auto& [sa, sb] : pairs) {
    for (const auto& [name, f] : ops) {
      Tensor a = leaf(sa, seed++), b = positive_leaf(sb, seed++);
      // Broadcast grads are sums over the broadcast dims: reduction tolerance over that many terms.
      const int64_t L = std::max<int64_t>(1, numel_of(broadcast_shapes(sa, sb, "test")) /
                                                 std::max<int64_t>(1, std::min(numel_of(sa), numel_of(sb))));
      check_twins(std::string(name) + " " + shape_str(sa) + " " + shape_str(sb), f, {a, b}, kElementwise,
                  reduction_tol(L));
    }
  }
}

TEST_CASE("cuda binary ops: eq with ties, scalar forms, and a grid-stride pass over 16M + 5 elements") {
  MSMIX_REQUIRE_GPU();
  Tensor a = integer_leaf({9, 31}, 3), b = integer_leaf({31}, 4);
  check_twins("eq", [](const std::vector<Tensor>& t) { return eq(t[0], t[1]); }, {a.detach(), b.detach()},
              kElementwise, kElementwise);
  Tensor x = positive_leaf({3, 333}, 5);
  const std::vector<std::pair<const char*, Fn>> scalar_ops = {
      {"add s", [](const std::vector<Tensor>& t) { return add(t[0], 2.5f); }},
      {"sub s", [](const std::vector<Tensor>& t) { return sub(t[0], -1.25f); }},
      {"mul s", [](const std::vector<Tensor>& t) { return mul(t[0], -3.0f); }},
      {"div s", [](const std::vector<Tensor>& t) { return div(t[0], 7.0f); }},
      {"rsub", [](const std::vector<Tensor>& t) { return rsub(0.5f, t[0]); }},
      {"rdiv", [](const std::vector<Tensor>& t) { return rdiv(-2.0f, t[0]); }}};
  for (const auto& [name, f] : scalar_ops) check_twins(name, f, {x}, kElementwise, kElementwise);

  // More elements than one grid covers (65536 blocks x 256 threads): the loop's second pass must run.
  const int64_t n = (int64_t(1) << 24) + 5;
  Tensor big = leaf({n}, 6), other = leaf({n}, 7);
  NoGradGuard no_grad;
  check_twins("add 16M+5", [](const std::vector<Tensor>& t) { return add(t[0], t[1]); }, {big, other}, kElementwise,
              kElementwise);
  check_twins("mul rows of 7, 16M+6", [](const std::vector<Tensor>& t) { return mul(t[0], t[1]); },
              {leaf({((int64_t(1) << 24) + 6) / 7, 7}, 8), leaf({7}, 9)}, kElementwise, kElementwise);
}

TEST_CASE("cuda unary ops: forward and backward match the CPU") {
  MSMIX_REQUIRE_GPU();
  const std::vector<std::tuple<const char*, Fn, bool>> ops = {  // name, op, needs positive input
      {"neg", [](const std::vector<Tensor>& t) { return neg(t[0]); }, false},
      {"exp", [](const std::vector<Tensor>& t) { return exp(t[0]); }, false},
      {"log", [](const std::vector<Tensor>& t) { return log(t[0]); }, true},
      {"sqrt", [](const std::vector<Tensor>& t) { return sqrt(t[0]); }, true},
      {"rsqrt", [](const std::vector<Tensor>& t) { return rsqrt(t[0]); }, true},
      {"pow 2.5", [](const std::vector<Tensor>& t) { return pow(t[0], 2.5f); }, true},
      {"pow -1.5", [](const std::vector<Tensor>& t) { return pow(t[0], -1.5f); }, true},
      {"pow 0", [](const std::vector<Tensor>& t) { return pow(t[0], 0.0f); }, true},
      {"abs", [](const std::vector<Tensor>& t) { return abs(t[0]); }, false},
      {"relu", [](const std::vector<Tensor>& t) { return relu(t[0]); }, false},
      {"gelu", [](const std::vector<Tensor>& t) { return gelu(t[0]); }, false},
      {"normal_cdf", [](const std::vector<Tensor>& t) { return normal_cdf(t[0]); }, false},
      {"tanh", [](const std::vector<Tensor>& t) { return tanh(t[0]); }, false},
      {"sigmoid", [](const std::vector<Tensor>& t) { return sigmoid(t[0]); }, false},
      {"softplus", [](const std::vector<Tensor>& t) { return softplus(t[0]); }, false},
      {"softplus beta 2 threshold 1", [](const std::vector<Tensor>& t) { return softplus(t[0], 2.0f, 1.0f); }, false},
      {"clamp", [](const std::vector<Tensor>& t) { return clamp(t[0], -0.5f, 0.75f); }, false}};
  // Backward: derivatives near saturation (1 - y * y for tanh) turn a one-ulp difference in y into an
  // absolute 1e-7 * |g|, so the absolute floor is 2e-6.
  const Tol bwd{1e-5, 2e-6};
  uint64_t seed = 100;
  for (Shape shape : {Shape{1}, Shape{31}, Shape{3, 5, 7}, Shape{4099}, Shape{}, Shape{0, 4}}) {
    for (const auto& [name, f, positive] : ops) {
      Tensor x = positive ? positive_leaf(shape, seed++) : leaf(shape, seed++, 2.0f);
      check_twins(std::string(name) + " " + shape_str(shape), f, {x}, kElementwise, bwd);
    }
  }
  // NaN in, NaN out on both devices (relu and clamp keep it, as PyTorch), and the same gradient at NaN.
  for (const auto& [name, f, positive] : ops) {
    Tensor x = positive ? positive_leaf({37}, seed++) : leaf({37}, seed++, 2.0f);
    for (int64_t i : {0, 9, 36}) x.data()[i] = NAN;
    check_twins(std::string(name) + " with NaN", f, {x}, kElementwise, bwd);
  }
}

TEST_CASE("cuda reductions: sum, mean, max, var over dims with keepdim match the CPU") {
  MSMIX_REQUIRE_GPU();
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  // Covers each launch path: D <= 32 (a thread per output), rows (inner 1), columns (inner > 1), and the
  // split passes for few outputs over long dims (full sums, [R, C] -> [C] over many rows).
  const std::vector<Case> cases = {
      {{5, 7, 9}, {1}},       {{5, 7, 9}, {0, 2}},  {{5, 7, 9}, {}},     {{3, 1, 33}, {-1}},   {{2, 3, 4, 5}, {1, 2}},
      {{2, 3, 4, 5}, {0, 3}}, {{100, 5}, {1}},      {{6, 31, 40}, {1}},  {{64, 1000}, {1}},    {{40, 33}, {0}},
      {{5000}, {0}},          {{3, 6000}, {1}},     {{9000, 7}, {0}},    {{4100, 37}, {0}},    {{2, 4097, 3}, {1}},
      {{1}, {0}},             {{7}, {0}},           {{130, 70, 3}, {0, 1}}};
  uint64_t seed = 200;
  for (const Case& c : cases) {
    int64_t L = 1;
    for (int64_t d : c.dims) L *= c.shape[size_t(d < 0 ? d + int64_t(c.shape.size()) : d)];
    if (c.dims.empty()) L = numel_of(c.shape);
    const std::string where = shape_str(c.shape) + " dims " + shape_str(c.dims);
    for (bool keep : {false, true}) {
      const std::vector<int64_t> dims = c.dims;
      check_twins("sum " + where, [&](const std::vector<Tensor>& t) { return sum(t[0], dims, keep); },
                  {leaf(c.shape, seed++)}, reduction_tol(L), kElementwise);
      // mean and var divide the sums' error by L again: tight absolute floors.
      check_twins("mean " + where, [&](const std::vector<Tensor>& t) { return mean(t[0], dims, keep); },
                  {leaf(c.shape, seed++)}, Tol{1e-4, 1e-6}, kElementwise);
      check_twins("max " + where, [&](const std::vector<Tensor>& t) { return max(t[0], dims, keep); },
                  {leaf(c.shape, seed++)}, kElementwise, kElementwise);
      if (L > 1)
        check_twins("var " + where, [&](const std::vector<Tensor>& t) { return var(t[0], dims, true, keep); },
                    {leaf(c.shape, seed++)}, Tol{1e-4, 1e-5}, Tol{1e-4, 1e-6});
    }
  }
  // Ties share the grad (mask / count): integer data has many.
  for (Shape shape : {Shape{6, 9}, Shape{3, 50, 4}}) {
    check_twins("max ties " + shape_str(shape), [](const std::vector<Tensor>& t) { return max(t[0], {1}, false); },
                {integer_leaf(shape, seed++)}, kElementwise, kElementwise);
  }
  // Sum over an empty dim is 0, with an (empty) grad.
  check_twins("sum over empty dim", [](const std::vector<Tensor>& t) { return sum(t[0], {1}, false); },
              {leaf({3, 0, 2}, seed++)}, kElementwise, kElementwise);
}

TEST_CASE("cuda softmax and log_softmax: forward and backward match the CPU, -inf masks included") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 300;
  // Backward: gx = y * (g - sum(g * y)) or g - exp(y) * sum(g), the row sum's error scaled by y <= 1.
  const Tol fwd{1e-5, 1e-6}, bwd{1e-4, 1e-6};
  // Rows up to 1024 sit in a warp's registers, 1 to 32 per lane: every register count, exact and padded.
  const std::vector<Shape> shapes = {{1},      {4, 7},    {6, 64},    {3, 5, 33}, {3, 129},  {2, 200}, {5, 500},
                                     {2, 512}, {64, 1000}, {2, 1024}, {5, 1025},  {2, 3000}, {}};
  for (const Shape& shape : shapes) {
    for (bool log : {false, true}) {
      Fn f = [log](const std::vector<Tensor>& t) { return log ? log_softmax(t[0]) : softmax(t[0]); };
      check_twins(std::string(log ? "log_softmax " : "softmax ") + shape_str(shape), f, {leaf(shape, seed++, 3.0f)},
                  fwd, bwd);
    }
  }
  // Masked attention rows: some -inf entries (probability 0), and one row entirely -inf (NaN on both devices).
  const float inf = INFINITY;
  std::vector<float> v = leaf({3, 40}, seed++).to_vector();
  for (int c = 0; c < 40; c += 3) v[size_t(c)] = -inf;
  for (int c = 0; c < 40; ++c) v[size_t(80 + c)] = -inf;
  for (bool log : {false, true}) {
    Tensor x = Tensor::from_vector(v, {3, 40});
    x.set_requires_grad(true);
    Fn f = [log](const std::vector<Tensor>& t) { return log ? log_softmax(t[0]) : softmax(t[0]); };
    check_twins(log ? "masked log_softmax" : "masked softmax", f, {x}, fwd, bwd);
  }
}

// The opt-in forward that holds a row in a warp's registers (MSMIX_CUDA_SOFTMAX=registers) gives the same bits
// as the three-pass one, over every register count, padded rows, -inf masks and an all -inf row.
TEST_CASE("cuda softmax: the register-held forward equals the three-pass one bit for bit") {
  MSMIX_REQUIRE_GPU();
  struct Restore {
    bool before = cuda::softmax_rows_in_registers();
    ~Restore() { cuda::set_softmax_rows_in_registers(before); }
  } restore;
  uint64_t seed = 350;
  for (const Shape& shape : std::vector<Shape>{{1, 1}, {4, 7}, {6, 32}, {3, 33}, {5, 129}, {64, 500}, {9, 1000},
                                               {2, 1024}, {300, 1024}}) {
    std::vector<float> v = leaf(shape, seed++, 3.0f).to_vector();
    for (size_t k = 0; k < v.size(); k += 5) v[k] = -INFINITY;  // masked entries
    if (shape[0] > 1)
      for (int64_t c = 0; c < shape[1]; ++c) v[size_t(shape[1] + c)] = -INFINITY;  // row 1: all masked (NaN)
    const Tensor x = Tensor::from_vector(v, shape).to(Device::cuda());
    for (bool log : {false, true}) {
      CAPTURE(shape_str(shape));
      CAPTURE(log);
      cuda::set_softmax_rows_in_registers(false);
      const Tensor passes = log ? log_softmax(x) : softmax(x);
      cuda::set_softmax_rows_in_registers(true);
      const Tensor registers = log ? log_softmax(x) : softmax(x);
      check_close(registers, passes, 0, 0, "register-held forward");
      check_close(registers.to(Device::cpu()), log ? log_softmax(x.to(Device::cpu())) : softmax(x.to(Device::cpu())),
                  1e-5, 1e-6, "against the CPU");
    }
  }
}

TEST_CASE("cuda layer_norm: forward and the x, weight and bias grads match the CPU") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 400;
  // C = 1 and 2 make gx ill-conditioned (gx is 0 in exact arithmetic, and rounding is multiplied by rstd, up
  // to 1 / sqrt(eps)): the grads are compared from C = 3 on, the forward alone at C = 1.
  {
    NoGradGuard no_grad;
    check_twins("layer_norm C 1", [](const std::vector<Tensor>& t) { return layer_norm(t[0], t[1], t[2]); },
                {leaf({13, 1}, seed++), leaf({1}, seed++), leaf({1}, seed++)}, Tol{1e-4, 1e-5}, Tol{1e-4, 1e-5});
  }
  for (int64_t C : {3, 7, 33, 50, 100, 257, 500, 1024, 1025, 3000}) {
    for (int64_t R : {1, 13, 257}) {
      for (int affine = 0; affine < 4; ++affine) {  // bit 0: weight, bit 1: bias
        Tensor x = leaf({R, C}, seed++, 2.0f, 0.5f);
        Tensor w = affine & 1 ? leaf({C}, seed++, 0.5f, 1.0f) : Tensor();
        Tensor b = affine & 2 ? leaf({C}, seed++) : Tensor();
        std::vector<Tensor> in = {x};
        if (w.defined()) in.push_back(w);
        if (b.defined()) in.push_back(b);
        const bool has_w = w.defined(), has_b = b.defined();
        Fn f = [has_w, has_b](const std::vector<Tensor>& t) {
          return layer_norm(t[0], has_w ? t[1] : Tensor(), has_b ? t[has_w ? 2 : 1] : Tensor());
        };
        // y and gx use row statistics (sums over C, accurate to ~1e-7 relative); gweight / gbias sum over R rows.
        check_twins(fmt::format("layer_norm R {} C {} affine {}", R, C, affine), f, in, Tol{1e-4, 1e-5},
                    reduction_tol(R));
      }
    }
  }
  // Only the affine parameters want grads (a frozen input): gx is skipped on both devices.
  Tensor x = leaf({9, 65}, seed++).detach(), w = leaf({65}, seed++), b = leaf({65}, seed++);
  check_twins("layer_norm frozen x", [](const std::vector<Tensor>& t) { return layer_norm(t[0], t[1], t[2]); },
              {x, w, b}, Tol{1e-4, 1e-5}, reduction_tol(9));
  // Rank 3 input, rows over the first two dims.
  check_twins("layer_norm [4, 6, 33]",
              [](const std::vector<Tensor>& t) { return layer_norm(t[0], t[1], t[2], 1e-3f); },
              {leaf({4, 6, 33}, seed++), leaf({33}, seed++), leaf({33}, seed++)}, Tol{1e-4, 1e-5}, reduction_tol(24));
}
