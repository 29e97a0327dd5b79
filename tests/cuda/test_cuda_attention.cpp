// fused_attention on the GPU (ops/cuda/attention.cu) against its CPU twin: the output and the grads of q, k and
// v over odd sizes and every register width of the kernels (head widths 1 to 64), L != S, both attn_mask
// shapes with -inf entries, MulT's future mask, key padding including a batch whose keys are all padding (NaN
// on both devices), dropout from the same generator state (the same Philox mask), MulT's shapes, shapes that
// take the kernels' grid-stride loops, only some grads wanted; the GPU's results are the same bits run to
// run. All but the error-path case skip without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/cuda/kernels.h"
#include "tests/cuda/cuda_testing.h"

using namespace msmix;
using namespace msmix::testing;

namespace {

const float kInf = std::numeric_limits<float>::infinity();

enum class MaskKind { none, shared, per_head, future };  // shared: [L, S]; per_head: [B heads, L, S]
enum class PadKind { none, suffix, closed };              // closed: batch 0's keys are all padding

const char* mask_name(MaskKind m) {
  return m == MaskKind::none ? "none" : m == MaskKind::shared ? "[L, S]" : m == MaskKind::per_head ? "[BH, L, S]"
                                                                                                   : "future";
}
const char* pad_name(PadKind p) { return p == PadKind::none ? "none" : p == PadKind::suffix ? "suffix" : "closed"; }

struct Case {
  int64_t B, heads, D, L, S;
  MaskKind mask = MaskKind::none;
  PadKind pad = PadKind::none;
  float p = 0;  // dropout, in training mode
};

std::string name_of(const Case& c) {
  return fmt::format("B {} heads {} D {} L {} S {} mask {} pad {} p {}", c.B, c.heads, c.D, c.L, c.S,
                     mask_name(c.mask), pad_name(c.pad), c.p);
}

// Random finite values with some -inf, never a whole row (key 0 stays open); or MMSA's MulT mask: -inf where
// key j >= i + 1 + |S - L| (models/mult_transformer.cpp).
Tensor make_mask(const Case& c) {
  if (c.mask == MaskKind::none) return Tensor();
  if (c.mask == MaskKind::future) {
    Tensor m = Tensor::zeros({c.L, c.S});
    const int64_t offset = 1 + std::llabs(c.S - c.L);
    for (int64_t i = 0; i < c.L; ++i)
      for (int64_t j = i + offset; j < c.S; ++j) m.data()[i * c.S + j] = -kInf;
    return m;
  }
  Generator gen(5);
  Tensor m = Tensor::randn(c.mask == MaskKind::per_head ? Shape{c.B * c.heads, c.L, c.S} : Shape{c.L, c.S}, gen);
  for (int64_t i = 0; i < m.numel(); ++i)
    if (i % c.S != 0 && i % 3 == 1) m.data()[i] = -kInf;
  return m;
}

// [B, S], 1 = padding: batch b's last b + 1 keys (key 0 stays open); `closed` also pads all of batch 0's keys,
// so its query rows have no open key.
Tensor make_pad(const Case& c) {
  if (c.pad == PadKind::none) return Tensor();
  Tensor pad = Tensor::zeros({c.B, c.S});
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t s = 0; s < c.S; ++s)
      if ((s > 0 && s >= c.S - 1 - b) || (c.pad == PadKind::closed && b == 0)) pad.data()[b * c.S + s] = 1;
  return pad;
}

Tensor on(const Tensor& t, bool gpu) { return t.defined() && gpu ? t.to(Device::cuda()) : t; }

