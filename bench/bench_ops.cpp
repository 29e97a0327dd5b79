// Op benchmarks: sgemm through msmix next to cblas_sgemm called directly (timed alternately), and the
// memory-bound ops in GB/s, forward and forward + backward. Prints a table, or one JSON object per case with
// --json (bench/compare.py reads these and runs the PyTorch twin, bench/torch/bench_ops.py, with the same case
// names); --only name,part runs the cases whose name contains one of the parts; --cpu-time times thread CPU
// time (see now_ms). Medians of repeated calls, or with --min the fastest.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "engine/cpu_flags.h"
#include "engine/error.h"
#include "models/lstm.h"
#include "ops/ops.h"

using namespace msmix;

namespace {

// --cpu-time: time the calling thread's CPU time instead of the wall clock. At OMP_NUM_THREADS=1 every
// kernel runs on the calling thread, so this leaves out the time other processes hold the core (a shared
// machine); it does not remove their cache and memory-bandwidth pressure.
bool cpu_time = false;

double now_ms() {
  if (cpu_time) {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// --min: report the fastest call instead of the median (on a loaded machine, the calls in which every thread
// held a core; the median of a multi-threaded run there is mostly scheduler time slices).
bool use_min = false;

double pick(std::vector<double>& t) {
  std::sort(t.begin(), t.end());
  return use_min ? t.front() : t[t.size() / 2];
}

double median_ms(const std::function<void()>& fn, int reps) {
  fn();  // warm-up: caches, allocator, thread pool
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    double start = now_ms();
    fn();
    t.push_back(now_ms() - start);
  }
  return pick(t);
}

// Medians of a and b timed alternately (a, b, a, b, ...), so both see the same machine load.
std::pair<double, double> median_ms_interleaved(const std::function<void()>& a, const std::function<void()>& b,
                                                int reps) {
  a();
  b();
  std::vector<double> ta, tb;
  for (int i = 0; i < reps; ++i)
    for (auto [fn, t] : {std::pair{&a, &ta}, std::pair{&b, &tb}}) {
      double start = now_ms();
      (*fn)();
      t->push_back(now_ms() - start);
    }
  return {pick(ta), pick(tb)};
}

bool json = false;
std::vector<std::string> filters;  // --only a,b: run the cases whose name contains one of these

bool wanted(const std::string& name) {
  if (filters.empty()) return true;
  for (const auto& f : filters)
    if (name.find(f) != std::string::npos) return true;
  return false;
}

// unit: "GFLOP/s" or "GB/s"; amount: FLOPs or bytes per call.
void report(const std::string& name, double ms, double amount, const char* unit, const std::string& extra = "") {
  double rate = amount / (ms * 1e-3) / 1e9;
  if (json)
    fmt::print("{{\"case\": \"{}\", \"ms\": {:.4f}, \"rate\": {:.3f}, \"unit\": \"{}\"{}}}\n", name, ms, rate, unit,
               extra);
  else
    fmt::print("{:<34} {:>10.3f} ms {:>10.2f} {}{}\n", name, ms, rate, unit, extra);
}

// Times fn (median of reps calls) and reports it when the case is wanted.
void bench(const std::string& name, double amount, const char* unit, int reps, const std::function<void()>& fn) {
  if (wanted(name)) report(name, median_ms(fn, reps), amount, unit);
}

void bench_sgemm(int64_t M, int64_t K, int64_t N, int reps) {
  std::string name = fmt::format("sgemm {}x{}x{}", M, K, N);
  if (!wanted(name)) return;
  Generator gen(1);
  Tensor a = Tensor::randn({M, K}, gen), b = Tensor::randn({K, N}, gen), c = Tensor::empty({M, N});
  double flops = 2.0 * M * N * K;
  auto [ours, blas] = median_ms_interleaved([&] { Tensor out = matmul(a, b); }, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0f, a.data(), int(K), b.data(),
                int(N), 0.0f, c.data(), int(N));
  }, reps);
  const double overhead = 100 * (ours / blas - 1);
  report(name, ours, flops, "GFLOP/s",
         fmt::format(json ? ", \"overhead_pct\": {:.1f}" : "  ({:+.1f}% vs cblas)", overhead));
  report(name + " cblas", blas, flops, "GFLOP/s");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) json = true;
    else if (std::strcmp(argv[i], "--cpu-time") == 0) cpu_time = true;
    else if (std::strcmp(argv[i], "--min") == 0) use_min = true;
    else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      std::string list = argv[++i];
      for (size_t start = 0, end; start <= list.size(); start = end + 1) {
        end = std::min(list.find(',', start), list.size());
        if (end > start) filters.push_back(list.substr(start, end - start));
      }
    } else {
      fmt::print(stderr, "usage: bench_ops [--json] [--cpu-time] [--min] [--only name,part,...]\n");
      return 2;
    }
  }
  set_flush_denormal(true);  // as the trainer runs
  try {
    {
      NoGradGuard no_grad;  // forward-only cases
      for (auto [m, k, n] :
           std::vector<std::array<int64_t, 3>>{{32, 768, 128}, {1600, 768, 128}, {512, 512, 512}, {1024, 1024, 1024}})
        bench_sgemm(m, k, n, m >= 1024 ? 5 : 20);

      Generator gen(2);
      const int64_t n = 1 << 22;  // 4M floats = 16 MiB per tensor
      const double nb = double(n) * 4;
      Tensor x = Tensor::randn({n}, gen), y = Tensor::randn({n}, gen);
      bench("add 4M", 3 * nb, "GB/s", 20, [&] { Tensor o = add(x, y); });
      bench("mul 4M", 3 * nb, "GB/s", 20, [&] { Tensor o = mul(x, y); });
      bench("exp 4M", 2 * nb, "GB/s", 20, [&] { Tensor o = exp(x); });
      bench("gelu 4M", 2 * nb, "GB/s", 10, [&] { Tensor o = gelu(x); });
      bench("sum 4M all", nb, "GB/s", 20, [&] { Tensor o = sum(x); });
      Tensor rows = Tensor::randn({4096, 1024}, gen);
      const double rb = double(rows.numel()) * 4;  // bytes of one [4096, 1024] tensor
      bench("softmax 4096x1024", 2 * rb, "GB/s", 20, [&] { Tensor o = softmax(rows); });
      Tensor w = Tensor::ones({1024}), b = Tensor::zeros({1024});
      bench("layer_norm 4096x1024", 2 * rb, "GB/s", 20, [&] { Tensor o = layer_norm(rows, w, b); });
      bench("sum 4096x1024 last dim", rb, "GB/s", 20, [&] { Tensor o = sum(rows, {1}); });
      bench("mean 4096x1024 last dim", rb, "GB/s", 20, [&] { Tensor o = mean(rows, {1}); });
      bench("sum 4096x1024 dim 0", rb, "GB/s", 20, [&] { Tensor o = sum(rows, {0}); });
    }
    // Forward + backward with a given output grad. The rate counts 5 tensors' bytes: the forward's read and
    // write, the backward's two reads and one write.
    {
      Generator gen(4);
      const int64_t n = 1 << 22;
      Tensor x = Tensor::randn({n}, gen).set_requires_grad(), g = Tensor::randn({n}, gen);
      bench("exp 4M fwd+bwd", 5.0 * n * 4, "GB/s", 20, [&] {
        exp(x).backward(g);
        x.zero_grad();
      });
      Tensor rows = Tensor::randn({4096, 1024}, gen).set_requires_grad(), g_rows = Tensor::randn({4096, 1024}, gen);
      const double rb = double(rows.numel()) * 4;
      bench("softmax 4096x1024 fwd+bwd", 5 * rb, "GB/s", 20, [&] {
        softmax(rows).backward(g_rows);
        rows.zero_grad();
      });
      Tensor w = Tensor::ones({1024}).set_requires_grad(), b = Tensor::zeros({1024}).set_requires_grad();
      bench("layer_norm 4096x1024 fwd+bwd", 5 * rb, "GB/s", 20, [&] {
        layer_norm(rows, w, b).backward(g_rows);
        rows.zero_grad();
        w.zero_grad();
        b.zero_grad();
      });
    }
    // LSTM(768 -> 128) over 50 steps at batch 32, forward + backward (TFN's text sub-network).
    // Rate column: FLOPs of the GEMMs (input projection and recurrence, x3 for backward).
    {
      Generator g(3);
      LSTM lstm(768, 128);
      Tensor x = Tensor::randn({32, 50, 768}, g);
      bench("lstm 768->128 T50 B32 fwd+bwd", 3.0 * 2.0 * 32 * 50 * (768 + 128) * 4 * 128, "GFLOP/s", 10, [&] {
        LSTMOutput out = lstm.forward(x);
        sum(out.output).backward();
        lstm.zero_grad();
      });
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_ops: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
