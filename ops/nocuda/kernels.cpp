// Linked instead of ops/cuda/*.cu when the build has no CUDA (make CUDA=0 or no nvcc): every kernel entry
// point throws. They are unreachable in practice (a CUDA tensor cannot be made without a GPU, see Storage), so
// this only keeps the op layer free of #ifdefs. engine/nocuda/stubs.cpp does the same for the runtime.
#include "engine/error.h"
#include "ops/cuda/kernels.h"

namespace msmix::cuda {
namespace {

[[noreturn]] void no_cuda(const char* what) {
  throw Error(fmt::format("cuda::{}: msmix was built without CUDA (rebuild with nvcc on PATH or make CUDA=1)", what));
}

}  // namespace

void binary_forward(BinaryOp, const float*, const Shape&, const float*, const Shape&, float*, const Shape&) {
  no_cuda("binary_forward");
}
void broadcast_to(const float*, const Shape&, float*, const Shape&) { no_cuda("broadcast_to"); }
void binary_scalar_forward(BinaryOp, const float*, float, bool, float*, int64_t) { no_cuda("binary_scalar_forward"); }

void unary_forward(UnaryOp, UnaryParams, const float*, float*, int64_t) { no_cuda("unary_forward"); }
void unary_backward(UnaryOp, UnaryParams, const float*, const float*, const float*, float*, int64_t) {
  no_cuda("unary_backward");
}

void reduce_dim(ReduceOp, const float*, float*, int64_t, int64_t, int64_t) { no_cuda("reduce_dim"); }

void softmax_forward(const float*, float*, int64_t, int64_t, bool) { no_cuda("softmax_forward"); }
void softmax_backward(const float*, const float*, float*, int64_t, int64_t, bool) { no_cuda("softmax_backward"); }
bool softmax_rows_in_registers() { return false; }
void set_softmax_rows_in_registers(bool) {}

void layer_norm_forward(const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t, float) {
  no_cuda("layer_norm_forward");
}
void layer_norm_backward(const float*, const float*, const float*, const float*, const float*, float*, float*, float*,
                         int64_t, int64_t) {
  no_cuda("layer_norm_backward");
}

void gemm_batched(const cpu::GemmBatch&) { no_cuda("gemm_batched"); }
void broadcast_rows(const float*, float*, int64_t, int64_t) { no_cuda("broadcast_rows"); }
void sum_rows(const float*, float*, int64_t, int64_t) { no_cuda("sum_rows"); }

void copy_along_dim(const float*, int64_t, int64_t, float*, int64_t, int64_t, int64_t, int64_t, int64_t) {
  no_cuda("copy_along_dim");
}
void permute(const float*, const Shape&, const std::vector<int64_t>&, float*) { no_cuda("permute"); }
void index_select_forward(const float*, int64_t, int64_t, int64_t, const float*, int64_t, float*) {
  no_cuda("index_select_forward");
}
void gather_forward(const float*, const Shape&, const float*, const Shape&, int64_t, float*) {
  no_cuda("gather_forward");
}
void where_forward(const float*, const Shape&, const float*, const Shape&, const float*, const Shape&, float*,
                   const Shape&) {
  no_cuda("where_forward");
}
void index_select_backward(const float*, int64_t, int64_t, int64_t, const float*, int64_t, float*) {
  no_cuda("index_select_backward");
}
void index_select_backward_host(const float*, int64_t, int64_t, int64_t, const std::vector<int64_t>&, float*) {
  no_cuda("index_select_backward_host");
}
void index_select_backward_search(const float*, int64_t, int64_t, int64_t, const float*, int64_t, float*) {
  no_cuda("index_select_backward_search");
}
void gather_backward(const float*, const Shape&, const float*, const Shape&, int64_t, float*) {
  no_cuda("gather_backward");
}

void batch_norm_stats(const float*, float, float, float*, float*, float*, float*, int64_t, int64_t, int64_t) {
  no_cuda("batch_norm_stats");
}
void batch_norm_running_stats(const float*, const float*, float, float*, float*, int64_t) {
  no_cuda("batch_norm_running_stats");
}
void batch_norm_apply(const float*, const float*, const float*, const float*, const float*, float*, int64_t, int64_t,
                      int64_t) {
  no_cuda("batch_norm_apply");
}
void batch_norm_backward(const float*, const float*, const float*, const float*, const float*, bool, float*, float*,
                         float*, int64_t, int64_t, int64_t) {
  no_cuda("batch_norm_backward");
}

void pointwise_loss_forward(PointwiseLoss, float, const float*, const float*, float*, int64_t) {
  no_cuda("pointwise_loss_forward");
}
void pointwise_loss_backward(PointwiseLoss, float, const float*, const float*, const float*, float*, float*, int64_t) {
  no_cuda("pointwise_loss_backward");
}
void cross_entropy_forward(const float*, const float*, float*, float*, int64_t, int64_t) {
  no_cuda("cross_entropy_forward");
}
void cross_entropy_backward(const float*, const float*, const float*, const float*, float*, int64_t, int64_t) {
  no_cuda("cross_entropy_backward");
}

void conv1d_forward(const float*, const float*, const float*, float*, const cpu::Conv1dShape&) {
  no_cuda("conv1d_forward");
}
void conv1d_backward(const float*, const float*, const float*, float*, float*, float*, const cpu::Conv1dShape&) {
  no_cuda("conv1d_backward");
}
ConvKernel conv_kernel() { return ConvKernel::im2col; }
void set_conv_kernel(ConvKernel) {}
const char* conv_kernel_name(ConvKernel) { return "none (built without CUDA)"; }
bool cudnn_conv_fits(const cpu::Conv1dShape&) { return false; }
void cudnn_conv1d_forward(const float*, const float*, float*, const cpu::Conv1dShape&) {
  no_cuda("cudnn_conv1d_forward");
}
void cudnn_conv1d_backward(const float*, const float*, const float*, float*, float*, const cpu::Conv1dShape&) {
  no_cuda("cudnn_conv1d_backward");
}

void lstm_cell_forward(const float*, const float*, float*, float*, float*, int64_t, int64_t) {
  no_cuda("lstm_cell_forward");
}
void lstm_cell_backward(const float*, const float*, const float*, const float*, float*, float*, int64_t, int64_t) {
  no_cuda("lstm_cell_backward");
}
void lstm_scan_forward(const cpu::LstmScan&, const float*, const float*, const float*, float*) {
  no_cuda("lstm_scan_forward");
}
void lstm_scan_backward(const cpu::LstmScan&, const float*, float*, float*, float*, float*) {
  no_cuda("lstm_scan_backward");
}
LstmKernel lstm_kernel() { return LstmKernel::persistent; }
void set_lstm_kernel(LstmKernel) {}
const char* lstm_kernel_name(LstmKernel) { return "none (built without CUDA)"; }

bool cudnn_compiled() { return false; }
std::string cudnn_version() { return "none (built without CUDA)"; }
struct CudnnLstmRun {};
std::shared_ptr<CudnnLstmRun> cudnn_lstm_forward(const CudnnLstmShape&, const float*, const float*, const float*,
                                                 const float*, const float*, float*, bool) {
  no_cuda("cudnn_lstm_forward");
}
void cudnn_lstm_backward(CudnnLstmRun&, const float*, const float*, const float*, float*, float*, float*,
                         float*, float*) {
  no_cuda("cudnn_lstm_backward");
}

void dropout_apply(const float*, float*, int64_t, float, float, uint64_t, uint64_t, const uint64_t*) {
  no_cuda("dropout_apply");
}

void sgd_update(float*, const float*, float*, int64_t, const cpu::SGDScalars&) { no_cuda("sgd_update"); }
void adam_update(float*, const float*, float*, float*, int64_t, const cpu::AdamScalars&) { no_cuda("adam_update"); }
void adam_update_many(const std::vector<cpu::AdamTensor>&) { no_cuda("adam_update_many"); }
void clamp_inplace(float*, int64_t, float, float) { no_cuda("clamp_inplace"); }
void clip_grad_norm_many(const std::vector<std::pair<float*, int64_t>>&, float, float*) {
  no_cuda("clip_grad_norm_many");
}

void attention_forward(const cpu::AttentionArgs&, const cpu::AttentionDims&, float*, float*) {
  no_cuda("attention_forward");
}
void attention_backward(const cpu::AttentionArgs&, const cpu::AttentionDims&, const float*, const float*, float*,
                        float*, float*) {
  no_cuda("attention_backward");
}
int64_t attention_dropout_words(const cpu::AttentionDims&) { no_cuda("attention_dropout_words"); }

int64_t pair_selection_workspace(int64_t) { no_cuda("pair_selection_workspace"); }
void select_pairs(const float*, int64_t, float, const float*, float*, float*, float*) { no_cuda("select_pairs"); }
void row_ranks(const float*, int64_t, int64_t, float*) { no_cuda("row_ranks"); }

}  // namespace msmix::cuda
