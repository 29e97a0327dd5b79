// The persistent LSTM scan's CUDA kernel bodies (ops/cuda/lstm_scan_block.h) run on the CPU through
// tests/ops/emulated_block.h (a fiber per CUDA thread, a barrier for __syncthreads, NaN-filled shared memory).
// Every output and grad must match the CPU scan (ops/cpu/lstm_cell.h), over lengths (0, partial, full), reverse
// scans, initial states, part-filled blocks and block sizes smaller than a row. This is what checks the kernels'
// indexing and phases in CI; tests/cuda/test_cuda_lstm.cpp runs them on a GPU.
#include <cmath>

#include "ops/cpu/lstm_cell.h"
#include "ops/cuda/lstm_scan_block.h"
#include "tests/ops/emulated_block.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

std::vector<float> random_values(size_t n, uint64_t seed, float scale) {
  return leaf({int64_t(n)}, seed, scale).to_vector();
}

}  // namespace

TEST_CASE("lstm scan block: the persistent CUDA kernels' code, emulated on the CPU, gives the CPU scan's results") {
  using lstm_scan_block::kScanRows;
  struct Case {
    int64_t T, B, H;
    std::vector<int64_t> lengths;
    bool reverse, states;
    int threads;  // per block: the CUDA launch uses 256; fewer than a row's H exercises the strided loops
  };
  const std::vector<Case> cases = {
      {5, 3, 4, {}, false, false, 256},
      {7, 4, 9, {7, 0, 3, 5}, true, true, 64},
      {9, 5, 17, {9, 2, 0, 9, 4}, false, true, 16},
      {6, 9, 33, {}, true, false, 32},
      {12, 2, 33, {12, 1}, true, true, 8},
      {1, 1, 1, {}, false, false, 4},
      {3, 6, 128, {3, 1, 2, 3, 0, 2}, false, true, 256},  // MMSA's text H with the launch's threads: 2 dh parts
      {4, 5, 40, {}, true, true, 256},                       // 6 dh parts over 160 gates: uneven part ends
      {2, 3, 20, {2, 1, 2}, false, false, 8},                // G 80: the unrolled loops with a remainder
  };
  uint64_t seed = 7100;
  for (const Case& c : cases) {
    const int64_t T = c.T, B = c.B, H = c.H, G = 4 * H, BH = B * H;
    CAPTURE(T);
    CAPTURE(B);
    CAPTURE(H);
    CAPTURE(c.reverse);
    CAPTURE(c.threads);
    const std::vector<int64_t> len = c.lengths.empty() ? std::vector<int64_t>(size_t(B), T) : c.lengths;
    const std::vector<float> xg = random_values(size_t(T * B * G), seed++, 1),
                             w = random_values(size_t(G * H), seed++, 0.3f), h0 = random_values(size_t(BH), seed++, 1),
                             c0 = random_values(size_t(BH), seed++, 1),
                             gy = random_values(size_t((T + 2) * BH), seed++, 1);
    const float* h0p = c.states ? h0.data() : nullptr;
    const float* c0p = c.states ? c0.data() : nullptr;

    // The CPU scan.
    std::vector<float> acts(size_t(T * B * G)), hp(size_t(T * BH)), cp(size_t(T * BH)), y(size_t((T + 2) * BH));
    cpu::LstmScan s;
    s.T = T, s.B = B, s.H = H, s.reverse = c.reverse, s.lengths = len.data(), s.w_hh = w.data();
    s.acts = acts.data(), s.h_prev = hp.data(), s.c_prev = cp.data();
    cpu::lstm_scan_forward(s, xg.data(), h0p, c0p, y.data());
    std::vector<float> gx(size_t(T * B * G)), gw(static_cast<size_t>(G * H)), gh0(static_cast<size_t>(BH)),
        gc0(static_cast<size_t>(BH));
    cpu::lstm_scan_backward(s, gy.data(), gx.data(), gw.data(), gh0.data(), gc0.data());

    // The kernels' code: forward reads w_hh transposed, as the CUDA path passes it.
    std::vector<float> wt(static_cast<size_t>(G * H));
    for (int64_t j = 0; j < G; ++j)
      for (int64_t k = 0; k < H; ++k) wt[size_t(k * G + j)] = w[size_t(j * H + k)];
    const int blocks = int((B + kScanRows - 1) / kScanRows);
    // w_hh's rows cached in shared memory: none, some (a count that splits the unrolled chunks and the dh parts
    // unevenly), all.
    for (const int64_t part : {int64_t(0), int64_t(1), int64_t(2)}) {
      const int64_t cached_f = part == 0 ? 0 : part == 1 ? H / 2 + 1 : H;
      const int64_t cached_b = part == 0 ? 0 : part == 1 ? G * 2 / 5 + 3 : G;
      CAPTURE(cached_f);
      CAPTURE(cached_b);
      std::vector<float> acts2(acts.size(), NAN), hp2(hp.size(), NAN), cp2(cp.size(), NAN), y2(y.size(), NAN);
      const size_t forward_shared = size_t(lstm_scan_block::scan_forward_shared_floats(H, cached_f));
      emulate_grid(blocks, c.threads, forward_shared, [&](const EmulatedBlock& blk) {
        lstm_scan_block::scan_forward_persistent(blk, xg.data(), wt.data(), h0p, c0p, y2.data(), acts2.data(),
                                                 hp2.data(), cp2.data(), len.data(), T, B, H, c.reverse, cached_f);
      });
      std::vector<float> gx2(gx.size(), NAN), gh02(gh0.size(), NAN), gc02(gc0.size(), NAN);
      const size_t backward_shared = size_t(lstm_scan_block::scan_backward_shared_floats(H, c.threads, cached_b));
      emulate_grid(blocks, c.threads, backward_shared, [&](const EmulatedBlock& blk) {
        lstm_scan_block::scan_backward_persistent(blk, gy.data(), w.data(), acts2.data(), cp2.data(), gx2.data(),
                                                  gh02.data(), gc02.data(), len.data(), T, B, H, c.reverse, cached_b);
      });
      // The CPU's exp is vectorised, the kernels' is expf, and the gate sums run in another order: a few ulps.
      check_close(y2, y, 1e-5, 1e-6, "outputs and final state");
      check_close(hp2, hp, 1e-5, 1e-6, "saved h_prev");
      check_close(cp2, cp, 1e-5, 1e-6, "saved c_prev");
      // Backward, dh sums 4H terms of O(0.3) per step, in parts (the CPU: in one run): an absolute error that
      // grows with their count, which the steps then carry into the gate grads.
      const double grad_atol = 1e-6 * std::sqrt(double(G));
      check_close(gx2, gx, 1e-5, grad_atol, "gate grads");
      check_close(gh02, gh0, 1e-5, grad_atol, "grad of h0");
      check_close(gc02, gc0, 1e-5, grad_atol, "grad of c0");
    }
  }
}

// How much of w_hh the launches cache: all of it when it fits beside the state, else a multiple of the unroll,
// and nothing when the state alone takes the budget. MMSA's H 128 on an H100 / H200 (227 KiB a block): 104 of
// w_hh^T's 128 rows forward, 416 of w_hh's 512 backward (2 dh parts at 256 threads).
TEST_CASE("lstm scan block: the w_hh rows cached in shared memory") {
  using namespace lstm_scan_block;
  const int64_t budget = 232448 / 4;
  CHECK(cached_rows(128, 512, scan_forward_state_floats(128), budget) == 104);
  CHECK(cached_rows(512, 128, scan_backward_state_floats(128, 256), budget) == 416);
  CHECK(cached_rows(32, 128, scan_forward_state_floats(32), budget) == 32);  // TFN's audio LSTM: all of it
  CHECK(cached_rows(128, 512, scan_forward_state_floats(128), 1000) == 0);   // the state alone is over
  CHECK(cached_rows(128, 512, scan_forward_state_floats(128), 1024 + 512 * 9) == 8);
  CHECK(scan_forward_shared_floats(128, 104) <= budget);
  CHECK(scan_backward_shared_floats(128, 256, 416) <= budget);
}
