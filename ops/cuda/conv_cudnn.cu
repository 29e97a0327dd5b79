// conv1d through cuDNN's convolution (MSMIX_CUDA_CONV=cudnn), kept beside our im2col + cuBLAS kernels (conv.cu)
// so that a benchmark sets them side by side: the issue takes cuDNN where it measures faster. The 1-d
// convolution is cuDNN's 2-d one over rows of height 1: x [N, Cin, 1, L], weight [Cout, Cin, 1, K], padding
// (0, padding), stride 1, cross-correlation (as PyTorch's and ours). FP32 with FMA math (no TF32, as PyTorch
// with allow_tf32 off), and for each pass the algorithm cuDNN's heuristics rank first among the deterministic
// ones, so the same inputs give the same bits every run. Descriptors, algorithms and workspace sizes are
// chosen once per shape. The bias and its grad stay with conv.cu.
// Compiled with MSMIX_CUDNN (the Makefile defines it where it finds cudnn.h); without, the entry points throw.
#include <climits>

#include "engine/error.h"
#include "ops/cuda/kernels.h"

#if MSMIX_CUDNN
#include <map>
#include <tuple>
#include <vector>

#include "engine/cuda_runtime.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/cudnn_common.cuh"

namespace msmix::cuda {
namespace {

using cpu::Conv1dShape;
using FilterDesc = CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc =
    CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

// A shape's descriptors and, per pass, the algorithm and its workspace.
struct ConvPlan {
  CudnnTensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  cudnnConvolutionFwdAlgo_t forward{};
  cudnnConvolutionBwdDataAlgo_t backward_data{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter{};
  size_t forward_bytes = 0, data_bytes = 0, filter_bytes = 0;
};

// The first of cuDNN's ranked algorithms that ran its heuristics' checks and is deterministic, preferring those
// labelled FMA math; cuDNN may label an algorithm that has no tensor-op variant DEFAULT math instead, which
// still runs without TF32 (the descriptor's math type, FMA, governs the call).
template <class Perf>
const Perf& first_usable(const std::vector<Perf>& ranked, int returned, const char* pass, const Conv1dShape& s) {
  for (cudnnMathType_t math : {CUDNN_FMA_MATH, CUDNN_DEFAULT_MATH})
    for (int i = 0; i < returned; ++i) {
      const Perf& p = ranked[size_t(i)];
      if (p.status == CUDNN_STATUS_SUCCESS && p.determinism == CUDNN_DETERMINISTIC && p.mathType == math) return p;
    }
  std::string seen;  // what cuDNN offered, so that one GPU run explains a refusal
  for (int i = 0; i < returned; ++i) {
    const Perf& p = ranked[size_t(i)];
    seen += fmt::format(" (algo {}, status {}, deterministic {}, math {})", int(p.algo), int(p.status),
                        int(p.determinism), int(p.mathType));
  }
  throw Error(fmt::format("cuDNN conv1d {}: no deterministic FP32 algorithm for N {}, Cin {}, L {}, Cout {}, K {}, "
                          "padding {} (cuDNN offered{}); MSMIX_CUDA_CONV=im2col runs ours",
                          pass, s.N, s.Cin, s.L, s.Cout, s.K, s.padding, seen.empty() ? " nothing" : seen));
}

const ConvPlan& plan_for(const Conv1dShape& s) {
  MSMIX_CHECK(cudnn_conv_fits(s), "cuDNN conv1d: N {}, Cin {}, L {}, Cout {}, K {} do not fit its descriptors", s.N,
              s.Cin, s.L, s.Cout, s.K);
  // The engine's one thread; never freed, as the handle (their destructors would outlive cuDNN at exit).
  static auto* plans = new std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>,
                                    std::unique_ptr<ConvPlan>>();
  std::unique_ptr<ConvPlan>& slot = (*plans)[{s.N, s.Cin, s.L, s.Cout, s.K, s.padding}];
  if (slot) return *slot;
  auto p = std::make_unique<ConvPlan>();
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(s.N), int(s.Cin), 1,
                                         int(s.L)));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(s.N), int(s.Cout), 1,
                                         int(s.Lout)));
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(s.Cout), int(s.Cin), 1,
                                         int(s.K)));
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv.get(), 0, int(s.padding), 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv.get(), CUDNN_FMA_MATH));
  int dims[4] = {};
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv.get(), p->x.get(), p->w.get(), &dims[0], &dims[1],
                                                    &dims[2], &dims[3]));
  MSMIX_CHECK(dims[0] == s.N && dims[1] == s.Cout && dims[2] == 1 && dims[3] == s.Lout,
              "cuDNN conv1d: cuDNN's output [{}, {}, {}, {}] is not [N {}, Cout {}, 1, Lout {}]", dims[0], dims[1],
              dims[2], dims[3], s.N, s.Cout, s.Lout);
  const cudnnHandle_t h = cudnn_handle();
  int returned = 0;
  std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p->x.get(), p->w.get(), p->conv.get(), p->y.get(),
                                                     int(fwd.size()), &returned, fwd.data()));
  const cudnnConvolutionFwdAlgoPerf_t& f = first_usable(fwd, returned, "forward", s);
  p->forward = f.algo;
  CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p->x.get(), p->w.get(), p->conv.get(), p->y.get(), f.algo,
                                                      &p->forward_bytes));
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->w.get(), p->y.get(), p->conv.get(), p->x.get(),
                                                          int(data.size()), &returned, data.data()));
  const cudnnConvolutionBwdDataAlgoPerf_t& d = first_usable(data, returned, "backward data", s);
  p->backward_data = d.algo;
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->w.get(), p->y.get(), p->conv.get(), p->x.get(),
                                                           d.algo, &p->data_bytes));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->x.get(), p->y.get(), p->conv.get(), p->w.get(),
                                                            int(filter.size()), &returned, filter.data()));
  const cudnnConvolutionBwdFilterAlgoPerf_t& w = first_usable(filter, returned, "backward filter", s);
  p->backward_filter = w.algo;
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->x.get(), p->y.get(), p->conv.get(), p->w.get(),
                                                             w.algo, &p->filter_bytes));
  slot = std::move(p);
  return *slot;
}

}  // namespace

