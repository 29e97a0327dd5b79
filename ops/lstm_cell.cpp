// The fused LSTM ops: shape checks, dispatch, autograd. Why two ops and the packed outputs: ops/lstm_cell.h.
#include "ops/lstm_cell.h"

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/profile.h"
#include "ops/cpu/lstm_cell.h"
#include "ops/cuda/kernels.h"
#include "ops/ops.h"

namespace msmix {

Tensor lstm_cell(const Tensor& gates, const Tensor& c_prev) {
  MSMIX_OP_RANGE("lstm_cell");
  MSMIX_CHECK(gates.defined() && c_prev.defined(), "lstm_cell: undefined input");
  Device dev = common_device("lstm_cell", {&gates, &c_prev});
  MSMIX_CHECK(c_prev.dim() == 2, "lstm_cell: c_prev must be [B, H], got {}", describe(c_prev));
  int64_t B = c_prev.size(0), H = c_prev.size(1);
  MSMIX_CHECK(gates.shape() == Shape({B, 4 * H}), "lstm_cell: gates must be [B, 4H] = [{}, {}] for c_prev {}, got {}",
              B, 4 * H, shape_str(c_prev.shape()), shape_str(gates.shape()));
  Tensor acts = Tensor::empty(gates.shape(), dev);
  Tensor hc = Tensor::empty({2, B, H}, dev);
  (dev.is_cuda() ? cuda::lstm_cell_forward : cpu::lstm_cell_forward)(gates.data(), c_prev.data(), acts.data(),
                                                                     hc.data(), hc.data() + B * H, B, H);

  if (any_requires_grad({&gates, &c_prev})) {
    Tensor c_prev_ = c_prev.detach();
    record(hc, "lstm_cell", {gates, c_prev}, [acts, c_prev_, B, H](const Tensor& g, const std::vector<bool>&) {
      Tensor ggates = Tensor::empty({B, 4 * H}, g.device()), gc_prev = Tensor::empty({B, H}, g.device());
      (g.is_cuda() ? cuda::lstm_cell_backward : cpu::lstm_cell_backward)(
          acts.data(), c_prev_.data(), g.data(), g.data() + B * H, ggates.data(), gc_prev.data(), B, H);
      return Grads{ggates, gc_prev};
    });
  }
  return hc;
}

Tensor lstm_scan(const Tensor& xgates, const Tensor& w_hh, const Tensor& h0, const Tensor& c0,
                 const std::vector<int64_t>& lengths, bool reverse) {
  MSMIX_OP_RANGE("lstm_scan");
  MSMIX_CHECK(xgates.defined() && w_hh.defined(), "lstm_scan: undefined input");
  Device dev = common_device("lstm_scan", {&xgates, &w_hh, &h0, &c0});
  MSMIX_CHECK(w_hh.dim() == 2 && w_hh.size(0) == 4 * w_hh.size(1), "lstm_scan: w_hh must be [4H, H], got {}",
              describe(w_hh));
  int64_t H = w_hh.size(1);
  MSMIX_CHECK(xgates.dim() == 3 && xgates.size(2) == 4 * H,
              "lstm_scan: xgates must be [T, B, 4H] with 4H = {} (w_hh {}), got {}", 4 * H, shape_str(w_hh.shape()),
              shape_str(xgates.shape()));
  int64_t T = xgates.size(0), B = xgates.size(1);
  for (const Tensor* s : {&h0, &c0})
    MSMIX_CHECK(!s->defined() || s->shape() == Shape({B, H}),
                "lstm_scan: initial state must be [B, H] = [{}, {}], got {}", B, H, shape_str(s->shape()));
  std::vector<int64_t> lens = lengths.empty() ? std::vector<int64_t>(size_t(B), T) : lengths;
  MSMIX_CHECK(int64_t(lens.size()) == B, "lstm_scan: {} lengths for a batch of {}", lens.size(), B);
  for (int64_t len : lens)
    MSMIX_CHECK(len >= 0 && len <= T, "lstm_scan: length {} outside [0, {}] (xgates {})", len, T,
                shape_str(xgates.shape()));

  // Saved for backward: activated gates and the state entering each step (see ops/cpu/lstm_cell.h).
  Tensor acts = Tensor::empty({T, B, 4 * H}, dev);
  Tensor h_prev = Tensor::empty({T, B, H}, dev), c_prev = Tensor::empty({T, B, H}, dev);
  Tensor y = Tensor::empty({T + 2, B, H}, dev);
  cpu::LstmScan scan;
  scan.T = T, scan.B = B, scan.H = H, scan.reverse = reverse, scan.lengths = lens.data();
  scan.w_hh = w_hh.data(), scan.acts = acts.data(), scan.h_prev = h_prev.data(), scan.c_prev = c_prev.data();
  (dev.is_cuda() ? cuda::lstm_scan_forward : cpu::lstm_scan_forward)(
      scan, xgates.data(), h0.defined() ? h0.data() : nullptr, c0.defined() ? c0.data() : nullptr, y.data());

  if (any_requires_grad({&xgates, &w_hh, &h0, &c0})) {
    Tensor w_hh_ = w_hh.detach();
    record(y, "lstm_scan", {xgates, w_hh, h0, c0},
           [T, B, H, scan, lens, w_hh_, acts, h_prev, c_prev](const Tensor& g, const std::vector<bool>& needs) {
             Device d = g.device();
             Tensor gx = Tensor::empty({T, B, 4 * H}, d), gw, gh0, gc0;
             if (needs[1]) gw = Tensor::empty(w_hh_.shape(), d);
             if (needs[2]) gh0 = Tensor::empty({B, H}, d);
             if (needs[3]) gc0 = Tensor::empty({B, H}, d);
             cpu::LstmScan s = scan;  // the saved tensors and lengths are captured by value: repoint into them
             s.lengths = lens.data(), s.w_hh = w_hh_.data(), s.acts = acts.data();
             s.h_prev = h_prev.data(), s.c_prev = c_prev.data();
             (d.is_cuda() ? cuda::lstm_scan_backward : cpu::lstm_scan_backward)(
                 s, g.data(), gx.data(), needs[1] ? gw.data() : nullptr, needs[2] ? gh0.data() : nullptr,
                 needs[3] ? gc0.data() : nullptr);
             return Grads{needs[0] ? gx : Tensor(), gw, gh0, gc0};
           });
  }
  return y;
}

namespace {

// The cuDNN layer: one node whose backward is cuDNN's (all five grads from one pair of calls).
Tensor lstm_layer_cudnn(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                        const Tensor& b_hh, const std::vector<int64_t>& lengths, bool persistent) {
  MSMIX_OP_RANGE("lstm_layer_cudnn");
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  cuda::CudnnLstmShape shape;
  shape.T = T, shape.B = B, shape.I = I, shape.H = H, shape.lengths = lengths.data(), shape.persistent = persistent;
  const bool bias = b_ih.defined();  // and b_hh: lstm_layer checked
  Tensor y = Tensor::empty({T + 2, B, H}, x.device());
  const bool training = any_requires_grad({&x, &w_ih, &w_hh, &b_ih, &b_hh});
  std::shared_ptr<cuda::CudnnLstmRun> run =
      cuda::cudnn_lstm_forward(shape, x.data(), w_ih.data(), w_hh.data(), bias ? b_ih.data() : nullptr,
                               bias ? b_hh.data() : nullptr, y.data(), training);
  if (training) {
    // x and y's storage, not y itself (a saved output would be a reference cycle through its node).
    Tensor x_ = x.detach(), y_ = y.detach();
    record(y, "lstm_layer_cudnn", {x, w_ih, w_hh, b_ih, b_hh},
           [run, x_, y_, I, H, bias](const Tensor& g, const std::vector<bool>& needs) {
             Device d = g.device();
             Tensor gx = Tensor::empty(x_.shape(), d), gw_ih = Tensor::empty({4 * H, I}, d);
             Tensor gw_hh = Tensor::empty({4 * H, H}, d), gb_ih, gb_hh;
             if (bias) gb_ih = Tensor::empty({4 * H}, d), gb_hh = Tensor::empty({4 * H}, d);
             cuda::cudnn_lstm_backward(*run, x_.data(), y_.data(), g.data(), gx.data(), gw_ih.data(), gw_hh.data(),
                                       bias ? gb_ih.data() : nullptr, bias ? gb_hh.data() : nullptr);
             Grads grads{gx, gw_ih, gw_hh, gb_ih, gb_hh};
             for (size_t i = 0; i < grads.size(); ++i)
               if (!needs[i]) grads[i] = Tensor();
             return grads;
           });
  }
  return y;
}

}  // namespace

Tensor lstm_layer(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                  const std::vector<int64_t>& lengths, bool reverse) {
  MSMIX_CHECK(x.defined() && w_ih.defined() && w_hh.defined(), "lstm_layer: undefined input");
  MSMIX_CHECK(b_ih.defined() == b_hh.defined(), "lstm_layer: b_ih and b_hh must both be given or both undefined");
  Device dev = common_device("lstm_layer", {&x, &w_ih, &w_hh, &b_ih, &b_hh});
  MSMIX_CHECK(w_hh.dim() == 2 && w_hh.size(0) == 4 * w_hh.size(1), "lstm_layer: w_hh must be [4H, H], got {}",
              describe(w_hh));
  const int64_t H = w_hh.size(1);
  MSMIX_CHECK(x.dim() == 3 && w_ih.dim() == 2 && w_ih.shape() == Shape({4 * H, x.size(2)}),
              "lstm_layer: x must be [T, B, I] and w_ih [4H, I] with 4H = {}, got x {} and w_ih {}", 4 * H,
              describe(x), describe(w_ih));
  for (const Tensor* b : {&b_ih, &b_hh})
    MSMIX_CHECK(!b->defined() || b->shape() == Shape({4 * H}), "lstm_layer: biases must be [4H] = [{}], got {}",
                4 * H, describe(*b));
  const int64_t T = x.size(0), B = x.size(1);
  MSMIX_CHECK(lengths.empty() || int64_t(lengths.size()) == B, "lstm_layer: {} lengths for a batch of {}",
              lengths.size(), B);
  // cuDNN takes non-empty sizes and at least one step per sample; anything else stays with our scan.
  // Its persistent algorithm takes only batches whose samples all run T steps; others get the standard one.
  bool cudnn_fits = T > 0 && B > 0 && x.size(2) > 0 && H > 0, all_full = true;
  for (int64_t len : lengths) cudnn_fits = cudnn_fits && len >= 1 && len <= T, all_full = all_full && len == T;
  if (dev.is_cuda() && !reverse && cudnn_fits) {
    const cuda::LstmKernel kernel = cuda::lstm_kernel();
    if (cuda::is_cudnn(kernel))
      return lstm_layer_cudnn(x, w_ih, w_hh, b_ih, b_hh,
                              lengths.empty() ? std::vector<int64_t>(size_t(B), T) : lengths,
                              kernel == cuda::LstmKernel::cudnn_persistent && all_full);
  }
  Tensor bias = b_ih.defined() ? add(b_ih, b_hh) : Tensor();
  Tensor xgates = linear(x, w_ih, bias);  // [T, B, 4H], one GEMM
  return lstm_scan(xgates, w_hh, Tensor(), Tensor(), lengths, reverse);
}

}  // namespace msmix
