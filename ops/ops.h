// The op set: every differentiable function on tensors. Each family lives in ops/<family>.cpp (shape
// checks, dispatch to a device kernel, autograd record) with its CPU kernels in ops/cpu/<family>.cpp.
// Index arguments (gather, index_select, embedding, cross_entropy targets) are float32 tensors holding
// integral values: msmix has one dtype; an index that is not an integer in range is an error.
#pragma once
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/random.h"
#include "engine/tensor.h"

namespace msmix {

// ---- elementwise binary with numpy broadcasting (ops/binary.cpp)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, float s);
Tensor sub(const Tensor& a, float s);
Tensor mul(const Tensor& a, float s);
Tensor div(const Tensor& a, float s);
Tensor rsub(float s, const Tensor& a);  // s - a
Tensor rdiv(float s, const Tensor& a);  // s / a
Tensor eq(const Tensor& a, const Tensor& b);  // 1 where a == b else 0, broadcast; not differentiable
// Sums a broadcast grad back to `shape` (the reverse of broadcasting): the backward of every broadcast.
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- elementwise unary (ops/unary.cpp)
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor pow(const Tensor& x, float exponent);
Tensor abs(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact: x * Phi(x) with erf
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor normal_cdf(const Tensor& x);  // Phi(x), the standard normal's CDF (torch.distributions.Normal(0, 1).cdf)
Tensor softplus(const Tensor& x, float beta = 1, float threshold = 20);  // as torch.nn.functional.softplus
Tensor clamp(const Tensor& x, float lo, float hi);                      // grad 1 inside [lo, hi], else 0

// ---- reductions (ops/reduce.cpp). dims may be negative; an empty dims list means all dims.
Tensor sum(const Tensor& x);  // rank 0
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Maximum over dims (torch.amax): the grad is shared equally among tied maxima.
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased = true, bool keepdim = false);

// ---- matrix products (ops/matmul.cpp), through cblas_sgemm
// a [..., M, K] @ b [..., K, N] -> [..., M, N] (with trans_a / trans_b the last two dims of that operand are
// swapped first). Batch dims: equal on both sides, or one side 2-D (shared across the batch).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x [..., in] @ weight [out, in]^T + bias [out] (bias may be undefined) -> [..., out]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- softmax family (ops/softmax.cpp), over the last dim, numerically stable
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);

// ---- normalisation (ops/norm.cpp)
// Over the last dim; weight/bias [C] may be undefined. Saves mean and rstd for backward.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);
// x [N, C] or [N, C, L]. Training: batch statistics, and running_mean/running_var (if defined) updated in
// place with momentum and the unbiased variance, as PyTorch. Eval: normalises with the running stats.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f);

// ---- dropout (ops/dropout.cpp): keeps with probability 1 - p, scales kept values by 1 / (1 - p).
// Element i is kept when philox::uniform(seed, offset, i) >= p: the same mask on every device.
Tensor dropout(const Tensor& x, float p, bool training, Generator& gen);
Tensor dropout(const Tensor& x, float p, bool training);  // default generator

// ---- shapes and indexing (ops/shape.cpp, ops/index.cpp)
Tensor reshape(const Tensor& x, const Shape& shape);  // one -1 allowed; shares storage
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);  // copies
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);      // copies
Tensor expand(const Tensor& x, const Shape& shape);                 // broadcast copy; -1 keeps a dim
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end);  // [start, end), negatives allowed
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // index [n]
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);        // as torch.gather
// x [R, C] -> [R, C]: each entry's place in its row sorted descending, ties in column order (ops/cpu/row_ranks.h);
// no grad. eq(row_ranks(x), k) marks the (k+1)-th largest; a sum of those for k' < k, the top k.
Tensor row_ranks(const Tensor& x);
Tensor masked_fill(const Tensor& x, const Tensor& mask, float value);    // mask != 0 broadcast to x
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);      // cond != 0 ? a : b, broadcast
Tensor embedding(const Tensor& ids, const Tensor& weight);               // ids [...] -> [..., D]
// An index made on the host ([n], on `device`): its values are checked there (none negative, each exactly a
// float), so index ops take it without reading the device copy back to check it (a read waits for the GPU).
Tensor index_tensor(const std::vector<int64_t>& values, Device device);
// `values` ([n], any shape flattened) as an index whose maker guarantees every value is an integer in
// [0, bound) (MS-Mix's pair selection; a permutation drawn on the host): index ops take it as valid without
// reading it, on any device. It shares values' storage, which keeps the mark until written in place.
Tensor bounded_index(const Tensor& values, int64_t bound);

// ---- convolution (ops/conv.cpp): x [N, Cin, L], weight [Cout, Cin, K], bias [Cout] or undefined,
// stride 1, zero padding on both sides -> [N, Cout, L + 2 * padding - K + 1]
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t padding = 0);

// ---- losses (ops/loss.cpp)
enum class Reduction { None, Mean, Sum, BatchMean };  // BatchMean: sum / size(0), kl_div only
Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor smooth_l1_loss(const Tensor& pred, const Tensor& target, float beta = 1, Reduction reduction = Reduction::Mean);
// logits [N, C], target [N] class indices -> mean (or sum / none) of -log_softmax(logits)[n, target[n]]
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::Mean);
// PyTorch's kl_div: input holds log-probabilities, target probabilities; pointwise target * (log target -
// input), 0 where target == 0.
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::BatchMean);

// ---- operators
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, float s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, float s) { return sub(a, s); }
inline Tensor operator*(const Tensor& a, float s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, float s) { return div(a, s); }
inline Tensor operator+(float s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(float s, const Tensor& a) { return rsub(s, a); }
inline Tensor operator*(float s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(float s, const Tensor& a) { return rdiv(s, a); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace msmix
