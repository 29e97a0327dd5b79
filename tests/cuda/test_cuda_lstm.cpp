// The CUDA LSTM cell, scan and cuDNN layer against their CPU twins, forward and backward: odd H (the CPU's padded
// lane tail), B = 1, per-sample lengths (0, partial, full), reverse scans, with and without initial states or
// biases. Skipped without a GPU (the cuDNN cases also without cuDNN in the build).
#include <array>

#include "engine/autograd.h"
#include "models/lstm.h"
#include "ops/cuda/kernels.h"
#include "ops/lstm_cell.h"
#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

TEST_CASE("cuda lstm_cell: forward and backward match the CPU") {
  MSMIX_REQUIRE_GPU();
  uint64_t seed = 3000;
  // The CPU's sigmoid / tanh run through its vectorised exp, the GPU's through expf: a few ulps apart.
  const Tol tol{1e-5, 2e-6};
  for (auto [B, H] : std::vector<std::array<int64_t, 2>>{{1, 1}, {3, 5}, {7, 33}, {16, 128}, {0, 4}}) {
    check_twins(fmt::format("lstm_cell B {} H {}", B, H),
                [](const std::vector<Tensor>& t) { return lstm_cell(t[0], t[1]); },
                {leaf({B, 4 * H}, seed++, 2.0f), leaf({B, H}, seed++)}, tol, tol);
  }
}

// Both scans (ops/cuda/lstm_cell.cu): stepwise, and persistent (one kernel for all steps; blocks of 4 samples,
// so B = 5, 6 and 9 leave a part-filled last block). The 50-step case is MMSA's text LSTM (H 128); H 300
// exceeds the persistent kernel's limit, so that case checks the fallback to stepwise. One test case per scan,
// and a small one for compute-sanitizer.
namespace {

struct ScanCase {
  int64_t T, B, H;
  std::vector<int64_t> lengths;
};
const std::vector<ScanCase> kScanCases = {
    {5, 3, 4, {}},        {7, 4, 9, {7, 0, 3, 5}},     {1, 1, 1, {}},    {12, 2, 33, {12, 1}},
    {0, 2, 3, {}},        {20, 16, 50, {}},            {6, 9, 256, {}},  {3, 6, 300, {3, 1, 2, 3, 0, 3}},
    {50, 32, 128, {}},    {9, 5, 17, {9, 2, 0, 9, 4}}};

void check_scans_match_cpu(cuda::LstmKernel kernel, uint64_t seed, const std::vector<ScanCase>& cases = kScanCases) {
  LstmKernelScope scope(kernel);
  for (const ScanCase& c : cases) {
    for (bool reverse : {false, true}) {
      for (bool states : {false, true}) {
        std::vector<Tensor> in = {leaf({c.T, c.B, 4 * c.H}, seed++), leaf({4 * c.H, c.H}, seed++, 0.3f)};
        if (states) in.push_back(leaf({c.B, c.H}, seed++)), in.push_back(leaf({c.B, c.H}, seed++));
        const std::vector<int64_t> lengths = c.lengths;
        auto f = [lengths, reverse, states](const std::vector<Tensor>& t) {
          return lstm_scan(t[0], t[1], states ? t[2] : Tensor(), states ? t[3] : Tensor(), lengths, reverse);
        };
        // Errors compound through the recurrence, and w_hh's grad sums over T * B steps.
        check_twins(fmt::format("lstm_scan T {} B {} H {} lengths {} reverse {} states {}", c.T, c.B, c.H,
                                shape_str(lengths), reverse, states),
                    f, in, Tol{1e-4, 1e-5}, Tol{1e-4, 1e-5 + 2.4e-7 * double(c.T * c.B * c.H)});
      }
    }
  }
}

}  // namespace

TEST_CASE("cuda lstm_scan: stepwise outputs, final states and all grads match the CPU") {
  MSMIX_REQUIRE_GPU();
  check_scans_match_cpu(cuda::LstmKernel::stepwise, 3100);
}

TEST_CASE("cuda lstm_scan: persistent outputs, final states and all grads match the CPU") {
  MSMIX_REQUIRE_GPU();
  check_scans_match_cpu(cuda::LstmKernel::persistent, 3100);
}

