// The fused LSTM ops against compositions of elementary ops, and against finite differences.
#include "ops/lstm_cell.h"

#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// The cell from elementary ops: i, f, g, o = chunks of gates; c = f * c_prev + i * g; h = o * tanh(c).
Tensor composed_cell(const Tensor& gates, const Tensor& c_prev) {
  std::vector<Tensor> q = chunk(gates, 4, 1);
  Tensor i = sigmoid(q[0]), f = sigmoid(q[1]), g = tanh(q[2]), o = sigmoid(q[3]);
  Tensor c = add(mul(f, c_prev), mul(i, g));
  Tensor h = mul(o, tanh(c));
  return concat({unsqueeze(h, 0), unsqueeze(c, 0)}, 0);
}

Tensor row(const Tensor& x, int64_t k) { return squeeze(slice(x, 0, k, k + 1), 0); }

// lstm_scan step by step from lstm_cell, matmul and where (one node per step: fine for a few steps).
Tensor composed_scan(const Tensor& xg, const Tensor& w_hh, Tensor h, Tensor c, const std::vector<int64_t>& lengths,
                     bool reverse) {
  int64_t T = xg.size(0), B = xg.size(1), H = w_hh.size(1);
  if (!h.defined()) h = Tensor::zeros({B, H});
  if (!c.defined()) c = Tensor::zeros({B, H});
  std::vector<Tensor> ys(static_cast<size_t>(T));
  for (int64_t step = 0; step < T; ++step) {
    int64_t t = reverse ? T - 1 - step : step;
    std::vector<float> on(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) on[b] = lengths.empty() || t < lengths[b] ? 1.0f : 0.0f;
    Tensor active = Tensor::from_vector(on, {B, 1});
    Tensor hc = lstm_cell(add(row(xg, t), matmul(h, w_hh, false, true)), c);
    Tensor h_new = row(hc, 0), c_new = row(hc, 1);
    ys[t] = unsqueeze(mul(h_new, active), 0);
    h = where(active, h_new, h);
    c = where(active, c_new, c);
  }
  ys.push_back(unsqueeze(h, 0));
  ys.push_back(unsqueeze(c, 0));
  return concat(ys, 0);
}

}  // namespace

TEST_CASE("lstm_cell: forward and backward match the composed cell") {
  Tensor gates = leaf({3, 20}, 1, 1.5f), c_prev = leaf({3, 5}, 2);
  Tensor fused = lstm_cell(gates, c_prev);
  CHECK(fused.shape() == Shape{2, 3, 5});
  Tensor gates2 = leaf({3, 20}, 1, 1.5f), c_prev2 = leaf({3, 5}, 2);
  Tensor ref = composed_cell(gates2, c_prev2);
  check_close(fused, ref, 1e-5, 1e-6, "hc");

  Tensor w = Tensor::randn({2, 3, 5});
  fused.backward(w);
  ref.backward(w);
  check_close(gates.grad(), gates2.grad(), 1e-5, 1e-6, "grad gates");
  check_close(c_prev.grad(), c_prev2.grad(), 1e-5, 1e-6, "grad c_prev");
}

TEST_CASE("lstm_cell: finite differences, size 0, errors") {
  check_gradients([](const std::vector<Tensor>& in) { return lstm_cell(in[0], in[1]); },
                  {leaf({2, 12}, 3), leaf({2, 3}, 4)});
  // only c_prev requires grad
  Tensor frozen = leaf({2, 8}, 5);
  frozen.set_requires_grad(false);
  check_gradients([](const std::vector<Tensor>& in) { return lstm_cell(in[0], in[1]); }, {frozen, leaf({2, 2}, 6)});
  CHECK(lstm_cell(Tensor::zeros({0, 8}), Tensor::zeros({0, 2})).shape() == Shape{2, 0, 2});

  check_throws_with([] { lstm_cell(Tensor::zeros({2, 12}), Tensor::zeros({2, 4})); },
                    {"lstm_cell", "[2, 16]", "[2, 12]"});
  check_throws_with([] { lstm_cell(Tensor::zeros({2, 12}), Tensor::zeros({6})); }, {"lstm_cell", "c_prev", "[6]"});
}

