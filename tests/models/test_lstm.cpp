// LSTM: forward and backward against PyTorch 1.13 (tests/golden/make_seq_golden.py, packed sequences
// included), PyTorch's parameter names and counts, long sequences, layouts, dropout and errors.
#include "models/lstm.h"

#include <cmath>

#include "tests/golden/golden.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

// One fixture case: loads state.* by name, runs forward (with lengths when the case has them), backward of
// sum(out * w.out) + sum(h_n * w.h_n) + sum(c_n * w.c_n), and compares outputs and every grad.
void check_golden(const std::string& case_name, LSTM& lstm) {
  CAPTURE(case_name);
  golden::Fixture fx = golden::load("seq/" + case_name + ".json");
  lstm.load_state_dict(fx.with_prefix("state."));
  Tensor x = fx["x"];
  x.set_requires_grad(true);
  LSTMOutput y = fx.has("lengths") ? lstm.forward(x, fx["lengths"]) : lstm.forward(x);
  check_close(y.output, fx["out"], 1e-4, 1e-5, case_name + " out");
  check_close(y.h_n, fx["h_n"], 1e-4, 1e-5, case_name + " h_n");
  check_close(y.c_n, fx["c_n"], 1e-4, 1e-5, case_name + " c_n");
  Tensor loss = add(add(sum(mul(y.output, fx["w.out"])), sum(mul(y.h_n, fx["w.h_n"]))), sum(mul(y.c_n, fx["w.c_n"])));
  loss.backward();
  check_close(x.grad(), fx["grad.x"], 1e-4, 1e-5, case_name + " grad.x");
  for (const auto& [name, p] : lstm.named_parameters()) {
    REQUIRE_MESSAGE(p.grad().defined(), case_name << ": no grad for " << name);
    check_close(p.grad(), fx["grad." + name], 1e-4, 1e-5, case_name + " grad." + name);
  }
}

}  // namespace

TEST_CASE("LSTM: matches PyTorch, 2 layers, bidirectional with lengths, without bias") {
  LSTM two_layer(4, 3, 2);
  check_golden("lstm_2layer", two_layer);
  LSTM bidir(4, 3, 2, true, true, true);
  check_golden("lstm_bidir_lengths", bidir);
  LSTM nobias(3, 2, 1, false, true, true);
  check_golden("lstm_bidir_nobias", nobias);
}

TEST_CASE("LSTM: PyTorch's parameter names, shapes, counts and init range") {
  LSTM lstm(768, 128);
  CHECK(lstm.num_parameters() == 4 * 128 * (768 + 128) + 8 * 128);  // 459,776 as torch.nn.LSTM(768, 128)
  CHECK(lstm.num_parameters() == 459776);

  LSTM bidir(5, 3, 2, true, true, true);
  CHECK(names(bidir.named_parameters()) ==
        std::vector<std::string>{"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse",
                                 "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse", "weight_ih_l1",
                                 "weight_hh_l1", "bias_ih_l1", "bias_hh_l1", "weight_ih_l1_reverse",
                                 "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"});
  std::map<std::string, Tensor> state = bidir.state_dict();
  CHECK(state["weight_ih_l0"].shape() == Shape{12, 5});
  CHECK(state["weight_ih_l1_reverse"].shape() == Shape{12, 6});  // layer 1 reads both directions: 2H
  CHECK(state["weight_hh_l1"].shape() == Shape{12, 3});
  CHECK(state["bias_hh_l0_reverse"].shape() == Shape{12});
  CHECK(LSTM(5, 3, 1, false).named_parameters().size() == 2);

  // U(-1/sqrt(H), 1/sqrt(H)) for every parameter: inside the bound and spread over it.
  LSTM wide(6, 16);
  for (const auto& [name, p] : wide.named_parameters()) {
    CAPTURE(name);
    float lo = 1, hi = -1;
    for (float v : p.to_vector()) lo = std::min(lo, v), hi = std::max(hi, v);
    CHECK(lo >= -0.25f);
    CHECK(hi <= 0.25f);
    CHECK(hi - lo > 0.4f);
  }
}

