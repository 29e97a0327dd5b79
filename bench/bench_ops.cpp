// Op benchmarks: sgemm through msmix next to cblas_sgemm called directly, and the memory-bound ops in GB/s.
// Prints a table, or one JSON object per case with --json (bench/compare.py reads these and runs the
// PyTorch twin, bench/torch/bench_ops.py, with the same case names). Medians of repeated runs.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/cpu_flags.h"
#include "engine/error.h"
#include "models/lstm.h"
#include "ops/ops.h"

using namespace msmix;

namespace {

double median_ms(const std::function<void()>& fn, int reps) {
  fn();  // warm-up: caches, allocator, thread pool
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto start = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

bool json = false;

// unit: "GFLOP/s" or "GB/s"; amount: FLOPs or bytes per call.
void report(const std::string& name, double ms, double amount, const char* unit, const std::string& extra = "") {
  double rate = amount / (ms * 1e-3) / 1e9;
  if (json)
    fmt::print("{{\"case\": \"{}\", \"ms\": {:.4f}, \"rate\": {:.3f}, \"unit\": \"{}\"{}}}\n", name, ms, rate, unit, extra);
  else
    fmt::print("{:<34} {:>10.3f} ms {:>10.2f} {}{}\n", name, ms, rate, unit, extra);
}

void bench_sgemm(int64_t M, int64_t K, int64_t N, int reps) {
  Generator gen(1);
  Tensor a = Tensor::randn({M, K}, gen), b = Tensor::randn({K, N}, gen), c = Tensor::empty({M, N});
  double flops = 2.0 * M * N * K;
  double ours = median_ms([&] { Tensor out = matmul(a, b); }, reps);
  double blas = median_ms([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0f, a.data(), int(K), b.data(),
                int(N), 0.0f, c.data(), int(N));
  }, reps);
  std::string name = fmt::format("sgemm {}x{}x{}", M, K, N);
  report(name, ours, flops, "GFLOP/s", fmt::format(json ? ", \"overhead_pct\": {:.1f}" : "  (+{:.1f}% vs cblas)", 100 * (ours / blas - 1)));
  report(name + " cblas", blas, flops, "GFLOP/s");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) json = json || std::strcmp(argv[i], "--json") == 0;
  set_flush_denormal(true);  // as the trainer runs
  try {
    {
    NoGradGuard no_grad;  // forward-only cases
    for (auto [m, k, n] : std::vector<std::array<int64_t, 3>>{{32, 768, 128}, {1600, 768, 128}, {512, 512, 512}, {1024, 1024, 1024}})
      bench_sgemm(m, k, n, m >= 1024 ? 5 : 20);

    Generator gen(2);
    const int64_t n = 1 << 22;  // 4M floats = 16 MiB per tensor
    Tensor x = Tensor::randn({n}, gen), y = Tensor::randn({n}, gen);
    report("add 4M", median_ms([&] { Tensor o = add(x, y); }, 20), 3.0 * n * 4, "GB/s");
    report("mul 4M", median_ms([&] { Tensor o = mul(x, y); }, 20), 3.0 * n * 4, "GB/s");
    report("exp 4M", median_ms([&] { Tensor o = exp(x); }, 20), 2.0 * n * 4, "GB/s");
    Tensor rows = Tensor::randn({4096, 1024}, gen);
    report("softmax 4096x1024", median_ms([&] { Tensor o = softmax(rows); }, 20), 2.0 * rows.numel() * 4, "GB/s");
    Tensor w = Tensor::ones({1024}), b = Tensor::zeros({1024});
    report("layer_norm 4096x1024", median_ms([&] { Tensor o = layer_norm(rows, w, b); }, 20), 2.0 * rows.numel() * 4, "GB/s");
    report("sum 4096x1024 last dim", median_ms([&] { Tensor o = sum(rows, {1}); }, 20), 1.0 * rows.numel() * 4, "GB/s");
    }
    // LSTM(768 -> 128) over 50 steps at batch 32, forward + backward (TFN's text sub-network).
    // Rate column: FLOPs of the GEMMs (input projection and recurrence, x3 for backward).
    {
      Generator g(3);
      LSTM lstm(768, 128);
      Tensor x = Tensor::randn({32, 50, 768}, g);
      double flops = 3.0 * 2.0 * 32 * 50 * (768 + 128) * 4 * 128;
      double ms = median_ms([&] {
        LSTMOutput out = lstm.forward(x);
        sum(out.output).backward();
        lstm.zero_grad();
      }, 10);
      report("lstm 768->128 T50 B32 fwd+bwd", ms, flops, "GFLOP/s");
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_ops: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
