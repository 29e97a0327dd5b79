#include "models/misa_losses.h"

#include "engine/error.h"
#include "ops/ops.h"

namespace msmix {

namespace {

void check_pair(const char* who, const Tensor& x1, const Tensor& x2) {
  MSMIX_CHECK(x1.defined() && x2.defined() && x1.dim() == 2 && x1.shape() == x2.shape() && x1.size(0) > 0,
              "{}: expected two batches of the same shape [B > 0, d], got {} and {}", who,
              x1.defined() ? describe(x1) : "undefined", x2.defined() ? describe(x2) : "undefined");
}

// ||a - b||_2 over every element.
Tensor distance(const Tensor& a, const Tensor& b) {
  Tensor diff = sub(a, b);
  return sqrt(sum(mul(diff, diff)));
}

}  // namespace

Tensor misa_diff_loss(const Tensor& x1, const Tensor& x2) {
  check_pair("misa_diff_loss", x1, x2);
  auto unit_rows = [](const Tensor& x) {
    Tensor centred = sub(x, mean(x, {0}, /*keepdim=*/true));                         // [B, d]
    Tensor norm = sqrt(sum(mul(centred, centred), {1}, /*keepdim=*/true)).detach();  // [B, 1], a constant
    return div(centred, add(norm, 1e-6f));
  };
  Tensor c = matmul(unit_rows(x1), unit_rows(x2), /*trans_a=*/true);  // [d, d]
  return mean(mul(c, c));
}

Tensor central_moment_discrepancy(const Tensor& x1, const Tensor& x2, int moments) {
  check_pair("central_moment_discrepancy", x1, x2);
  MSMIX_CHECK(moments >= 1, "central_moment_discrepancy: moments must be >= 1, got {}", moments);
  Tensor m1 = mean(x1, {0}), m2 = mean(x2, {0});  // [d]
  Tensor c1 = sub(x1, m1), c2 = sub(x2, m2);      // centred, [B, d]
  Tensor total = distance(m1, m2);
  for (int k = 2; k <= moments; ++k)
    total = add(total, distance(mean(pow(c1, float(k)), {0}), mean(pow(c2, float(k)), {0})));
  return total;
}

}  // namespace msmix
