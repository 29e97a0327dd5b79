// One forward-direction LSTM layer through cuDNN's RNN API (MSMIX_CUDA_LSTM=cudnn), kept beside our own scans
// (lstm_cell.cu) so that a benchmark sets them side by side: the issue takes cuDNN where it measures faster.
// cuDNN runs the whole layer, the input projection included, with PyTorch's FP32 settings when TF32 is off
// (ALGO_STANDARD, FMA math; PyTorch allows TF32 by default), over a seq-major padded batch with per-sample
// lengths: y is 0 past each length, and h_n, c_n are each sample's state after its own last step, as our
// scan's. MSMIX_CUDA_LSTM=cudnn-persistent asks for cuDNN's persistent-kernel algorithm instead (PERSIST_STATIC:
// the recurrence in one launch that keeps w_hh on chip, as our persistent scan), for batches whose samples all
// run T steps (packed, no padding); PyTorch uses it for FP16 only, so whether cuDNN takes it in FP32 at a shape
// is for the GPU to say: a refusal throws, naming the shape.
// cuDNN keeps the weights in one "weight space" in its own layout: each forward copies w_ih, w_hh, b_ih and
// b_hh in (four copies where cuDNN lays the four gates out one after another, as it does for PyTorch; else one
// per gate), and the backward copies the grads out of a grad weight space. The backward reads the forward's
// reserve space, which CudnnLstmRun keeps. Each cuDNN call counts as one queued GPU call, though cuDNN
// launches several kernels per step inside it.
// Compiled with MSMIX_CUDNN (the Makefile defines it where it finds cudnn.h); without, the entry points throw.
#include "engine/error.h"
#include "ops/cuda/kernels.h"

#if MSMIX_CUDNN
#include <map>
#include <tuple>

#include "engine/cuda_runtime.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/cudnn_common.cuh"

