// cuBLAS GEMMs against the CPU: the GemmBatch driver directly (every fold and the summed-batch scratch path,
// with and without accumulate), matmul and linear forward and backward through autograd, and a small MLP
// trained for a few SGD steps on both devices. Skipped with a message when no GPU is visible.
#include <cmath>

#include "ops/cpu/matmul.h"
#include "ops/cuda/kernels.h"
#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// GEMM tolerance for a K-term dot product of O(1) values.
Tol gemm_tol(int64_t K) { return reduction_tol(K); }

}  // namespace

TEST_CASE("cuda gemm_batched: every layout, fold and accumulate matches the CPU driver") {
  MSMIX_REQUIRE_GPU();
  const int64_t M = 7, N = 9, K = 13;
  uint64_t seed = 500;
  enum Layout { Fresh, SharedA, SharedB, SummedC };
  for (int64_t batch : {1, 3}) {
    for (Layout layout : {Fresh, SharedA, SharedB, SummedC}) {
      for (int flags = 0; flags < 8; ++flags) {  // bit 0: trans_a, bit 1: trans_b, bit 2: accumulate
        cpu::GemmBatch g;
        g.batch = batch, g.M = M, g.N = N, g.K = K;
        g.trans_a = flags & 1, g.trans_b = flags & 2, g.accumulate = flags & 4;
        g.stride_a = layout == SharedA ? 0 : M * K;
        g.stride_b = layout == SharedB ? 0 : K * N;
        g.stride_c = layout == SummedC ? 0 : M * N;
        const int64_t c_count = layout == SummedC ? 1 : batch;
        Tensor a = leaf({layout == SharedA ? 1 : batch, M * K}, seed++).detach();
        Tensor b = leaf({layout == SharedB ? 1 : batch, K * N}, seed++).detach();
        Tensor c = leaf({c_count, M * N}, seed++).detach();  // accumulate adds to these values
        Tensor a_gpu = a.to(Device::cuda()), b_gpu = b.to(Device::cuda()), c_gpu = c.to(Device::cuda());
        g.a = a.data(), g.b = b.data(), g.c = c.data();
        cpu::gemm_batched(g);
        g.a = a_gpu.data(), g.b = b_gpu.data(), g.c = c_gpu.data();
        cuda::gemm_batched(g);
        CAPTURE(batch);
        CAPTURE(int(layout));
        CAPTURE(flags);
        check_close(c_gpu, c, gemm_tol(K * batch).rtol, gemm_tol(K * batch).atol, "gemm_batched");
      }
    }
  }
  // K = 0: C = 0, or unchanged when accumulating.
  Tensor c = Tensor::full({M, N}, 2.5f, Device::cuda());
  cpu::GemmBatch g;
  g.M = M, g.N = N, g.K = 0, g.c = c.data(), g.accumulate = true;
  cuda::gemm_batched(g);
  CHECK(c.to_vector() == std::vector<float>(size_t(M * N), 2.5f));
  g.accumulate = false;
  cuda::gemm_batched(g);
  CHECK(c.to_vector() == std::vector<float>(size_t(M * N), 0.0f));
}

TEST_CASE("cuda matmul: batched, shared and transposed operands, forward and backward, match the CPU") {
  MSMIX_REQUIRE_GPU();
  struct Case {
    Shape a, b;
    bool ta, tb;
  };
  const std::vector<Case> cases = {
      {{1, 1}, {1, 1}, false, false},           {{17, 33}, {33, 9}, false, false},
      {{33, 17}, {33, 9}, true, false},         {{17, 33}, {9, 33}, false, true},
      {{33, 17}, {9, 33}, true, true},          {{3, 17, 33}, {3, 33, 9}, false, false},
      {{3, 33, 17}, {3, 9, 33}, true, true},    {{4, 5, 6}, {6, 7}, false, false},
      {{4, 5, 6}, {7, 6}, false, true},         {{4, 6, 5}, {6, 7}, true, false},
      {{5, 6}, {4, 6, 7}, false, false},        {{6, 5}, {4, 6, 7}, true, false},
      {{5, 6}, {4, 7, 6}, false, true},         {{2, 3, 5, 4}, {2, 3, 4, 6}, false, false},
      {{3, 0}, {0, 4}, false, false},           {{0, 5}, {5, 3}, false, false},
      {{64, 300}, {300, 100}, false, false},    {{10, 50, 50}, {10, 50, 50}, false, true}};
  uint64_t seed = 600;
  for (const Case& c : cases) {
    const int64_t K = c.ta ? c.a[c.a.size() - 2] : c.a.back();
    // Grads of a shared 2-D operand sum over the batch as well as over M or N.
    int64_t L = std::max<int64_t>({K, c.a[c.a.size() - 2], c.a.back(), c.b[c.b.size() - 2], c.b.back()});
    for (size_t d = 0; d + 2 < std::max(c.a.size(), c.b.size()); ++d) L *= (c.a.size() > 2 ? c.a : c.b)[d];
    const bool ta = c.ta, tb = c.tb;
    check_twins(shape_str(c.a) + (ta ? "^T" : "") + " @ " + shape_str(c.b) + (tb ? "^T" : ""),
                [ta, tb](const std::vector<Tensor>& t) { return matmul(t[0], t[1], ta, tb); },
                {leaf(c.a, seed++), leaf(c.b, seed++)}, gemm_tol(K), gemm_tol(L));
  }
}

