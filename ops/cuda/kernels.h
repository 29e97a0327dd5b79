// The CUDA kernels' entry points, one group per op family. Each mirrors its CPU twin in ops/cpu/<family>.h
// argument for argument (same enums, same layout, pointers into device memory), so a dispatch point reads
// `if (dev.is_cuda()) cuda::f(args) else cpu::f(args)` and the CPU kernel is the test reference.
// Implemented by ops/cuda/<family>.cu in a CUDA build and by ops/nocuda/kernels.cpp (throws "built without
// CUDA") otherwise. All work is queued on the per-thread default stream: a call returns before the GPU
// finishes, and reading results back (Tensor::to_vector, item) synchronises. Errors throw msmix::Error naming
// the call.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/shape.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/binary.h"
#include "ops/cpu/conv.h"
#include "ops/cpu/loss.h"
#include "ops/cpu/lstm_cell.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/optimizer.h"
#include "ops/cpu/pair_selection.h"
#include "ops/cpu/reduce.h"
#include "ops/cpu/unary.h"

namespace msmix::cuda {

// ---- binary.cu: numpy-broadcasting elementwise ops (twin: ops/cpu/binary.h)
void binary_forward(BinaryOp op, const float* a, const Shape& a_shape, const float* b, const Shape& b_shape,
                    float* out, const Shape& out_shape);
void broadcast_to(const float* a, const Shape& a_shape, float* out, const Shape& out_shape);
void binary_scalar_forward(BinaryOp op, const float* a, float s, bool scalar_first, float* out, int64_t n);

// ---- unary.cu: y = f(x) and gx = g * f'(x) (twin: ops/cpu/unary.h)
void unary_forward(UnaryOp op, UnaryParams params, const float* x, float* y, int64_t n);
void unary_backward(UnaryOp op, UnaryParams params, const float* x, const float* y, const float* g, float* gx,
                    int64_t n);

// ---- reduce.cu: x viewed as [outer, D, inner], out[o, i] = sum or max over d (twin: ops/cpu/reduce.h)
void reduce_dim(ReduceOp op, const float* x, float* out, int64_t outer, int64_t D, int64_t inner);

// ---- softmax.cu: softmax / log_softmax over the last dim of [R, C] (twin: ops/cpu/softmax.h)
void softmax_forward(const float* x, float* y, int64_t R, int64_t C, bool log);
void softmax_backward(const float* y, const float* g, float* gx, int64_t R, int64_t C, bool log);
// Which forward for rows of up to 1024: three passes over the row (the default) or the row held in a warp's
// registers (MSMIX_CUDA_SOFTMAX=registers, read once; another value is an error); the same values either way.
bool softmax_rows_in_registers();
void set_softmax_rows_in_registers(bool on);

// ---- norm.cu: layer norm over the last dim of [R, C] (twin: ops/cpu/norm.h); weight / bias / any grad may be null
void layer_norm_forward(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                        int64_t R, int64_t C, float eps);
void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* g,
                         float* gx, float* gweight, float* gbias, int64_t R, int64_t C);

// ---- matmul.cu: GEMMs through cuBLAS and linear's row kernels (twin: ops/cpu/matmul.h, same GemmBatch contract)
void gemm_batched(const cpu::GemmBatch& g);
void broadcast_rows(const float* bias, float* y, int64_t R, int64_t N);
void sum_rows(const float* g, float* gbias, int64_t R, int64_t N);

// ---- index.cu: copies along a dim, permute, index_select / gather forward, where (twin: ops/cpu/index.h,
// ops/cpu/permute.h). Index tensors are device floats the op layer has already validated.
void copy_along_dim(const float* src, int64_t src_dim, int64_t src_start, float* dst, int64_t dst_dim,
                    int64_t dst_start, int64_t outer, int64_t count, int64_t inner);
void permute(const float* x, const Shape& x_shape, const std::vector<int64_t>& perm, float* out);
void index_select_forward(const float* x, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                          int64_t n, float* out);
void gather_forward(const float* x, const Shape& x_shape, const float* index, const Shape& index_shape, int64_t dim,
                    float* out);
// a, b, cond are device pointers (masked_fill passes its value as a device rank-0 tensor).
void where_forward(const float* cond, const Shape& cond_shape, const float* a, const Shape& a_shape, const float* b,
                   const Shape& b_shape, float* out, const Shape& out_shape);

// ---- scatter.cu: the deterministic scatter-adds (CPU order, no atomics; reads the index back to the host)
void index_select_backward(const float* g, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                           int64_t n, float* gx);
// The same without reading the index back: each element of gx looks through all n indices (in ascending j, the
// CPU's order), so only for small index ops (MS-Mix's pairs): n * outer * x_dim * inner <= kSearchScatterMax.
constexpr int64_t kSearchScatterMax = int64_t(1) << 26;
void index_select_backward_search(const float* g, int64_t outer, int64_t x_dim, int64_t inner, const float* index,
                                  int64_t n, float* gx);
// The same with the index values already on the host (index_tensor()): no read back.
void index_select_backward_host(const float* g, int64_t outer, int64_t x_dim, int64_t inner,
                                const std::vector<int64_t>& index, float* gx);