TEST_CASE("lstm_scan: matches the step-by-step composition, forward and reverse, with lengths") {
  const int64_t T = 5, B = 4, H = 3;
  for (bool reverse : {false, true})
    for (bool with_lengths : {false, true})
      for (bool with_state : {false, true}) {
        CAPTURE(reverse);
        CAPTURE(with_lengths);
        CAPTURE(with_state);
        std::vector<int64_t> lengths;
        if (with_lengths) lengths = {2, 5, 0, 4};
        Tensor xg = leaf({T, B, 4 * H}, 10), w = leaf({4 * H, H}, 11, 0.5f);
        Tensor h0 = with_state ? leaf({B, H}, 12) : Tensor(), c0 = with_state ? leaf({B, H}, 13) : Tensor();
        Tensor xg2 = leaf({T, B, 4 * H}, 10), w2 = leaf({4 * H, H}, 11, 0.5f);
        Tensor h02 = with_state ? leaf({B, H}, 12) : Tensor(), c02 = with_state ? leaf({B, H}, 13) : Tensor();

        Tensor y = lstm_scan(xg, w, h0, c0, lengths, reverse);
        Tensor ref = composed_scan(xg2, w2, h02, c02, lengths, reverse);
        REQUIRE(y.shape() == Shape{T + 2, B, H});
        check_close(y, ref, 1e-5, 1e-6, "y");

        Tensor gy = Tensor::randn({T + 2, B, H});
        y.backward(gy);
        ref.backward(gy);
        check_close(xg.grad(), xg2.grad(), 1e-4, 1e-6, "grad xgates");
        check_close(w.grad(), w2.grad(), 1e-4, 1e-6, "grad w_hh");
        if (with_state) {
          check_close(h0.grad(), h02.grad(), 1e-4, 1e-6, "grad h0");
          check_close(c0.grad(), c02.grad(), 1e-4, 1e-6, "grad c0");
        }
      }
}

TEST_CASE("lstm_scan: packed-sequence semantics") {
  // Each sample alone, cut to its own length, gives the same outputs and final state as the padded batch.
  const int64_t T = 6, B = 3, H = 4;
  std::vector<int64_t> lengths = {6, 1, 3};
  Tensor xg = leaf({T, B, 4 * H}, 20), w = leaf({4 * H, H}, 21, 0.5f);
  for (bool reverse : {false, true}) {
    CAPTURE(reverse);
    std::vector<float> y = lstm_scan(xg, w, Tensor(), Tensor(), lengths, reverse).to_vector();
    for (int64_t b = 0; b < B; ++b) {
      int64_t len = lengths[b];
      Tensor alone = slice(slice(xg, 1, b, b + 1), 0, 0, len).detach();  // [len, 1, 4H]
      std::vector<float> ya = lstm_scan(alone, w, Tensor(), Tensor(), {}, reverse).to_vector();
      for (int64_t t = 0; t < T + 2; ++t) {
        int64_t ta = t < T ? t : t - T + len;  // final rows follow the len output rows
        for (int64_t j = 0; j < H; ++j) {
          float got = y[size_t((t * B + b) * H + j)];
          float want = (t < T && t >= len) ? 0.0f : ya[size_t((ta * 1) * H + j)];
          CHECK_MESSAGE(std::fabs(got - want) <= 1e-6f, "b " << b << " t " << t << " j " << j);
        }
      }
    }
  }
}