// fused_attention on CPU leaves and on GPU copies: output and every wanted grad (check_twins). `wants` picks
// which of q, k, v require grad.
void check_case(const Case& c, std::vector<bool> wants = {true, true, true}) {
  const int64_t E = c.heads * c.D;
  const float scale = 1.0f / std::sqrt(float(c.D));
  const Tensor mask = make_mask(c), pad = make_pad(c);
  const Tensor mask_gpu = on(mask, true), pad_gpu = on(pad, true);
  auto f = [&](const std::vector<Tensor>& t) {
    const bool gpu = t[0].is_cuda();
    Generator gen(4321);  // a fresh generator per call: both devices draw the same stretch
    gen.take(5);          // at a non-zero offset
    return fused_attention(t[0], t[1], t[2], c.heads, scale, gpu ? mask_gpu : mask, gpu ? pad_gpu : pad, c.p, true,
                           gen);
  };
  const uint64_t seed = uint64_t(c.B * 1000 + c.heads * 100 + c.D * 10 + c.L + 7 * c.S);
  std::vector<Tensor> in = {leaf({c.B, c.L, E}, seed), leaf({c.B, c.S, E}, seed + 1), leaf({c.B, c.S, E}, seed + 2)};
  for (size_t i = 0; i < in.size(); ++i) in[i].set_requires_grad(wants[i]);
  // out sums over the keys; dq over the keys, dk and dv over the queries.
  check_twins(name_of(c), f, in, reduction_tol(c.S), reduction_tol(std::max(c.L, c.S)));
}

}  // namespace

TEST_CASE("cuda attention: odd sizes, every head width, both mask shapes, padding, dropout") {
  MSMIX_REQUIRE_GPU();
  // L and S from {1, 7, 33, 50, 129} (129 crosses the kernels' 64- and 128-row chunks and 8-row tiles), head
  // widths reaching each register width (8, 16, 32, 64); batch, heads, mask, padding and dropout cycle so
  // that every combination of mask x padding x dropout comes up several times.
  const int64_t lengths[] = {1, 7, 33, 50, 129};
  const int64_t widths[] = {1, 3, 5, 10, 16, 32, 50, 64};
  const MaskKind masks[] = {MaskKind::none, MaskKind::shared, MaskKind::per_head, MaskKind::future};
  const PadKind pads[] = {PadKind::none, PadKind::suffix, PadKind::closed};
  int i = 0;
  for (int64_t D : widths)
    for (int64_t L : lengths)
      for (int64_t S : lengths) {
        Case c{1 + i % 3, 1 + (i / 3) % 3, D, L, S};
        c.mask = masks[i % 4];
        c.pad = pads[(i / 4) % 3];
        c.p = (i / 12) % 2 ? 0.3f : 0.0f;
        check_case(c);
        ++i;
      }
}

TEST_CASE("cuda attention: rows with no open key are NaN on both devices, the others finite") {
  MSMIX_REQUIRE_GPU();
  // Batch 0's keys are all padding: its rows are NaN (dq, and dk of every key, NaN too, as on the CPU).
  for (float p : {0.0f, 0.3f}) {
    check_case({3, 2, 5, 7, 33, MaskKind::none, PadKind::closed, p});
    check_case({2, 3, 16, 50, 7, MaskKind::future, PadKind::closed, p});
  }
  // One key and dropout: a closed row stays NaN where its only key is dropped too (PyTorch's NaN * 0; the CPU
  // kernel's row tail past S carries the NaN).
  check_case({2, 2, 3, 129, 1, MaskKind::none, PadKind::closed, 0.3f});
  {
    Case c{2, 2, 4, 9, 6, MaskKind::none, PadKind::closed, 0.0f};
    Tensor q = leaf({2, 9, 8}, 1).to(Device::cuda()), k = leaf({2, 6, 8}, 2).to(Device::cuda());
    Generator gen(1);
    std::vector<float> out =
        fused_attention(q, k, k, c.heads, 0.5f, Tensor(), make_pad(c).to(Device::cuda()), 0.0f, true, gen).to_vector();
    for (size_t i = 0; i < out.size(); ++i) {
      CAPTURE(i);
      CHECK(std::isnan(out[i]) == (i < out.size() / 2));  // batch 0 (the first half) only
    }
  }
  // A per-head mask row that is all -inf (row 1 of every head): NaN through the mask rather than the padding.
  {
    const int64_t B = 2, H = 2, D = 5, L = 4, S = 9;
    Generator mg(3);
    Tensor mask = Tensor::randn({B * H, L, S}, mg);
    for (int64_t bh = 0; bh < B * H; ++bh)
      for (int64_t s = 0; s < S; ++s) mask.data()[(bh * L + 1) * S + s] = -kInf;
    Tensor mask_gpu = mask.to(Device::cuda());
    for (float p : {0.0f, 0.3f}) {
      auto f = [&](const std::vector<Tensor>& t) {
        Generator gen(11);
        return fused_attention(t[0], t[1], t[2], H, 0.4f, t[0].is_cuda() ? mask_gpu : mask, Tensor(), p, true, gen);
      };
      check_twins(fmt::format("closed mask row p {}", p), f,
                  {leaf({B, L, H * D}, 21), leaf({B, S, H * D}, 22), leaf({B, S, H * D}, 23)}, reduction_tol(S),
                  reduction_tol(S));
    }
  }
}