// A few small shapes (part-filled blocks, lengths, H 128 with its two dh parts) for gpucheck's racecheck and
// synccheck, which run the kernels hundreds of times slower than the GPU.
TEST_CASE("cuda lstm_scan: persistent on small shapes (for compute-sanitizer)") {
  MSMIX_REQUIRE_GPU();
  check_scans_match_cpu(cuda::LstmKernel::persistent, 3300,
                        {{7, 4, 9, {7, 0, 3, 5}}, {4, 6, 128, {4, 1, 2, 4, 0, 3}}, {3, 5, 40, {}}});
}

// MSMIX_CUDA_LSTM=cudnn: lstm_layer's forward directions through cuDNN's LSTM, against the CPU's linear + scan.
// Unsorted, partial and full lengths (cuDNN pads; y must be 0 past each length, and the padding's output grads,
// random here, must not reach x), B = 1, odd sizes, no biases, MMSA's text LSTM (768 -> 128, T 50).
namespace {

struct LayerCase {
  int64_t T, B, I, H;
  std::vector<int64_t> lengths;
  bool bias;
};

// x [T, B, I], w_ih [4H, I], w_hh [4H, H], and b_ih, b_hh [4H] when the case has biases; seeds from `seed` on.
std::vector<Tensor> layer_inputs(const LayerCase& c, uint64_t& seed) {
  std::vector<Tensor> in = {leaf({c.T, c.B, c.I}, seed++), leaf({4 * c.H, c.I}, seed++, 0.3f),
                            leaf({4 * c.H, c.H}, seed++, 0.3f)};
  if (c.bias) in.push_back(leaf({4 * c.H}, seed++)), in.push_back(leaf({4 * c.H}, seed++));
  return in;
}

}  // namespace

TEST_CASE("cuda lstm_layer: cuDNN's LSTM equals the CPU's layer: outputs, final states and every grad") {
  MSMIX_REQUIRE_GPU();
  if (skip_without_cudnn()) return;
  LstmKernelScope scope(cuda::LstmKernel::cudnn);
  const std::vector<LayerCase> cases = {
      {5, 3, 7, 4, {}, true},           {7, 4, 6, 9, {7, 1, 3, 5}, true}, {1, 1, 1, 1, {}, true},
      {12, 2, 10, 33, {3, 12}, false},  {9, 5, 3, 17, {9, 2, 9, 4, 1}, true},
      {50, 32, 768, 128, {50, 12, 37, 50, 1, 29, 44, 50, 8, 50, 20, 33, 50, 49, 2, 17,
                          50, 50, 31, 6, 50, 25, 40, 50, 3, 50, 14, 50, 27, 50, 9, 50}, true}};
  uint64_t seed = 3400;
  for (const LayerCase& c : cases) {
    const std::vector<Tensor> in = layer_inputs(c, seed);
    const std::vector<int64_t> lengths = c.lengths;
    const bool bias = c.bias;
    auto f = [lengths, bias](const std::vector<Tensor>& t) {
      Tensor y = lstm_layer(t[0], t[1], t[2], bias ? t[3] : Tensor(), bias ? t[4] : Tensor(), lengths);
      if (y.is_cuda()) {  // cuDNN's node, not a silent fall-back to our scan
        REQUIRE(bool(y.grad_fn()));
        CHECK(std::string(y.grad_fn()->op) == "lstm_layer_cudnn");
      }
      return y;
    };
    // Errors compound through the recurrence; the weights' grads sum over T * B steps (the scans' tolerance).
    check_twins(fmt::format("cudnn lstm_layer T {} B {} I {} H {} lengths {} bias {}", c.T, c.B, c.I, c.H,
                            shape_str(lengths), c.bias),
                f, in, Tol{1e-4, 1e-5}, Tol{1e-4, 1e-5 + 2.4e-7 * double(c.T * c.B * c.H)});
  }
}