void gather_backward(const float* g, const Shape& index_shape, const float* index, const Shape& x_shape, int64_t dim,
                     float* gx);

// ---- batch_norm.cu: batch norm over x [N, C, L] (twin: ops/cpu/norm.h); optional pointers may be null
void batch_norm_stats(const float* x, float eps, float momentum, float* running_mean, float* running_var, float* mean,
                      float* rstd, int64_t N, int64_t C, int64_t L);
void batch_norm_running_stats(const float* running_mean, const float* running_var, float eps, float* mean, float* rstd,
                              int64_t C);
void batch_norm_apply(const float* x, const float* mean, const float* rstd, const float* weight, const float* bias,
                      float* y, int64_t N, int64_t C, int64_t L);
void batch_norm_backward(const float* x, const float* mean, const float* rstd, const float* weight, const float* g,
                         bool batch_stats, float* gx, float* gweight, float* gbias, int64_t N, int64_t C, int64_t L);

// ---- loss.cu: pointwise losses and cross-entropy (twin: ops/cpu/loss.h); targets validated by the op layer
void pointwise_loss_forward(PointwiseLoss kind, float beta, const float* p, const float* t, float* out, int64_t n);
void pointwise_loss_backward(PointwiseLoss kind, float beta, const float* p, const float* t, const float* g, float* gp,
                             float* gt, int64_t n);
void cross_entropy_forward(const float* logits, const float* target, float* loss, float* lse, int64_t N, int64_t C);
void cross_entropy_backward(const float* logits, const float* target, const float* lse, const float* g, float* gx,
                            int64_t N, int64_t C);

// ---- conv.cu: conv1d by im2col + cuBLAS (twin: ops/cpu/conv.h), or through cuDNN (conv_cudnn.cu)
void conv1d_forward(const float* x, const float* weight, const float* bias, float* y, const cpu::Conv1dShape& s);
void conv1d_backward(const float* x, const float* weight, const float* gy, float* gx, float* gweight, float* gbias,
                     const cpu::Conv1dShape& s);
// Which conv1d kernels run (MSMIX_CUDA_CONV=im2col|cudnn, read once; another value is an error; tests set
// each): im2col (the default), our im2col / col2im kernels around cuBLAS GEMMs; cudnn, cuDNN's convolution for
// x, y and the weight's grad (the bias and its grad stay ours), for shapes it can describe (else im2col). cudnn
// needs a build with cuDNN: choosing it in one without throws, naming why.
enum class ConvKernel { im2col, cudnn };
ConvKernel conv_kernel();
void set_conv_kernel(ConvKernel kernel);
const char* conv_kernel_name(ConvKernel kernel);
// conv_cudnn.cu: cuDNN's FP32 convolution (FMA math: no TF32; deterministic algorithms only, so the same bits
// each run). y = conv(x, weight) with no bias; gx, gweight overwritten (each may be null).
bool cudnn_conv_fits(const cpu::Conv1dShape& s);  // cuDNN's 4-d int descriptors hold the shape
void cudnn_conv1d_forward(const float* x, const float* weight, float* y, const cpu::Conv1dShape& s);
void cudnn_conv1d_backward(const float* x, const float* weight, const float* gy, float* gx, float* gweight,
                           const cpu::Conv1dShape& s);

// ---- lstm_cell.cu: the fused LSTM cell and scan (twin: ops/cpu/lstm_cell.h); LstmScan::lengths is a host
// pointer, every other pointer device memory
void lstm_cell_forward(const float* gates, const float* c_prev, float* acts, float* h, float* c, int64_t B,
                       int64_t H);
void lstm_cell_backward(const float* acts, const float* c_prev, const float* gh, const float* gc, float* ggates,
                        float* gc_prev, int64_t B, int64_t H);
void lstm_scan_forward(const cpu::LstmScan& s, const float* xgates, const float* h0, const float* c0, float* y);
void lstm_scan_backward(const cpu::LstmScan& s, const float* gy, float* gxgates, float* gw_hh, float* gh0,
                        float* gc0);
// Which LSTM kernels run (MSMIX_CUDA_LSTM=persistent|stepwise|cudnn|cudnn-persistent, read once; another value
// is an error; tests set each): persistent (the default), lstm_scan's kernels that walk all T steps in one
// launch; stepwise, a GEMM and a cell kernel per step; cudnn, an LSTM layer's forward direction through cuDNN
// (lstm_layer, ops/lstm_cell.h; lstm_scan itself then runs the persistent kernels); cudnn_persistent, the same
// with cuDNN's persistent algorithm where every sample runs all T steps (else its standard one). The cudnn
// kinds need a build with cuDNN: choosing one in a build without throws, naming why.
enum class LstmKernel { persistent, stepwise, cudnn, cudnn_persistent };
inline bool is_cudnn(LstmKernel k) { return k == LstmKernel::cudnn || k == LstmKernel::cudnn_persistent; }
LstmKernel lstm_kernel();
void set_lstm_kernel(LstmKernel kernel);
const char* lstm_kernel_name(LstmKernel kernel);