TEST_CASE("cuda attention: dropout draws the CPU's mask from the same generator state") {
  MSMIX_REQUIRE_GPU();
  const int64_t B = 2, H = 3, D = 5, L = 33, S = 50;
  Tensor q = leaf({B, L, H * D}, 31), k = leaf({B, S, H * D}, 32), v = leaf({B, S, H * D}, 33);
  Tensor qg = q.to(Device::cuda()), kg = k.to(Device::cuda()), vg = v.to(Device::cuda());
  Generator gc(77), gg(77);
  gc.take(3), gg.take(3);
  Tensor cpu = fused_attention(q, k, v, H, 0.45f, Tensor(), Tensor(), 0.3f, true, gc);
  Tensor gpu = fused_attention(qg, kg, vg, H, 0.45f, Tensor(), Tensor(), 0.3f, true, gg);
  CHECK(gc.offset == gg.offset);
  check_close(gpu, cpu, 1e-4, 1e-5, "dropout p 0.3");
  // The mask did something: the same call without dropout differs.
  Generator g0(77);
  Tensor plain = fused_attention(qg, kg, vg, H, 0.45f, Tensor(), Tensor(), 0.0f, true, g0);
  std::vector<float> a = plain.to_vector(), b = gpu.to_vector();
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += std::fabs(a[i] - b[i]) > 1e-3f;
  CHECK(differ > int(a.size()) / 2);
  // Eval mode and p = 1 on the GPU: no dropout, and everything dropped (0).
  Generator ge(77);
  check_close(fused_attention(qg, kg, vg, H, 0.45f, Tensor(), Tensor(), 0.3f, false, ge), plain, 0, 0, "eval");
  Tensor all = fused_attention(qg, kg, vg, H, 0.45f, Tensor(), Tensor(), 1.0f, true, ge);
  CHECK(all.to_vector() == std::vector<float>(size_t(all.numel()), 0.0f));
  // Dropout with masks and padding, several chunks of keys.
  check_case({3, 2, 10, 129, 129, MaskKind::per_head, PadKind::suffix, 0.3f});
  check_case({2, 3, 64, 50, 129, MaskKind::shared, PadKind::suffix, 0.3f});
}

TEST_CASE("cuda attention: MulT's shapes (batch 16, 10 heads, lengths 50 / 375 / 500)") {
  MSMIX_REQUIRE_GPU();
  // MOSI's MulT: d = 50 over 10 heads (D 5) in the crossmodal blocks, 2d over 10 (D 10) in the memories; the
  // future mask, attention dropout 0.3.
  check_case({16, 10, 5, 50, 375, MaskKind::future, PadKind::none, 0.3f});
  check_case({16, 10, 5, 375, 500, MaskKind::future, PadKind::none, 0.3f});
  check_case({16, 10, 5, 500, 50, MaskKind::future, PadKind::none, 0.3f});
  check_case({16, 10, 10, 500, 500, MaskKind::future, PadKind::none, 0.3f});
  check_case({16, 10, 5, 50, 50, MaskKind::none, PadKind::none, 0.0f});
}