TEST_CASE("lstm_scan: finite differences, empty sequence, errors") {
  std::vector<int64_t> lengths = {3, 1};
  for (bool reverse : {false, true})
    check_gradients(
        [&](const std::vector<Tensor>& in) { return lstm_scan(in[0], in[1], in[2], in[3], lengths, reverse); },
        {leaf({3, 2, 8}, 30), leaf({8, 2}, 31, 0.5f), leaf({2, 2}, 32), leaf({2, 2}, 33)});

  // T = 0: no step, the final state is the initial one.
  Tensor h0 = leaf({2, 3}, 34), c0 = leaf({2, 3}, 35);
  Tensor y = lstm_scan(Tensor::zeros({0, 2, 12}), Tensor::zeros({12, 3}), h0, c0);
  REQUIRE(y.shape() == Shape{2, 2, 3});
  check_close(y, concat({unsqueeze(h0, 0), unsqueeze(c0, 0)}, 0), 0, 0, "T = 0");

  Tensor xg = Tensor::zeros({4, 2, 12}), w = Tensor::zeros({12, 3});
  check_throws_with([&] { lstm_scan(xg, w, Tensor(), Tensor(), {1, 5}); }, {"lstm_scan", "length 5", "[0, 4]"});
  check_throws_with([&] { lstm_scan(xg, w, Tensor(), Tensor(), {1, -1}); }, {"lstm_scan", "length -1"});
  check_throws_with([&] { lstm_scan(xg, w, Tensor(), Tensor(), {1}); }, {"lstm_scan", "1 lengths", "batch of 2"});
  check_throws_with(
      [&] {
        lstm_scan(xg, Tensor::zeros({12, 4}), Tensor(), Tensor());
      },
      {"lstm_scan", "w_hh", "[12, 4]"});
  check_throws_with([&] { lstm_scan(Tensor::zeros({4, 2, 10}), w, Tensor(), Tensor()); },
                    {"lstm_scan", "xgates", "[4, 2, 10]"});
  check_throws_with(
      [&] {
        lstm_scan(xg, w, Tensor::zeros({3, 3}), Tensor());
      },
      {"lstm_scan", "initial state", "[3, 3]"});
}

TEST_CASE("lstm_layer: linear then lstm_scan from a zero state, with and without biases; errors") {
  const int64_t T = 4, B = 3, I = 5, H = 2;
  const std::vector<int64_t> lengths = {4, 0, 2};
  Tensor x = leaf({T, B, I}, 40), w_ih = leaf({4 * H, I}, 41, 0.5f), w_hh = leaf({4 * H, H}, 42, 0.5f);
  Tensor b_ih = leaf({4 * H}, 43), b_hh = leaf({4 * H}, 44);
  for (bool reverse : {false, true}) {
    CAPTURE(reverse);
    Tensor want = lstm_scan(add(matmul(x, transpose(w_ih, 0, 1)), add(b_ih, b_hh)), w_hh, Tensor(), Tensor(), lengths,
                            reverse);
    check_close(lstm_layer(x, w_ih, w_hh, b_ih, b_hh, lengths, reverse), want, 1e-6, 1e-6, "with biases");
    want = lstm_scan(matmul(x, transpose(w_ih, 0, 1)), w_hh, Tensor(), Tensor(), lengths, reverse);
    check_close(lstm_layer(x, w_ih, w_hh, Tensor(), Tensor(), lengths, reverse), want, 1e-6, 1e-6, "no biases");
    check_gradients(
        [&](const std::vector<Tensor>& in) { return lstm_layer(in[0], in[1], in[2], in[3], in[4], lengths, reverse); },
        {x, w_ih, w_hh, b_ih, b_hh});
  }
  check_throws_with([&] { lstm_layer(x, w_ih, w_hh, b_ih, Tensor()); }, {"lstm_layer", "b_ih and b_hh"});
  check_throws_with([&] { lstm_layer(x, leaf({4 * H, I + 1}, 45), w_hh, b_ih, b_hh); },
                    {"lstm_layer", "w_ih [4H, I]", "[8, 6]"});
  check_throws_with([&] { lstm_layer(x, w_ih, leaf({4 * H, H + 1}, 46), b_ih, b_hh); },
                    {"lstm_layer", "w_hh", "[8, 3]"});
  check_throws_with([&] { lstm_layer(x, w_ih, w_hh, leaf({4 * H + 1}, 47), b_hh); }, {"lstm_layer", "biases", "[9]"});
  check_throws_with([&] { lstm_layer(x, w_ih, w_hh, b_ih, b_hh, {1, 2}); }, {"lstm_layer", "2 lengths", "batch of 3"});
  check_throws_with([&] { lstm_layer(x, w_ih, w_hh, b_ih, b_hh, {1, 2, 5}); }, {"lstm_scan", "length 5"});
}
