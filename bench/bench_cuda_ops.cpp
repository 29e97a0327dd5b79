// CUDA op benchmarks: the memory-bound ops at 16M elements in GB/s beside a device-to-device copy (the
// bandwidth ceiling they are judged against: the CUDA issue's goal is 70% of it), and a few GEMMs in GFLOP/s.
// Each sample times `kInner` back-to-back calls between two synchronisations (launches are asynchronous),
// medians of kReps samples after a warm-up. Bytes are the minimum each op must move (inputs read once,
// outputs written once); the fused attention cases (MulT's shapes) count FLOPs instead. Prints a table, or
// one JSON object per case with --json (same case names as the PyTorch twin bench/torch/bench_cuda_ops.py).
// --memory-only: just the memory-bound ops; --once: each case called once, untimed (for a profiler such as
// Nsight Compute, which then sees each kernel a few times instead of hundreds). Exits with a message when no
// GPU is visible.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/cuda_runtime.h"
#include "engine/error.h"
#include "models/lstm.h"
#include "models/mult_transformer.h"
#include "ops/attention.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

using namespace msmix;

namespace {

constexpr int kReps = 15, kInner = 10;
bool json = false, memory_only = false, once = false;
double copy_gbs = 0;  // the D2D copy's rate, once measured

// Milliseconds per call.
double time_ms(const std::function<void()>& fn) {
  if (once) {
    fn();
    cuda::synchronize();
    return NAN;
  }
  for (int i = 0; i < 3; ++i) fn();  // warm-up: allocator blocks, cuBLAS handle and heuristics
  cuda::synchronize();
  std::vector<double> t;
  for (int r = 0; r < kReps; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kInner; ++i) fn();
    cuda::synchronize();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / kInner);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// unit "GB/s" (amount in bytes; also the percentage of the copy's rate) or "GFLOP/s" (amount in FLOPs).
void report(const std::string& name, double ms, double amount, const char* unit) {
  const double rate = amount / (ms * 1e-3) / 1e9;
  const bool bw = std::string(unit) == "GB/s";
  const double pct = bw && copy_gbs > 0 ? 100 * rate / copy_gbs : 0;
  if (json)
    fmt::print("{{\"case\": \"{}\", \"ms\": {:.4f}, \"rate\": {:.2f}, \"unit\": \"{}\"{}}}\n", name, ms, rate, unit,
               bw ? fmt::format(", \"pct_of_copy\": {:.1f}", pct) : "");
  else
    fmt::print("{:<36} {:>9.4f} ms {:>10.1f} {:<7} {}\n", name, ms, rate, unit,
               bw && copy_gbs > 0 ? fmt::format("{:5.1f}% of copy", pct) : "");
}

void bench_memory_bound() {
  const int64_t n = int64_t(1) << 24, R = 16384, C = 1024;  // 16M floats = 64 MiB per tensor
  const double B = 4.0 * double(n);                          // bytes of one 16M tensor
  const Device gpu = Device::cuda();
  Generator gen(1);
  Tensor x = Tensor::randn({R, C}, gen, 0, 1, gpu), y = Tensor::randn({R, C}, gen, 0, 1, gpu);
  Tensor g = Tensor::randn({R, C}, gen, 0, 1, gpu), out = Tensor::empty({R, C}, gpu);
  Tensor bias = Tensor::randn({C}, gen, 0, 1, gpu), w = Tensor::ones({C}, gpu);

  const double copy_ms = time_ms([&] { out.copy_(x); });
  copy_gbs = 2 * B / (copy_ms * 1e-3) / 1e9;
  report("copy d2d 16M", copy_ms, 2 * B, "GB/s");
  report("add 16M", time_ms([&] { Tensor o = add(x, y); }), 3 * B, "GB/s");
  report("mul 16M", time_ms([&] { Tensor o = mul(x, y); }), 3 * B, "GB/s");
  report("add bias rows 16384x1024", time_ms([&] { Tensor o = add(x, bias); }), 2 * B, "GB/s");
  report("mul scalar 16M", time_ms([&] { Tensor o = mul(x, 0.5f); }), 2 * B, "GB/s");
  report("relu 16M", time_ms([&] { Tensor o = relu(x); }), 2 * B, "GB/s");
  report("exp 16M", time_ms([&] { Tensor o = exp(x); }), 2 * B, "GB/s");
  report("gelu 16M", time_ms([&] { Tensor o = gelu(x); }), 2 * B, "GB/s");
  report("gelu backward 16M", time_ms([&] {
           cuda::unary_backward(UnaryOp::Gelu, {}, x.data(), x.data(), g.data(), out.data(), n);
         }), 3 * B, "GB/s");
  report("softmax 16384x1024", time_ms([&] { Tensor o = softmax(x); }), 2 * B, "GB/s");
  {  // the opt-in register-held forward (MSMIX_CUDA_SOFTMAX=registers), beside the default
    const bool before = cuda::softmax_rows_in_registers();
    cuda::set_softmax_rows_in_registers(!before);
    report(before ? "softmax 16384x1024 (three passes)" : "softmax 16384x1024 (registers)",
           time_ms([&] { Tensor o = softmax(x); }), 2 * B, "GB/s");
    cuda::set_softmax_rows_in_registers(before);
  }
  report("softmax backward 16384x1024",
         time_ms([&] { cuda::softmax_backward(y.data(), g.data(), out.data(), R, C, false); }), 3 * B, "GB/s");
  Tensor wide = reshape(x, {2048, 8192});
  report("softmax 2048x8192", time_ms([&] { Tensor o = softmax(wide); }), 2 * B, "GB/s");
  report("layer_norm 16384x1024", time_ms([&] { Tensor o = layer_norm(x, w, bias); }), 2 * B, "GB/s");
  Tensor mean = Tensor::empty({R}, gpu), rstd = Tensor::empty({R}, gpu);
  cuda::layer_norm_forward(x.data(), w.data(), bias.data(), out.data(), mean.data(), rstd.data(), R, C, 1e-5f);
  report("layer_norm backward gx 16384x1024", time_ms([&] {
           cuda::layer_norm_backward(x.data(), w.data(), mean.data(), rstd.data(), g.data(), out.data(), nullptr,
                                     nullptr, R, C);
         }), 3 * B, "GB/s");
  Tensor gw = Tensor::empty({C}, gpu), gb = Tensor::empty({C}, gpu);
  report("layer_norm backward all 16384x1024", time_ms([&] {
           cuda::layer_norm_backward(x.data(), w.data(), mean.data(), rstd.data(), g.data(), out.data(), gw.data(),
                                     gb.data(), R, C);
         }), 3 * B, "GB/s");
  report("sum 16384x1024 last dim", time_ms([&] { Tensor o = sum(x, {1}); }), B, "GB/s");
  report("sum 16384x1024 first dim", time_ms([&] { Tensor o = sum(x, {0}); }), B, "GB/s");
  report("sum 16M all", time_ms([&] { Tensor o = sum(x); }), B, "GB/s");
}

void bench_gemm(const std::string& name, int64_t batch, int64_t M, int64_t K, int64_t N) {
  Generator gen(2);
  const Device gpu = Device::cuda();
  Tensor a = Tensor::randn(batch > 1 ? Shape{batch, M, K} : Shape{M, K}, gen, 0, 1, gpu);
  Tensor b = Tensor::randn(batch > 1 ? Shape{batch, K, N} : Shape{K, N}, gen, 0, 1, gpu);
  report(name, time_ms([&] { Tensor o = matmul(a, b); }), 2.0 * double(batch * M * N * K), "GFLOP/s");
}

// fused_attention at MOSI's MulT shapes: batch 16, 10 heads of width 5 (q [16, L, 50], k and v [16, S, 50]),
// MulT's future mask [L, S], attention dropout 0.3 in training. Amount: the FLOPs of the GEMMs the fused kernels
// stand for, 2 B H L S D each: scores and P V forward, dV, dP, dq and dk backward (4 and 12 B H L S D).
// fwd+bwd runs the op and its backward through autograd (the leaves' grads are dropped after each call).
void bench_attention(int64_t L, int64_t S) {
  const int64_t B = 16, H = 10, D = 5, E = H * D;
  const Device gpu = Device::cuda();
  Generator gen(3);
  Tensor q = Tensor::randn({B, L, E}, gen, 0, 1, gpu), k = Tensor::randn({B, S, E}, gen, 0, 1, gpu);
  Tensor v = Tensor::randn({B, S, E}, gen, 0, 1, gpu), g = Tensor::randn({B, L, E}, gen, 0, 1, gpu);
  for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
  const Tensor mask = mult_future_mask(L, S, gpu);
  const float scale = 1.0f / std::sqrt(float(D));
  Generator drop(4);
  const double pairs = double(B * H * L * S * D);
  const std::string shape = fmt::format("B16 h10 L{} S{}", L, S);
  report("attention fwd " + shape, time_ms([&] {
           NoGradGuard no_grad;
           Tensor o = fused_attention(q, k, v, H, scale, mask, Tensor(), 0.3f, true, drop);
         }), 4 * pairs, "GFLOP/s");
  report("attention fwd+bwd " + shape, time_ms([&] {
           Tensor o = fused_attention(q, k, v, H, scale, mask, Tensor(), 0.3f, true, drop);
           o.backward(g);
           for (Tensor* t : {&q, &k, &v}) t->zero_grad();
         }), 12 * pairs, "GFLOP/s");
}

// LSTM(768 -> 128) over 50 steps at LF_DNN's batch 128 (MMSA's text sub-network), forward + backward, with each
// LSTM kernel (cuDNN's where the build has it); PyTorch's twin is cuDNN's LSTM. Amount: the FLOPs of the input
// projection and the recurrence, x3 for backward. The difference between the scans' rows is the scan's share.
void bench_lstm() {
  Generator gen(5);
  LSTM lstm(768, 128);
  lstm.to(Device::cuda());
  const Tensor x = Tensor::randn({128, 50, 768}, gen, 0, 1, Device::cuda());
  const double flops = 3.0 * 2.0 * 128 * 50 * (768 + 128) * 4 * 128;
  const cuda::LstmKernel before = cuda::lstm_kernel();
  for (cuda::LstmKernel kernel : {cuda::LstmKernel::persistent, cuda::LstmKernel::stepwise, cuda::LstmKernel::cudnn,
                                  cuda::LstmKernel::cudnn_persistent}) {
    if (cuda::is_cudnn(kernel) && !cuda::cudnn_compiled()) continue;
    cuda::set_lstm_kernel(kernel);
    const std::string name =
        kernel == cuda::LstmKernel::persistent ? "" : fmt::format(" ({})", cuda::lstm_kernel_name(kernel));
    try {  // a kernel that fails (cuDNN's libraries missing at run time, say) leaves the others' rows
      report("lstm 768->128 T50 B128 fwd+bwd" + name, time_ms([&] {
               LSTMOutput out = lstm.forward(x);
               sum(out.output).backward();
               lstm.zero_grad();
             }), flops, "GFLOP/s");
    } catch (const Error& e) {
      fmt::print(stderr, "bench_cuda_ops: lstm{}: {}\n", name, e.what());
      lstm.zero_grad();
    }
  }
  cuda::set_lstm_kernel(before);
}

// conv1d at MulT's input projections on MOSI (kernel 5, no padding, no bias; text 768 -> 50 over 50 steps,
// vision 20 -> 50 over 500), forward + backward, with our im2col kernels and with cuDNN's (MSMIX_CUDA_CONV=cudnn,
// where the build has it): the other cuDNN candidate the CUDA issue names (PyTorch's twin runs cuDNN's).
// Amount: 2 * B * C_out * L_out * C_in * K FLOPs, x3 for the two grads.
void bench_conv1d() {
  Generator gen(6);
  const cuda::ConvKernel before = cuda::conv_kernel();
  for (auto [c_in, L] : std::vector<std::pair<int64_t, int64_t>>{{768, 50}, {20, 500}}) {
    const int64_t B = 16, c_out = 50, K = 5, L_out = L - K + 1;
    Tensor x = Tensor::randn({B, c_in, L}, gen, 0, 1, Device::cuda());
    Tensor w = Tensor::randn({c_out, c_in, K}, gen, 0, 0.1f, Device::cuda());
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    for (cuda::ConvKernel kernel : {cuda::ConvKernel::im2col, cuda::ConvKernel::cudnn}) {
      if (kernel == cuda::ConvKernel::cudnn && !cuda::cudnn_compiled()) continue;
      cuda::set_conv_kernel(kernel);
      const std::string name = fmt::format("conv1d {}->{} k{} B{} L{} fwd+bwd{}", c_in, c_out, K, B, L,
                                           kernel == cuda::ConvKernel::im2col ? "" : " (cudnn)");
      try {  // cuDNN failing (its libraries missing at run time, say) leaves our rows
        report(name, time_ms([&] {
                 sum(conv1d(x, w, Tensor())).backward();
                 x.zero_grad();
                 w.zero_grad();
               }), 3.0 * 2.0 * B * c_out * L_out * c_in * K, "GFLOP/s");
      } catch (const Error& e) {
        fmt::print(stderr, "bench_cuda_ops: {}: {}\n", name, e.what());
        x.zero_grad();
        w.zero_grad();
      }
    }
  }
  cuda::set_conv_kernel(before);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--memory-only") {
      memory_only = true;
    } else if (arg == "--once") {
      once = true;
    } else {
      fmt::print(stderr, "bench_cuda_ops: unknown argument '{}' (known: --json, --memory-only, --once)\n", arg);
      return 2;
    }
  }
  try {
    if (cuda::device_count() == 0) {
      fmt::print(stderr, "bench_cuda_ops: no GPU ({}); nothing to measure\n", cuda::runtime_info());
      return 2;
    }
    if (!json) fmt::print("GPU: {}; CUDA {}\n", cuda::device_name(0), cuda::runtime_info());
    {
      NoGradGuard no_grad;
      bench_memory_bound();
      if (memory_only) return 0;
      bench_gemm("sgemm 4096x4096x4096", 1, 4096, 4096, 4096);
      bench_gemm("sgemm 1600x768x128", 1, 1600, 768, 128);
      bench_gemm("bmm 160x500x50x500", 160, 500, 50, 500);  // attention scores: 16 x 10 heads, L 500, d 50
    }
    bench_attention(375, 500);  // with grad mode on: the fwd+bwd cases record the graph
    bench_attention(50, 50);
    bench_lstm();
    bench_conv1d();
  } catch (const Error& e) {
    fmt::print(stderr, "bench_cuda_ops: {}\n", e.what());
    return 1;
  }
  return 0;
}