// MSMIX_CUDA_LSTM=cudnn-persistent: cuDNN's persistent algorithm for batches whose samples all run T steps
// (MMSA's text LSTMs pass no lengths), its standard one otherwise. PyTorch runs the persistent algorithm in
// FP16 only, and cuDNN may refuse it in FP32 at some shapes: a refusal must name the choice and the shape, and
// is reported rather than failed (the benchmark then has no row for it). What runs must equal the CPU and give
// the same bits run to run (msmix's reproducibility rule).
TEST_CASE("cuda lstm_layer: cuDNN's persistent algorithm equals the CPU's layer, the same bits each run") {
  MSMIX_REQUIRE_GPU();
  if (skip_without_cudnn()) return;
  LstmKernelScope scope(cuda::LstmKernel::cudnn_persistent);
  const std::vector<LayerCase> cases = {{5, 3, 7, 4, {}, true},
                                        {12, 2, 10, 33, {}, false},
                                        {7, 4, 6, 9, {7, 1, 3, 5}, true},  // partial lengths: the standard algorithm
                                        {50, 32, 768, 128, {}, true},
                                        {50, 128, 768, 128, {}, true}};  // LF_DNN's text LSTM at its batch
  uint64_t seed = 3800;
  for (const LayerCase& c : cases) {
    const std::string name = fmt::format("cudnn-persistent lstm_layer T {} B {} I {} H {} lengths {} bias {}", c.T,
                                         c.B, c.I, c.H, shape_str(c.lengths), c.bias);
    const std::vector<Tensor> in = layer_inputs(c, seed);
    const std::vector<int64_t> lengths = c.lengths;
    const bool bias = c.bias;
    auto f = [lengths, bias](const std::vector<Tensor>& t) {
      return lstm_layer(t[0], t[1], t[2], bias ? t[3] : Tensor(), bias ? t[4] : Tensor(), lengths);
    };
    // Two GPU runs, forward and backward: the same bits (or cuDNN's refusal, which must say what was refused).
    std::vector<std::vector<float>> runs[2];
    try {
      for (auto& run : runs) {
        std::vector<Tensor> gpu;
        for (const Tensor& t : in) gpu.push_back(gpu_leaf(t));
        Tensor y = f(gpu);
        REQUIRE(bool(y.grad_fn()));
        CHECK(std::string(y.grad_fn()->op) == "lstm_layer_cudnn");
        Generator gen(11);
        y.backward(Tensor::randn(y.shape(), gen).to(Device::cuda()));
        run.push_back(y.to_vector());
        for (const Tensor& t : gpu) run.push_back(t.grad().to_vector());
      }
    } catch (const Error& e) {
      const std::string what = e.what();
      MESSAGE(name << ": cuDNN refused: " << what);
      CHECK(what.find("MSMIX_CUDA_LSTM=cudnn-persistent") != std::string::npos);
      CHECK(what.find(fmt::format("T {}, B {}, I {}, H {}", c.T, c.B, c.I, c.H)) != std::string::npos);
      continue;
    }
    for (size_t i = 0; i < runs[0].size(); ++i) {
      CAPTURE(name);
      CAPTURE(i);  // the output, then the grads of x, w_ih, w_hh(, b_ih, b_hh)
      CHECK(runs[0][i] == runs[1][i]);
    }
    check_twins(name, f, in, Tol{1e-4, 1e-5}, Tol{1e-4, 1e-5 + 2.4e-7 * double(c.T * c.B * c.H)});
  }
}

TEST_CASE("cuda lstm_layer: with cudnn chosen, inference, reverse directions and empty samples") {
  MSMIX_REQUIRE_GPU();
  if (skip_without_cudnn()) return;
  LstmKernelScope scope(cuda::LstmKernel::cudnn);
  const int64_t T = 6, B = 4, I = 5, H = 7;
  Tensor x = leaf({T, B, I}, 3500), w_ih = leaf({4 * H, I}, 3501, 0.3f), w_hh = leaf({4 * H, H}, 3502, 0.3f);
  Tensor b_ih = leaf({4 * H}, 3503), b_hh = leaf({4 * H}, 3504);
  auto on_gpu = [](const Tensor& t) { return t.detach().to(Device::cuda()); };
  // Inference: no node, the same numbers.
  {
    NoGradGuard no_grad;
    const std::vector<int64_t> lengths = {6, 2, 5, 1};
    Tensor y = lstm_layer(on_gpu(x), on_gpu(w_ih), on_gpu(w_hh), on_gpu(b_ih), on_gpu(b_hh), lengths);
    CHECK(!bool(y.grad_fn()));
    check_close(y, lstm_layer(x, w_ih, w_hh, b_ih, b_hh, lengths), 1e-4, 1e-5, "inference");
  }
  // What cuDNN's unidirectional LSTM cannot run goes to our scan, with the same results: a reverse direction,
  // a sample with no step.
  for (auto [reverse, lengths] : std::vector<std::pair<bool, std::vector<int64_t>>>{{true, {6, 2, 5, 1}},
                                                                                     {false, {6, 0, 5, 1}}}) {
    const std::vector<int64_t> lens = lengths;
    const bool rev = reverse;
    check_twins(fmt::format("cudnn chosen, reverse {} lengths {}", rev, shape_str(lens)),
                [lens, rev](const std::vector<Tensor>& t) {
                  Tensor y = lstm_layer(t[0], t[1], t[2], t[3], t[4], lens, rev);
                  if (y.is_cuda()) CHECK(std::string(y.grad_fn()->op) == "lstm_scan");
                  return y;
                },
                {x, w_ih, w_hh, b_ih, b_hh}, Tol{1e-4, 1e-5}, Tol{1e-4, 1e-4});
  }
}