namespace msmix::cuda {
namespace {

using RnnDesc = CudnnDescriptor<cudnnRNNDescriptor_t, cudnnCreateRNNDescriptor, cudnnDestroyRNNDescriptor>;
using DropoutDesc =
    CudnnDescriptor<cudnnDropoutDescriptor_t, cudnnCreateDropoutDescriptor, cudnnDestroyDropoutDescriptor>;
using DataDesc = CudnnDescriptor<cudnnRNNDataDescriptor_t, cudnnCreateRNNDataDescriptor, cudnnDestroyRNNDataDescriptor>;

// A layer's shape as cuDNN sees it (I, H, bias), and where each gate's matrix and bias sit in its weight space.
// Built once per shape: descriptors and the layout query cost host time that a step need not pay again.
struct Layer {
  RnnDesc rnn;
  DropoutDesc dropout;  // a single layer has no dropout, but cuDNN wants the descriptor
  size_t weight_bytes = 0;
  // In floats from the weight space's start, per cuDNN linear-layer id: 0-3 the input matrices [H, I] of gates
  // i, f, g, o (PyTorch's order), 4-7 the recurrent ones [H, H]; the biases likewise (b_ih, then b_hh).
  int64_t matrix[8] = {}, bias[8] = {};
  bool contiguous = false;  // gates one after another: w_ih, w_hh, b_ih, b_hh each one block, as PyTorch's
};

const Layer& layer_for(int64_t I, int64_t H, bool bias, bool persistent) {
  // The engine's one thread; never freed, as the handle (their destructors would outlive cuDNN at exit).
  static auto* layers = new std::map<std::tuple<int64_t, int64_t, bool, bool>, std::unique_ptr<Layer>>();
  std::unique_ptr<Layer>& slot = (*layers)[{I, H, bias, persistent}];
  if (slot) return *slot;
  auto layer = std::make_unique<Layer>();
  CUDNN_CHECK(cudnnSetDropoutDescriptor(layer->dropout.get(), cudnn_handle(), 0.0f, nullptr, 0, 0));
  // Padded IO for the standard algorithm's per-sample lengths; the persistent one gets packed batches.
  CUDNN_CHECK(cudnnSetRNNDescriptor_v8(
      layer->rnn.get(), persistent ? CUDNN_RNN_ALGO_PERSIST_STATIC : CUDNN_RNN_ALGO_STANDARD, CUDNN_LSTM,
      bias ? CUDNN_RNN_DOUBLE_BIAS : CUDNN_RNN_NO_BIAS, CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, CUDNN_DATA_FLOAT,
      CUDNN_DATA_FLOAT, CUDNN_FMA_MATH, int(I), int(H), int(H) /* no projection */, 1, layer->dropout.get(),
      persistent ? CUDNN_RNN_PADDED_IO_DISABLED : CUDNN_RNN_PADDED_IO_ENABLED));
  CUDNN_CHECK(cudnnGetRNNWeightSpaceSize(cudnn_handle(), layer->rnn.get(), &layer->weight_bytes));
  // The layout query answers with addresses inside a given weight space: a scratch one, for the offsets.
  DeviceBuffer probe(cudnn_floats_in(layer->weight_bytes));
  CudnnTensorDesc m, b;
  for (int id = 0; id < 8; ++id) {
    void *m_addr = nullptr, *b_addr = nullptr;
    CUDNN_CHECK(cudnnGetRNNWeightParams(cudnn_handle(), layer->rnn.get(), 0, layer->weight_bytes, probe.get(), id,
                                        m.get(), &m_addr, b.get(), &b_addr));
    cudnnDataType_t type;
    int dims[3] = {}, strides[3] = {}, nd = 0;
    CUDNN_CHECK(cudnnGetTensorNdDescriptor(m.get(), 3, &type, &nd, dims, strides));
    // cuDNN describes each matrix as {1, rows, cols}: row-major [H, in], the layout of a gate's rows of ours.
    const int64_t cols = id < 4 ? I : H;
    MSMIX_CHECK(
        m_addr && nd == 3 && dims[0] == 1 && dims[1] == H && dims[2] == cols && strides[2] == 1 && strides[1] == cols,
        "cuDNN LSTM({}, {}): gate matrix {} is not a dense [{}, {}] in the weight space (got {} dims: {}, {}, {})", I,
        H, id, H, cols, nd, dims[0], dims[1], dims[2]);
    layer->matrix[id] = static_cast<const float*>(m_addr) - probe.get();
    layer->bias[id] = b_addr ? static_cast<const float*>(b_addr) - probe.get() : -1;
    MSMIX_CHECK(!bias || b_addr, "cuDNN LSTM({}, {}): no bias {} in the weight space", I, H, id);
  }
  bool contiguous = true;
  for (int k = 0; k < 4; ++k) {
    contiguous = contiguous && layer->matrix[k] == layer->matrix[0] + k * H * I &&
                 layer->matrix[4 + k] == layer->matrix[4] + k * H * H;
    if (bias)
      contiguous =
          contiguous && layer->bias[k] == layer->bias[0] + k * H && layer->bias[4 + k] == layer->bias[4] + k * H;
  }
  layer->contiguous = contiguous;
  slot = std::move(layer);
  return *slot;
}

// Our four tensors <-> cuDNN's weight space: to_space copies ours in, else the space's values out into ours.
void copy_weights(const Layer& L, int64_t I, int64_t H, float* space, const float* w_ih, const float* w_hh,
                  const float* b_ih, const float* b_hh, bool to_space) {
  auto copy = [&](int64_t offset, const float* ours, int64_t n) {
    const size_t bytes = size_t(n) * sizeof(float);
    if (to_space)
      memcpy_device_to_device(space + offset, ours, bytes);
    else
      memcpy_device_to_device(const_cast<float*>(ours), space + offset, bytes);
  };
  const int gates = L.contiguous ? 1 : 4, per = L.contiguous ? 4 : 1;  // blocks, and gates per block
  for (int k = 0; k < gates; ++k) {
    copy(L.matrix[k], w_ih + k * H * I, per * H * I);
    copy(L.matrix[4 + k], w_hh + k * H * H, per * H * H);
    if (b_ih) copy(L.bias[k], b_ih + k * H, per * H);
    if (b_hh) copy(L.bias[4 + k], b_hh + k * H, per * H);
  }
}

void check_shape(const CudnnLstmShape& s) {
  const int64_t int_max = 2147483647;
  MSMIX_CHECK(s.T > 0 && s.B > 0 && s.I > 0 && s.H > 0 && s.T <= int_max && s.B <= int_max && s.I <= int_max &&
                  4 * s.H <= int_max && s.lengths,
              "cuDNN LSTM: T {}, B {}, I {}, H {} must be positive and fit an int, with lengths", s.T, s.B, s.I, s.H);
  for (int64_t b = 0; b < s.B; ++b) {
    MSMIX_CHECK(s.lengths[b] >= 1 && s.lengths[b] <= s.T, "cuDNN LSTM: sample {}'s length {} is outside [1, {}]", b,
                s.lengths[b], s.T);
    MSMIX_CHECK(!s.persistent || s.lengths[b] == s.T,
                "cuDNN LSTM, persistent algorithm: sample {} runs {} steps, not T = {} (it takes unpadded batches)", b,
                s.lengths[b], s.T);
  }
}

}  // namespace

// A forward's descriptors and buffers, which its backward reads.
struct CudnnLstmRun {
  CudnnLstmRun(const CudnnLstmShape& s, const Layer& l)
      : shape(s), layer(&l), weights(cudnn_floats_in(l.weight_bytes)), seq_lengths(size_t(s.B)) {
    for (int64_t b = 0; b < s.B; ++b) padded = padded || s.lengths[b] < s.T;
    shape.lengths = nullptr;  // the caller's array is gone by backward; the descriptors and seq_lengths keep them
  }
  CudnnLstmShape shape;
  const Layer* layer;
  bool padded = false;  // some sample shorter than T
  DataDesc x_desc, y_desc;
  CudnnTensorDesc state_desc;
  DeviceBuffer weights;      // w_ih, w_hh, b_ih, b_hh in cuDNN's layout
  DeviceBuffer seq_lengths;  // int32 [B]: cuDNN's kernels read the lengths from the device
  size_t work_bytes = 0, reserve_bytes = 0;
  std::unique_ptr<DeviceBuffer> reserve_space;  // training only
};

bool cudnn_compiled() { return true; }

std::string cudnn_version() {
  const size_t v = cudnnGetVersion();  // major * 10000 + minor * 100 + patch since cuDNN 9
  return fmt::format("cuDNN {}.{}.{} (built with {}.{}.{})", v / 10000, v / 100 % 100, v % 100, CUDNN_MAJOR,
                     CUDNN_MINOR, CUDNN_PATCHLEVEL);
}

namespace {

std::shared_ptr<CudnnLstmRun> forward_run(const CudnnLstmShape& s, const float* x, const float* w_ih,
                                          const float* w_hh, const float* b_ih, const float* b_hh, float* y,
                                          bool training) {
  MSMIX_CHECK(!b_ih == !b_hh, "cuDNN LSTM: b_ih and b_hh must both be given or both be null");
  const Layer& layer = layer_for(s.I, s.H, b_ih != nullptr, s.persistent);
  const int64_t T = s.T, B = s.B, H = s.H;

  // The batch's descriptors: seq-major [T, B, vector] with each sample's length, padding written as 0 (packed
  // for the persistent algorithm: every length is T, so the same memory).
  std::vector<int> lengths(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) lengths[size_t(b)] = int(s.lengths[b]);
  auto run = std::make_shared<CudnnLstmRun>(s, layer);
  float fill = 0.0f;
  const cudnnRNNDataLayout_t layout =
      s.persistent ? CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED : CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED;
  CUDNN_CHECK(cudnnSetRNNDataDescriptor(run->x_desc.get(), CUDNN_DATA_FLOAT, layout, int(T), int(B), int(s.I),
                                        lengths.data(), &fill));
  CUDNN_CHECK(cudnnSetRNNDataDescriptor(run->y_desc.get(), CUDNN_DATA_FLOAT, layout, int(T), int(B), int(H),
                                        lengths.data(), &fill));
  const int dims[3] = {1, int(B), int(H)}, strides[3] = {int(B * H), int(H), 1};  // [layers, B, H]
  CUDNN_CHECK(cudnnSetTensorNdDescriptor(run->state_desc.get(), CUDNN_DATA_FLOAT, 3, dims, strides));
  const cudnnForwardMode_t mode = training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE;
  CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(cudnn_handle(), layer.rnn.get(), mode, run->x_desc.get(), &run->work_bytes,
                                        &run->reserve_bytes));
  if (training) run->reserve_space = std::make_unique<DeviceBuffer>(cudnn_floats_in(run->reserve_bytes));
  memcpy_host_to_device(run->seq_lengths.get(), lengths.data(), lengths.size() * sizeof(int));
  copy_weights(layer, s.I, H, run->weights.get(), w_ih, w_hh, b_ih, b_hh, true);