TEST_CASE("cuda attention: grid-stride loops, and only some grads wanted") {
  MSMIX_REQUIRE_GPU();
  // 512 heads x 138 row tiles (and x 138 key tiles) > 65536 blocks: the kernels loop over the rest.
  check_case({64, 8, 1, 1100, 3, MaskKind::none, PadKind::suffix, 0.3f});
  check_case({64, 8, 1, 3, 1100, MaskKind::shared, PadKind::suffix, 0.3f});
  // dq alone (no keys kernel), dv alone (no rows kernel, no t), dk alone, dq + dv.
  const Case c{2, 3, 5, 33, 50, MaskKind::future, PadKind::suffix, 0.3f};
  check_case(c, {true, false, false});
  check_case(c, {false, false, true});
  check_case(c, {false, true, false});
  check_case(c, {true, false, true});
}

TEST_CASE("cuda attention: the GPU's output and grads are the same bits run to run") {
  MSMIX_REQUIRE_GPU();
  const int64_t B = 4, H = 10, D = 5, L = 375, S = 500;
  const Case c{B, H, D, L, S, MaskKind::future, PadKind::suffix, 0.3f};
  const Tensor mask = make_mask(c).to(Device::cuda()), pad = make_pad(c).to(Device::cuda());
  std::vector<std::vector<float>> runs[2];
  for (auto& run : runs) {
    Tensor q = gpu_leaf(leaf({B, L, H * D}, 41)), k = gpu_leaf(leaf({B, S, H * D}, 42)),
           v = gpu_leaf(leaf({B, S, H * D}, 43));
    Generator gen(5);
    Tensor out = fused_attention(q, k, v, H, 0.45f, mask, pad, 0.3f, true, gen);
    Generator wg(6);
    out.backward(Tensor::randn(out.shape(), wg).to(Device::cuda()));
    run = {out.to_vector(), q.grad().to_vector(), k.grad().to_vector(), v.grad().to_vector()};
  }
  for (size_t i = 0; i < runs[0].size(); ++i) {
    CAPTURE(i);
    CHECK(runs[0][i] == runs[1][i]);
  }
}

