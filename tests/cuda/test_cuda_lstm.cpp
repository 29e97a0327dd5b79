// The CUDA LSTM cell and scan against their CPU twins, forward and backward: odd H (the CPU's padded lane tail),
// B = 1, per-sample lengths (0, partial, full), reverse scans, with and without initial states. Skipped
// without a GPU.
#include <array>

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

void check_scans_match_cpu(bool persistent, uint64_t seed, const std::vector<ScanCase>& cases = kScanCases) {
  struct Restore {  // the process-wide choice goes back even when a check throws
    bool before = cuda::persistent_lstm();
    ~Restore() { cuda::set_persistent_lstm(before); }
  } restore;
  cuda::set_persistent_lstm(persistent);
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
  check_scans_match_cpu(false, 3100);
}

TEST_CASE("cuda lstm_scan: persistent outputs, final states and all grads match the CPU") {
  MSMIX_REQUIRE_GPU();
  check_scans_match_cpu(true, 3100);
}

// A few small shapes (part-filled blocks, lengths, H 128 with its two dh parts) for gpucheck's racecheck and
// synccheck, which run the kernels hundreds of times slower than the GPU.
TEST_CASE("cuda lstm_scan: persistent on small shapes (for compute-sanitizer)") {
  MSMIX_REQUIRE_GPU();
  check_scans_match_cpu(true, 3300, {{7, 4, 9, {7, 0, 3, 5}}, {4, 6, 128, {4, 1, 2, 4, 0, 3}}, {3, 5, 40, {}}});
}