  DeviceBuffer work(cudnn_floats_in(run->work_bytes));
  // The final states go to y's last two [B, H] rows through buffers of their own: y + T B H is only 4-byte
  // aligned when T B H is odd, and cuDNN documents no alignment for hy / cy (every other caller we know of
  // gives them their own allocations).
  DeviceBuffer h_n(size_t(B * H)), c_n(size_t(B * H));
  CUDNN_CHECK(cudnnRNNForward(cudnn_handle(), layer.rnn.get(), mode,
                              reinterpret_cast<const int32_t*>(run->seq_lengths.get()), run->x_desc.get(), x,
                              run->y_desc.get(), y, run->state_desc.get(), nullptr, h_n.get(), run->state_desc.get(),
                              nullptr, c_n.get(), layer.weight_bytes, run->weights.get(), run->work_bytes, work.get(),
                              training ? run->reserve_bytes : 0, training ? run->reserve_space->get() : nullptr));
  CUDA_CHECK_LAUNCH("cudnnRNNForward");
  memcpy_device_to_device(y + T * B * H, h_n.get(), size_t(B * H) * sizeof(float));
  memcpy_device_to_device(y + (T + 1) * B * H, c_n.get(), size_t(B * H) * sizeof(float));
  return training ? run : nullptr;
}

void backward_run(CudnnLstmRun& run, const float* x, const float* y, const float* gy, float* gx, float* gw_ih,
                  float* gw_hh, float* gb_ih, float* gb_hh) {
  const CudnnLstmShape& s = run.shape;
  const Layer& layer = *run.layer;
  const int64_t T = s.T, B = s.B, H = s.H;
  const int32_t* seq = reinterpret_cast<const int32_t*>(run.seq_lengths.get());
  DeviceBuffer work(cudnn_floats_in(run.work_bytes));
  MSMIX_CHECK(run.reserve_space, "cuDNN LSTM: a backward through a forward run without training");
  // x's padding should get a zero grad (y there is a constant 0): zeroed first, for a cuDNN that leaves dx's
  // padding alone; one that writes there fills in the descriptors' paddingFill, 0 (`cuda lstm_layer` checks it).
  if (run.padded) memset_zero(gx, size_t(T * B * s.I) * sizeof(float));
  // The final states' grads, gy's last two [B, H] rows, in aligned buffers of their own (see forward_run).
  DeviceBuffer gh_n(size_t(B * H)), gc_n(size_t(B * H));
  memcpy_device_to_device(gh_n.get(), gy + T * B * H, size_t(B * H) * sizeof(float));
  memcpy_device_to_device(gc_n.get(), gy + (T + 1) * B * H, size_t(B * H) * sizeof(float));
  CUDNN_CHECK(cudnnRNNBackwardData_v8(cudnn_handle(), layer.rnn.get(), seq, run.y_desc.get(), y, gy, run.x_desc.get(),
                                      gx, run.state_desc.get(), nullptr, gh_n.get(), nullptr, run.state_desc.get(),
                                      nullptr, gc_n.get(), nullptr, layer.weight_bytes, run.weights.get(),
                                      run.work_bytes, work.get(), run.reserve_bytes, run.reserve_space->get()));
  CUDA_CHECK_LAUNCH("cudnnRNNBackwardData_v8");
  DeviceBuffer grads(cudnn_floats_in(layer.weight_bytes));
  memset_zero(grads.get(), layer.weight_bytes);
  CUDNN_CHECK(cudnnRNNBackwardWeights_v8(cudnn_handle(), layer.rnn.get(), CUDNN_WGRAD_MODE_ADD, seq, run.x_desc.get(),
                                         x, run.state_desc.get(), nullptr, run.y_desc.get(), y, layer.weight_bytes,
                                         grads.get(), run.work_bytes, work.get(), run.reserve_bytes,
                                         run.reserve_space->get()));
  CUDA_CHECK_LAUNCH("cudnnRNNBackwardWeights_v8");
  copy_weights(layer, s.I, H, grads.get(), gw_ih, gw_hh, gb_ih, gb_hh, false);
}

// Runs f; with the persistent algorithm, an error (cuDNN refusing it at this shape, say) is rethrown naming
// the choice and the shape, and the choice that runs cuDNN's standard algorithm.
template <class F>
auto naming_the_algorithm(const CudnnLstmShape& s, const char* what, F f) -> decltype(f()) {
  if (!s.persistent) return f();
  try {
    return f();
  } catch (const Error& e) {
    throw Error(fmt::format("cuDNN LSTM {} with the persistent algorithm (MSMIX_CUDA_LSTM=cudnn-persistent) at T {}, "
                            "B {}, I {}, H {}: {}; MSMIX_CUDA_LSTM=cudnn runs cuDNN's standard algorithm",
                            what, s.T, s.B, s.I, s.H, e.what()));
  }
}

}  // namespace