bool cudnn_conv_fits(const Conv1dShape& s) {
  const int64_t most = INT_MAX;  // cuDNN's 4-d descriptors take ints, and its tensors at most 2^31 - 1 elements
  return s.N > 0 && s.Cin > 0 && s.L > 0 && s.Cout > 0 && s.K > 0 && s.Lout > 0 && s.padding >= 0 &&
         s.N * s.Cin * s.L <= most && s.N * s.Cout * s.Lout <= most && s.Cout * s.Cin * s.K <= most &&
         s.padding <= most;
}

void cudnn_conv1d_forward(const float* x, const float* weight, float* y, const Conv1dShape& s) {
  const ConvPlan& p = plan_for(s);
  DeviceBuffer work(cudnn_floats_in(p.forward_bytes));
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionForward(cudnn_handle(), &one, p.x.get(), x, p.w.get(), weight, p.conv.get(), p.forward,
                                      work.get(), p.forward_bytes, &zero, p.y.get(), y));
  CUDA_CHECK_LAUNCH("cudnnConvolutionForward");
}

void cudnn_conv1d_backward(const float* x, const float* weight, const float* gy, float* gx, float* gweight,
                           const Conv1dShape& s) {
  const ConvPlan& p = plan_for(s);
  const float one = 1.0f, zero = 0.0f;
  if (gx) {
    DeviceBuffer work(cudnn_floats_in(p.data_bytes));
    CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_handle(), &one, p.w.get(), weight, p.y.get(), gy, p.conv.get(),
                                             p.backward_data, work.get(), p.data_bytes, &zero, p.x.get(), gx));
    CUDA_CHECK_LAUNCH("cudnnConvolutionBackwardData");
  }
  if (gweight) {
    DeviceBuffer work(cudnn_floats_in(p.filter_bytes));
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_handle(), &one, p.x.get(), x, p.y.get(), gy, p.conv.get(),
                                               p.backward_filter, work.get(), p.filter_bytes, &zero, p.w.get(),
                                               gweight));
    CUDA_CHECK_LAUNCH("cudnnConvolutionBackwardFilter");
  }
}

}  // namespace msmix::cuda

#else  // built without cuDNN

namespace msmix::cuda {

bool cudnn_conv_fits(const cpu::Conv1dShape&) { return false; }
void cudnn_conv1d_forward(const float*, const float*, float*, const cpu::Conv1dShape&) {
  throw Error("cuda::cudnn_conv1d_forward: msmix was built without cuDNN (make CUDNN=1 CUDNN_HOME=...)");
}
void cudnn_conv1d_backward(const float*, const float*, const float*, float*, float*, const cpu::Conv1dShape&) {
  throw Error("cuda::cudnn_conv1d_backward: msmix was built without cuDNN (make CUDNN=1 CUDNN_HOME=...)");
}

}  // namespace msmix::cuda

#endif
