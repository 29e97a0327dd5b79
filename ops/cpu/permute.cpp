#include "ops/cpu/permute.h"

namespace msmix::cpu {

void permute(const float* x, const Shape& x_shape, const std::vector<int64_t>& perm, float* out) {
  int64_t rank = int64_t(perm.size());
  int64_t n = shape_numel(x_shape);
  if (n == 0) return;
  std::vector<int64_t> x_strides = contiguous_strides(x_shape);
  Shape out_shape(rank);
  std::vector<int64_t> src_stride(rank);  // stride in x of each output dim
  for (int64_t k = 0; k < rank; ++k) {
    out_shape[k] = x_shape[perm[k]];
    src_stride[k] = x_strides[perm[k]];
  }
  int64_t inner = rank ? out_shape[rank - 1] : 1;
  int64_t inner_stride = rank ? src_stride[rank - 1] : 1;
  int64_t rows = n / inner;
#pragma omp parallel for if (n > (1 << 15))
  for (int64_t row = 0; row < rows; ++row) {
    int64_t src = 0, rest = row;
    for (int64_t d = rank - 2; d >= 0; --d) {
      src += (rest % out_shape[d]) * src_stride[d];
      rest /= out_shape[d];
    }
    float* dst = out + row * inner;
    for (int64_t i = 0; i < inner; ++i) dst[i] = x[src + i * inner_stride];
  }
}

}  // namespace msmix::cpu