std::shared_ptr<CudnnLstmRun> cudnn_lstm_forward(const CudnnLstmShape& s, const float* x, const float* w_ih,
                                                 const float* w_hh, const float* b_ih, const float* b_hh, float* y,
                                                 bool training) {
  check_shape(s);
  return naming_the_algorithm(s, "forward", [&] { return forward_run(s, x, w_ih, w_hh, b_ih, b_hh, y, training); });
}

void cudnn_lstm_backward(CudnnLstmRun& run, const float* x, const float* y, const float* gy, float* gx, float* gw_ih,
                         float* gw_hh, float* gb_ih, float* gb_hh) {
  naming_the_algorithm(run.shape, "backward",
                       [&] { backward_run(run, x, y, gy, gx, gw_ih, gw_hh, gb_ih, gb_hh); });
}

}  // namespace msmix::cuda

#else  // built without cuDNN

namespace msmix::cuda {

struct CudnnLstmRun {};
bool cudnn_compiled() { return false; }
std::string cudnn_version() { return "none (built with CUDNN=0, or cudnn.h was not found)"; }
std::shared_ptr<CudnnLstmRun> cudnn_lstm_forward(const CudnnLstmShape&, const float*, const float*, const float*,
                                                 const float*, const float*, float*, bool) {
  throw Error("cuda::cudnn_lstm_forward: msmix was built without cuDNN (make CUDNN=1 CUDNN_HOME=...)");
}
void cudnn_lstm_backward(CudnnLstmRun&, const float*, const float*, const float*, float*, float*, float*, float*,
                         float*) {
  throw Error("cuda::cudnn_lstm_backward: msmix was built without cuDNN (make CUDNN=1 CUDNN_HOME=...)");
}

}  // namespace msmix::cuda

#endif

namespace msmix::cuda {

void require_cudnn(const std::string& choice, const char* otherwise) {
  MSMIX_CHECK(cudnn_compiled(),
              "{}: this msmix has no cuDNN: {}; rebuild where cuDNN's headers are found (make CUDNN=1 "
              "CUDNN_HOME=...), or choose {}",
              choice, cudnn_version(), otherwise);
}

}  // namespace msmix::cuda