TEST_CASE("LSTM: T = 500 runs forward and backward; time-major layout agrees") {
  manual_seed(7);
  LSTM lstm(6, 8, 2, true, true, true);
  Tensor x = leaf({3, 500, 6}, 40);
  LSTMOutput y = lstm.forward(x, std::vector<int64_t>{500, 17, 321});
  CHECK(y.output.shape() == Shape{3, 500, 16});
  CHECK(y.h_n.shape() == Shape{4, 3, 8});
  add(sum(y.output), sum(y.h_n)).backward();
  std::vector<float> gx = x.grad().to_vector();
  bool finite = true;
  float padding_grad = 0;  // sample 1 stops at 17 steps: no grad may reach its padding
  for (size_t i = 0; i < gx.size(); ++i) {
    finite = finite && std::isfinite(gx[i]);
    if (i >= 500 * 6 + 17 * 6 && i < 2 * 500 * 6) padding_grad = std::max(padding_grad, std::fabs(gx[i]));
  }
  CHECK(finite);
  CHECK(padding_grad == 0.0f);
  CHECK(gx[0] != 0.0f);  // the first step of sample 0 still gets a grad through 500 steps of the reverse path

  // batch_first = false on the transposed input gives the transposed output and the same final states
  LSTM time_major(6, 8, 2, true, false, true);
  time_major.load_state_dict(lstm.state_dict());
  Tensor xs = slice(x, 1, 0, 20).detach();
  LSTMOutput a = lstm.forward(xs, std::vector<int64_t>{20, 5, 11});
  LSTMOutput b = time_major.forward(transpose(xs, 0, 1), Tensor::from_vector({20, 5, 11}, {3}));
  check_close(transpose(b.output, 0, 1), a.output, 1e-6, 1e-7, "time-major output");
  check_close(b.h_n, a.h_n, 1e-6, 1e-7, "time-major h_n");
  check_close(b.c_n, a.c_n, 1e-6, 1e-7, "time-major c_n");
}

TEST_CASE("LSTM: inter-layer dropout only in training, not after the last layer") {
  manual_seed(8);
  LSTM with(4, 5, 2, true, true, false, 0.5f), without(4, 5, 2, true, true, false, 0.0f);
  without.load_state_dict(with.state_dict());
  Tensor x = Tensor::randn({2, 7, 4});
  with.eval();
  check_close(with.forward(x).output, without.forward(x).output, 0, 0, "eval: no dropout");
  with.train();
  CHECK(with.forward(x).output.to_vector() != without.forward(x).output.to_vector());
  // one layer: nothing between layers to drop
  LSTM single(4, 5, 1, true, true, false, 0.5f), plain(4, 5);
  plain.load_state_dict(single.state_dict());
  check_close(single.forward(x).output, plain.forward(x).output, 0, 0, "single layer");
}

TEST_CASE("LSTM: errors name the module and the shapes") {
  LSTM lstm(4, 3);
  check_throws_with([&] { lstm.forward(Tensor::zeros({2, 4})); }, {"LSTM(4, 3)", "[B, T, in]", "[2, 4]"});
  check_throws_with([&] { lstm.forward(Tensor::zeros({2, 5, 6})); }, {"LSTM(4, 3)", "4 features", "[2, 5, 6]"});
  Tensor x = Tensor::zeros({2, 5, 4});
  check_throws_with([&] { lstm.forward(x, std::vector<int64_t>{5, 6}); }, {"LSTM", "length 6", "[0, 5]"});
  check_throws_with([&] { lstm.forward(x, std::vector<int64_t>{-1, 2}); }, {"LSTM", "length -1"});
  check_throws_with([&] { lstm.forward(x, std::vector<int64_t>{3}); }, {"LSTM", "1 lengths", "batch of 2"});
  check_throws_with([&] { lstm.forward(x, Tensor::from_vector({2.5f, 3}, {2})); }, {"LSTM", "2.5", "not an integer"});
  check_throws_with([&] { lstm.forward(x, Tensor::zeros({2, 1})); }, {"LSTM", "lengths must be [B]"});
  check_throws_with([] { LSTM(4, 0); }, {"LSTM", "positive"});
  check_throws_with([] { LSTM(4, 3, 1, true, true, false, 1.5f); }, {"LSTM", "dropout"});
}