// msmix's rule that the same seed on the same device gives the same numbers holds with cuDNN's LSTM: its RNN
// routines are not among those cuDNN lists as non-reproducible. Checked: two runs, the same bits.
TEST_CASE("cuda lstm_layer: cuDNN's outputs and grads are the same bits run to run") {
  MSMIX_REQUIRE_GPU();
  if (skip_without_cudnn()) return;
  LstmKernelScope scope(cuda::LstmKernel::cudnn);
  const int64_t T = 50, B = 32, I = 768, H = 128;
  std::vector<int64_t> lengths(size_t(B), T);
  for (int64_t b = 0; b < B; b += 3) lengths[size_t(b)] = 1 + (b * 7) % T;
  std::vector<std::vector<float>> runs[2];
  for (auto& run : runs) {
    std::vector<Tensor> in = {gpu_leaf(leaf({T, B, I}, 3700)), gpu_leaf(leaf({4 * H, I}, 3701, 0.3f)),
                              gpu_leaf(leaf({4 * H, H}, 3702, 0.3f)), gpu_leaf(leaf({4 * H}, 3703)),
                              gpu_leaf(leaf({4 * H}, 3704))};
    Tensor y = lstm_layer(in[0], in[1], in[2], in[3], in[4], lengths);
    Generator gen(9);
    y.backward(Tensor::randn(y.shape(), gen).to(Device::cuda()));
    run.push_back(y.to_vector());
    for (const Tensor& t : in) run.push_back(t.grad().to_vector());
  }
  for (size_t i = 0; i < runs[0].size(); ++i) {
    CAPTURE(i);  // the output, then the grads of x, w_ih, w_hh, b_ih, b_hh
    CHECK(runs[0][i] == runs[1][i]);
  }
}

// The module: two bidirectional layers (the forward directions through cuDNN, the reverse ones through our
// scan) against the same weights on the CPU.
TEST_CASE("cuda LSTM module with MSMIX_CUDA_LSTM=cudnn: two bidirectional layers equal the CPU's") {
  MSMIX_REQUIRE_GPU();
  if (skip_without_cudnn()) return;
  LstmKernelScope scope(cuda::LstmKernel::cudnn);
  LSTM cpu(6, 5, 2, true, true, true), gpu(6, 5, 2, true, true, true);
  gpu.load_state_dict(cpu.state_dict());
  gpu.to(Device::cuda());
  Tensor x = leaf({3, 8, 6}, 3600), xg = gpu_leaf(x);
  const std::vector<int64_t> lengths = {8, 3, 5};
  LSTMOutput oc = cpu.forward(x, lengths), og = gpu.forward(xg, lengths);
  check_close(og.output, oc.output, 1e-4, 1e-5, "output");
  check_close(og.h_n, oc.h_n, 1e-4, 1e-5, "h_n");
  check_close(og.c_n, oc.c_n, 1e-4, 1e-5, "c_n");
  Tensor wo = leaf(oc.output.shape(), 3601).detach(), wh = leaf(oc.h_n.shape(), 3602).detach();
  add(sum(mul(oc.output, wo)), sum(mul(oc.h_n, wh))).backward();
  add(sum(mul(og.output, wo.to(Device::cuda()))), sum(mul(og.h_n, wh.to(Device::cuda())))).backward();
  check_close(xg.grad(), x.grad(), 1e-4, 1e-5, "grad of x");
  NamedTensors pc = cpu.named_parameters(), pg = gpu.named_parameters();
  REQUIRE(pc.size() == pg.size());
  for (size_t k = 0; k < pc.size(); ++k) {
    CAPTURE(pc[k].first);
    check_close(pg[k].second.grad(), pc[k].second.grad(), 1e-4, 1e-5, "grad");
  }
}
