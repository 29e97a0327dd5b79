// The multi-tensor CUDA kernels' bodies (ops/cuda/multi_tensor_block.h: Adam over many tensors in one launch,
// clip_grad_norm in three) run on the CPU through tests/ops/emulated_block.h, against the CPU twins: the
// chunk table (empty tensors dropped, sizes on and across chunk edges), grids smaller than the chunk count,
// tensors with their own scalars, and the clipping decision (clipped, within max_norm, not finite).
// tests/cuda/test_cuda_training.cpp runs the same kernels on a GPU.
#include <cmath>

#include "ops/cpu/optimizer.h"
#include "ops/cuda/multi_tensor_block.h"
#include "tests/ops/emulated_block.h"
#include "tests/testing.h"

using namespace msmix;
using namespace msmix::testing;
namespace mt = msmix::multi_tensor_block;

namespace {

std::vector<float> random_values(int64_t n, uint64_t seed, float scale = 1, float shift = 0) {
  return n == 0 ? std::vector<float>() : leaf({n}, seed, scale, shift).to_vector();
}

// Adam's scalars after `step` steps of lr, with L2 decay (Adam) or decoupled decay (AdamW), as msmix/optimizer.
cpu::AdamScalars adam_scalars(int step, double lr, double weight_decay, bool decoupled) {
  const double b1 = 0.9, b2 = 0.999;
  cpu::AdamScalars s;
  s.beta1 = float(b1), s.one_minus_beta1 = float(1 - b1), s.beta2 = float(b2), s.one_minus_beta2 = float(1 - b2);
  s.eps = 1e-8f;
  s.l2_weight_decay = decoupled ? 0.0f : float(weight_decay);
  s.param_scale = decoupled ? float(1 - lr * weight_decay) : 1.0f;
  s.step_size = float(lr / (1 - std::pow(b1, step)));
  s.bias_correction2_sqrt = float(std::sqrt(1 - std::pow(b2, step)));
  return s;
}

const int64_t kSizes[] = {5, 0, 8192, 1, 8193, 20000, 3 * 8192 - 1, 0, 7};  // chunk edges, empties

}  // namespace

TEST_CASE("multi tensor block: Adam over many tensors, emulated, equals the CPU update bit for bit") {
  for (const int grid : {1, 3, 64}) {  // fewer blocks than chunks, and more
    CAPTURE(grid);
    struct Arrays {
      std::vector<float> param, grad, m, v;
    };
    std::vector<Arrays> cpu_side, emulated;
    std::vector<cpu::AdamTensor> cpu_tensors;
    std::vector<mt::AdamEntry> entries;
    uint64_t seed = 9500;
    for (size_t k = 0; k < std::size(kSizes); ++k) {
      const int64_t n = kSizes[k];
      Arrays a{random_values(n, seed++), random_values(n, seed++, 0.1f), random_values(n, seed++, 0.01f),
               random_values(n, seed++, 0.001f, 0.002f)};
      for (float& x : a.v) x = std::fabs(x);
      cpu_side.push_back(a);
      emulated.push_back(a);
    }
    for (size_t k = 0; k < std::size(kSizes); ++k) {
      // Two groups with their own step counts and decays, as a trainer's parameter groups.
      const cpu::AdamScalars s = k % 2 ? adam_scalars(3, 1e-3, 0.01, false) : adam_scalars(7, 5e-4, 0.1, true);
      Arrays& c = cpu_side[k];
      Arrays& e = emulated[k];
      cpu_tensors.push_back({c.param.data(), c.grad.data(), c.m.data(), c.v.data(), kSizes[k], s});
      entries.push_back({{e.param.data(), e.grad.data(), e.m.data(), e.v.data(), kSizes[k], s}, 0});
    }
    cpu::adam_update_many(cpu_tensors);
    const int64_t chunks = mt::number_chunks(entries);
    CHECK(entries.size() == std::size(kSizes) - 2);  // the empty tensors are dropped
    CHECK(chunks == 1 + 1 + 1 + 2 + 3 + 3 + 1);
    emulate_grid(grid, 64, 0,
                 [&](const EmulatedBlock& blk) { mt::adam_many(blk, entries.data(), int(entries.size()), chunks); });
    for (size_t k = 0; k < std::size(kSizes); ++k) {
      CAPTURE(k);
      CHECK(emulated[k].param == cpu_side[k].param);
      CHECK(emulated[k].m == cpu_side[k].m);
      CHECK(emulated[k].v == cpu_side[k].v);
    }
  }
}

