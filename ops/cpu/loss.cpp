#include "ops/cpu/loss.h"

#include "ops/cpu/fast_math.h"

#include <cmath>
#include <vector>

namespace msmix::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements below which threads cost more than they save

// One loop per loss kind (the switch stays outside), so each body is simple enough to vectorise.
// f is firstprivate: each thread's copy keeps the captured pointers in registers. Shared, the loop reloaded
// them through the closure every element and GCC left the loop scalar.
template <class F>
void map(int64_t n, F f) {
#pragma omp parallel for simd firstprivate(f) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) f(i);
}

float sign(float d) { return d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f); }

}  // namespace

void pointwise_loss_forward(PointwiseLoss kind, float beta, const float* p, const float* t, float* out, int64_t n) {
  switch (kind) {
    case PointwiseLoss::L1: return map(n, [=](int64_t i) { out[i] = std::fabs(p[i] - t[i]); });
    case PointwiseLoss::Mse: return map(n, [=](int64_t i) { out[i] = (p[i] - t[i]) * (p[i] - t[i]); });
    case PointwiseLoss::SmoothL1:
      return map(n, [=](int64_t i) {
        const float a = std::fabs(p[i] - t[i]);
        out[i] = a < beta ? 0.5f * a * a / beta : a - 0.5f * beta;
      });
    case PointwiseLoss::KlDiv:
      return map(n, [=](int64_t i) { out[i] = t[i] == 0 ? 0.0f : t[i] * (std::log(t[i]) - p[i]); });
  }
}

void pointwise_loss_backward(PointwiseLoss kind, float beta, const float* p, const float* t, const float* g, float* gp,
                             float* gt, int64_t n) {
  // The regression losses depend on d = p - t only: gt = -gp.
  switch (kind) {
    case PointwiseLoss::L1:
      return map(n, [=](int64_t i) {
        const float v = g[i] * sign(p[i] - t[i]);
        if (gp) gp[i] = v;
        if (gt) gt[i] = -v;
      });
    case PointwiseLoss::Mse:
      return map(n, [=](int64_t i) {
        const float v = 2.0f * g[i] * (p[i] - t[i]);
        if (gp) gp[i] = v;
        if (gt) gt[i] = -v;
      });
    case PointwiseLoss::SmoothL1:
      return map(n, [=](int64_t i) {
        const float d = p[i] - t[i];
        const float v = g[i] * (std::fabs(d) < beta ? d / beta : sign(d));
        if (gp) gp[i] = v;
        if (gt) gt[i] = -v;
      });
    case PointwiseLoss::KlDiv:
      return map(n, [=](int64_t i) {
        if (gp) gp[i] = -g[i] * t[i];
        if (gt) gt[i] = t[i] == 0 ? 0.0f : g[i] * (std::log(t[i]) + 1.0f - p[i]);
      });
  }
}

int64_t cross_entropy_bad_target(const float* target, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n) {
    const float t = target[n];
    if (!(t >= 0 && t < float(C) && t == std::floor(t))) return n;
  }
  return -1;
}

void cross_entropy_forward(const float* logits, const float* target, float* loss, float* lse, int64_t N, int64_t C) {
#pragma omp parallel for if (N * C > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = logits + n * C;
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < C; ++c) m = x[c] > m ? x[c] : m;
    std::vector<float> scratch(C);
    lse[n] = m + std::log(float(exp_shift_sum(x, scratch.data(), C, -m)));
    loss[n] = lse[n] - x[int64_t(target[n])];
  }
}

void cross_entropy_backward(const float* logits, const float* target, const float* lse, const float* g, float* gx,
                            int64_t N, int64_t C) {
#pragma omp parallel for if (N * C > kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = logits + n * C;
    float* gxn = gx + n * C;
    const float gn = g[n], l = lse[n];
    exp_shift_sum(x, gxn, C, -l);  // softmax row
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) gxn[c] *= gn;
    gxn[int64_t(target[n])] -= gn;
  }
}

}  // namespace msmix::cpu