TEST_CASE("cuda linear: forward and the x, weight and bias grads match the CPU") {
  MSMIX_REQUIRE_GPU();
  struct Case {
    Shape x;
    int64_t out;
    bool bias;
  };
  const std::vector<Case> cases = {{{13, 33}, 17, true}, {{2, 3, 33}, 17, true}, {{13, 33}, 17, false},
                                   {{33}, 5, true},      {{0, 33}, 17, true},    {{5000, 20}, 5, true},
                                   {{7, 1}, 1, true}};
  uint64_t seed = 700;
  for (const Case& c : cases) {
    const int64_t in = c.x.back(), R = shape_numel(c.x) / std::max<int64_t>(1, in);
    Tensor x = leaf(c.x, seed++), w = leaf({c.out, in}, seed++, 0.3f), b = leaf({c.out}, seed++);
    const bool has_bias = c.bias;
    check_twins(fmt::format("linear {} -> {}{}", shape_str(c.x), c.out, has_bias ? " + bias" : ""),
                [has_bias](const std::vector<Tensor>& t) { return linear(t[0], t[1], has_bias ? t[2] : Tensor()); },
                has_bias ? std::vector<Tensor>{x, w, b} : std::vector<Tensor>{x, w}, gemm_tol(in),
                gemm_tol(std::max({R, in, c.out})));
  }
  // A frozen input (first layer): only the parameters get grads.
  check_twins("linear frozen x", [](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); },
              {leaf({9, 12}, seed++).detach(), leaf({4, 12}, seed++), leaf({4}, seed++)}, gemm_tol(12), gemm_tol(12));
}

TEST_CASE("cuda autograd end to end: an MLP's loss and grads, then five SGD steps, match the CPU") {
  MSMIX_REQUIRE_GPU();
  // x [32, 20] -> linear 64 -> gelu -> layer_norm -> * scale (broadcast) -> linear 10 -> log_softmax, against
  // soft targets; plus a sigmoid/softplus/tanh side term so most wired ops sit in one graph.
  uint64_t seed = 800;
  Tensor x = leaf({32, 20}, seed++).detach(), target = softmax(leaf({32, 10}, seed++, 2.0f)).detach();
  std::vector<Tensor> params = {leaf({64, 20}, seed++, 0.2f), leaf({64}, seed++, 0.1f), leaf({64}, seed++, 0.1f, 1.0f),
                                leaf({64}, seed++, 0.1f),     leaf({64}, seed++, 0.5f), leaf({10, 64}, seed++, 0.1f),
                                leaf({10}, seed++, 0.1f)};
  auto loss_of = [](const Tensor& xin, const Tensor& tgt, const std::vector<Tensor>& p) {
    Tensor h = gelu(linear(xin, p[0], p[1]));
    h = mul(layer_norm(h, p[2], p[3]), p[4]);
    Tensor logits = linear(h, p[5], p[6]);
    Tensor ce = neg(mean(sum(mul(log_softmax(logits), tgt), {1})));
    Tensor side = mean(add(tanh(logits), softplus(sub(sigmoid(logits), 0.5f))));
    return add(ce, mul(side, 0.1f));
  };
  const Tensor x_gpu = x.to(Device::cuda()), target_gpu = target.to(Device::cuda());
  std::vector<Tensor> gpu_params;
  for (const Tensor& p : params) gpu_params.push_back(gpu_leaf(p));
  // Grads after up to five steps of both trajectories: 1e-3 relative (a wrong kernel is off by O(1)); each
  // op's own tolerance is checked tightly in the per-op cases.
  const Tol tol{1e-3, 1e-5};
  for (int step = 0; step < 5; ++step) {
    CAPTURE(step);
    for (Tensor& p : params) p.zero_grad();
    for (Tensor& p : gpu_params) p.zero_grad();
    Tensor l_cpu = loss_of(x, target, params), l_gpu = loss_of(x_gpu, target_gpu, gpu_params);
    REQUIRE(l_gpu.is_cuda());
    CHECK(l_gpu.item() == doctest::Approx(l_cpu.item()).epsilon(1e-4));
    l_cpu.backward();
    l_gpu.backward();
    NoGradGuard no_grad;
    for (size_t k = 0; k < params.size(); ++k) {
      check_close(gpu_params[k].grad(), params[k].grad(), tol.rtol, tol.atol, "grad of param " + std::to_string(k));
      params[k].copy_(sub(params[k], mul(params[k].grad(), 0.5f)));
      gpu_params[k].copy_(sub(gpu_params[k], mul(gpu_params[k].grad(), 0.5f)));
    }
  }
}