TEST_CASE("multi tensor block: chunk_entry finds every chunk's tensor and elements") {
  std::vector<mt::GradEntry> entries;
  for (int64_t n : kSizes) entries.push_back({nullptr, n, 0});
  const int64_t chunks = mt::number_chunks(entries);
  // Walking the chunks in order must cover each kept tensor's elements exactly once, in order.
  size_t entry = 0;
  int64_t next = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t begin = -1, end = -1;
    const mt::GradEntry& e = mt::chunk_entry(entries.data(), int(entries.size()), c, begin, end);
    if (next == entries[entry].n) ++entry, next = 0;
    REQUIRE(&e == &entries[entry]);
    CHECK(begin == next);
    CHECK(end - begin == std::min<int64_t>(mt::kChunk, e.n - begin));
    next = end;
  }
  CHECK(entry == entries.size() - 1);
  CHECK(next == entries.back().n);
}

TEST_CASE("multi tensor block: clip_grad_norm's three passes, emulated, give the CPU's norm and scaled grads") {
  struct Case {
    float max_norm, poison;  // poison: a value put into one grad (0: none)
    int grid;
  };
  for (const Case& c : {Case{0.5f, 0, 3}, Case{1e6f, 0, 2}, Case{0.5f, NAN, 5}, Case{0.5f, INFINITY, 1}}) {
    CAPTURE(c.max_norm);
    CAPTURE(c.poison);
    CAPTURE(c.grid);
    std::vector<std::vector<float>> cpu_grads, grads;
    uint64_t seed = 9600;
    for (int64_t n : kSizes) cpu_grads.push_back(random_values(n, seed++, 0.05f));
    if (c.poison != 0) cpu_grads[5][1234] = c.poison;
    grads = cpu_grads;

    // The CPU path (msmix/grad_clip.cpp): tensors in order, each one's sum of squares in double.
    double squares = 0;
    for (const auto& g : cpu_grads) squares += cpu::sum_of_squares(g.data(), int64_t(g.size()));
    const float norm = float(std::sqrt(squares));
    const float coef = c.max_norm / (norm + 1e-6f);
    if (std::isfinite(norm) && coef < 1.0f)
      for (auto& g : cpu_grads) cpu::scale_inplace(g.data(), int64_t(g.size()), coef);

    std::vector<mt::GradEntry> entries;
    for (auto& g : grads) entries.push_back({g.data(), int64_t(g.size()), 0});
    const int64_t chunks = mt::number_chunks(entries);
    const int threads = 128;
    const size_t shared = size_t(mt::clip_shared_floats(threads));
    std::vector<double> partial(size_t(chunks), NAN);
    float decision[2] = {NAN, NAN};
    const int count = int(entries.size());
    emulate_grid(c.grid, threads, shared, [&](const EmulatedBlock& blk) {
      mt::chunk_squares(blk, entries.data(), count, chunks, partial.data());
    });
    emulate_grid(1, threads, shared,
                 [&](const EmulatedBlock& blk) { mt::clip_decide(blk, partial.data(), chunks, c.max_norm, decision); });
    emulate_grid(c.grid, threads, shared,
                 [&](const EmulatedBlock& blk) { mt::clip_scale(blk, entries.data(), count, chunks, decision); });
    // The sums run in another order (by chunk and lane, in double): the norm agrees to float rounding.
    if (std::isfinite(norm)) {
      CHECK(decision[0] == doctest::Approx(norm).epsilon(1e-6));
      CHECK(decision[1] == (coef < 1.0f ? doctest::Approx(coef).epsilon(1e-6) : doctest::Approx(1.0f)));
    } else {
      CHECK(std::isnan(decision[0]) == std::isnan(norm));
      CHECK(decision[1] == 1.0f);  // reported, not applied
    }
    for (size_t k = 0; k < grads.size(); ++k) check_close(grads[k], cpu_grads[k], 1e-6, 0, "grads after clipping");
  }
}