// With dropout the forward writes each decision down (AttentionArgs::dropout_bits) and the backward reads the
// bits instead of drawing Philox again: the same decisions and the same arithmetic, so the same bits as a
// backward that draws (the emulated test, tests/ops/test_attention_block.cpp, checks the layout in CI).
TEST_CASE("cuda attention: the backward from the forward's dropout bits equals the one that draws again") {
  MSMIX_REQUIRE_GPU();
  for (const Case& c : {Case{2, 10, 5, 375, 500, MaskKind::future, PadKind::suffix, 0.3f},
                        Case{1, 2, 16, 40, 1100, MaskKind::shared, PadKind::none, 0.2f}}) {
    CAPTURE(name_of(c));
    const int64_t E = c.heads * c.D;
    const Tensor q = leaf({c.B, c.L, E}, 51).to(Device::cuda()), k = leaf({c.B, c.S, E}, 52).to(Device::cuda()),
                 v = leaf({c.B, c.S, E}, 53).to(Device::cuda()), g = leaf({c.B, c.L, E}, 54).to(Device::cuda());
    const Tensor mask = make_mask(c).to(Device::cuda()), pad = make_pad(c).to(Device::cuda());
    cpu::AttentionArgs a;
    a.q = q.data(), a.k = k.data(), a.v = v.data();
    a.attn_mask = mask.defined() ? mask.data() : nullptr;
    a.key_padding = pad.defined() ? pad.data() : nullptr;
    a.scale = 1.0f / std::sqrt(float(c.D));
    a.dropout = true, a.dropout_p = c.p, a.dropout_scale = 1.0f / (1.0f - c.p), a.seed = 77, a.offset = 5;
    const cpu::AttentionDims d{c.B, c.heads, c.L, c.S, c.D};
    std::vector<std::vector<float>> runs[2];
    for (int with_bits = 0; with_bits < 2; ++with_bits) {
      Tensor out = Tensor::empty({c.B, c.L, E}, Device::cuda()),
             stats = Tensor::empty({c.B * c.heads, c.L, 2}, Device::cuda());
      Tensor bits = with_bits ? Tensor::empty({cuda::attention_dropout_words(d)}, Device::cuda()) : Tensor();
      a.dropout_bits = with_bits ? reinterpret_cast<uint32_t*>(bits.data()) : nullptr;
      cuda::attention_forward(a, d, out.data(), stats.data());
      a.out = out.data();
      Tensor gq = Tensor::empty(q.shape(), Device::cuda()), gk = Tensor::empty(k.shape(), Device::cuda()),
             gv = Tensor::empty(v.shape(), Device::cuda());
      cuda::attention_backward(a, d, stats.data(), g.data(), gq.data(), gk.data(), gv.data());
      runs[with_bits] = {out.to_vector(), gq.to_vector(), gk.to_vector(), gv.to_vector()};
    }
    for (size_t i = 0; i < runs[0].size(); ++i) {
      CAPTURE(i);  // output, dq, dk, dv
      const std::vector<float>&x = runs[0][i], &y = runs[1][i];
      REQUIRE(x.size() == y.size());
      int64_t differ = 0;
      for (size_t j = 0; j < x.size(); ++j) differ += !(x[j] == y[j] || (std::isnan(x[j]) && std::isnan(y[j])));
      CHECK(differ == 0);
    }
  }
}

TEST_CASE("cuda attention: heads wider than the kernel's limit are refused by name") {
  MSMIX_REQUIRE_GPU();
  const int64_t D = cuda::kAttentionMaxHeadDim + 1;
  Tensor q = Tensor::zeros({1, 2, D}, Device::cuda()), k = Tensor::zeros({1, 3, D}, Device::cuda());
  Generator gen(1);
  check_throws_with([&] { fused_attention(q, k, k, 1, 1.0f, Tensor(), Tensor(), 0.3f, true, gen); },
                    {"fused_attention", "head width 65", "64"});
  CHECK(gen.offset == 0);  // refused before the draw
}

TEST_CASE("cuda attention: the kernel entry points' errors without a GPU or with too wide heads") {
  // Not GPU-gated: the width check comes before any device work, in every build.
  cpu::AttentionArgs a;
  a.q = a.k = a.v = nullptr;
  const cpu::AttentionDims wide{1, 1, 2, 3, cuda::kAttentionMaxHeadDim + 1};
  const std::string why = cuda::compiled() ? "head width D = 65" : "built without CUDA";
  check_throws_with([&] { cuda::attention_forward(a, wide, nullptr, nullptr); }, {"attention_forward", why});
  check_throws_with([&] { cuda::attention_backward(a, wide, nullptr, nullptr, nullptr, nullptr, nullptr); },
                    {"attention_backward", why});
  if (cuda::device_count() > 0) {
    MESSAGE("a GPU is present: the no-GPU launch failure is not reachable here");
    return;
  }
  // No GPU: a CUDA build's launch fails and says which kernel; a CPU-only build says it has no CUDA.
  const cpu::AttentionDims dims{1, 1, 2, 3, 4};
  const std::string what = cuda::compiled() ? "failed" : "built without CUDA";
  check_throws_with([&] { cuda::attention_forward(a, dims, nullptr, nullptr); }, {"attention_forward", what});
}