// ---- lstm_cudnn.cu: one forward-direction LSTM layer through cuDNN's RNN API (FP32, no TF32, PyTorch's
// gate order, two biases), compiled when the build found cuDNN (the Makefile's CUDNN); in a build without,
// cudnn_compiled() is false and the calls throw. Pointers are device memory but lengths (host).
bool cudnn_compiled();
std::string cudnn_version();  // "cuDNN 9.19.0" (the library's), or why there is none
// Throws unless this build has cuDNN, naming the choice that needs it (e.g. "MSMIX_CUDA_CONV=cudnn") and the
// choices that do not.
void require_cudnn(const std::string& choice, const char* otherwise);
struct CudnnLstmShape {
  int64_t T = 0, B = 0, I = 0, H = 0;
  const int64_t* lengths = nullptr;  // B of them, each in [1, T]
  bool persistent = false;           // cuDNN's PERSIST_STATIC algorithm: every length must then be T
};
// What a forward keeps for its backward: descriptors, the weights in cuDNN's layout, the reserve space.
struct CudnnLstmRun;
// x [T, B, I], w_ih [4H, I], w_hh [4H, H], b_ih and b_hh [4H] (both null: no bias) -> y [T + 2, B, H]: the
// outputs (0 past each length), then h_n and c_n. training: keep what the backward needs (else returns null).
std::shared_ptr<CudnnLstmRun> cudnn_lstm_forward(const CudnnLstmShape& s, const float* x, const float* w_ih,
                                                 const float* w_hh, const float* b_ih, const float* b_hh, float* y,
                                                 bool training);
// x and y as given to and made by the forward; gy [T + 2, B, H]. Writes gx [T, B, I] and the weights' grads
// (gb_ih and gb_hh null without bias). Once per run: it overwrites the run's reserve space.
void cudnn_lstm_backward(CudnnLstmRun& run, const float* x, const float* y, const float* gy, float* gx,
                         float* gw_ih, float* gw_hh, float* gb_ih, float* gb_hh);

// ---- dropout.cu: the CPU's Philox mask, bit for bit (twin: ops/cpu/dropout.h)
// One argument more than the twin: offset_base (device memory, or null) is added to offset on the device, for a
// captured graph step (engine/random.h).
void dropout_apply(const float* in, float* out, int64_t n, float p, float scale, uint64_t seed, uint64_t offset,
                   const uint64_t* offset_base);

// ---- optimizer.cu: the optimizers' updates and gradient clipping's passes (twin: ops/cpu/optimizer.h). The same
// float operations in the same order as the CPU (no FMA contraction), so an update equals the CPU's bit for bit.
void sgd_update(float* param, const float* grad, float* momentum_buf, int64_t n, const cpu::SGDScalars& s);
void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                 const cpu::AdamScalars& s);
// Every tensor of the list in one launch (the list is copied to the device first; no read back).
void adam_update_many(const std::vector<cpu::AdamTensor>& tensors);
void clamp_inplace(float* g, int64_t n, float lo, float hi);
// clip_grad_norm without a read back: the grads' sum of squares in double (fixed chunks, fixed order), then
// norm = float(sqrt(sum)) and coef = max_norm / (norm + 1e-6) in float, as the CPU; each grad *= coef when
// norm is finite and coef < 1. decision (2 floats, device) gets {norm, coef or 1}.
void clip_grad_norm_many(const std::vector<std::pair<float*, int64_t>>& grads, float max_norm, float* decision);

// ---- attention.cu: the fused multi-head attention core (twin: ops/cpu/attention.h), device pointers. Head
// widths up to kAttentionMaxHeadDim (the per-lane register rows); wider heads throw, naming the width.
// The backward is deterministic (no atomics) and needs a [B H, L] float scratch of its own.
constexpr int64_t kAttentionMaxHeadDim = 64;
void attention_forward(const cpu::AttentionArgs& a, const cpu::AttentionDims& d, float* out, float* stats);
void attention_backward(const cpu::AttentionArgs& a, const cpu::AttentionDims& d, const float* stats,
                        const float* gout, float* gq, float* gk, float* gv);
// The uint32 words of AttentionArgs::dropout_bits for these dims (a forward with dropout that a backward will
// follow writes its decisions there: the backward then draws no Philox).
int64_t attention_dropout_words(const cpu::AttentionDims& d);

// ---- pair_selection.cu: MS-Mix's pair selection in one block, equal to the CPU twin (ops/cpu/pair_selection.h)
// for every input. similarity [B, B], draws [B, cpu::kDrawParts], pairs [2, B], stats [cpu::kSelectionStats]
// and workspace [pair_selection_workspace(B)] are device pointers; nothing is read back.
int64_t pair_selection_workspace(int64_t B);
void select_pairs(const float* similarity, int64_t B, float delta, const float* draws, float* pairs, float* stats,
                  float* workspace);

// ---- row_ranks.cu: descending ranks within rows, equal to ops/cpu/row_ranks.h; x, ranks [R, C] device pointers.
void row_ranks(const float* x, int64_t R, int64_t C, float* ranks);

}  // namespace msmix::cuda
