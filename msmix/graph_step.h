// A training step captured once as a CUDA graph and replayed for every later batch of the same size (the run
// key cuda_graph): the forward, the loss, the backward and the clipping become one launch instead of a few
// hundred, which is what bounds MMSA's small backbones on a GPU. The optimizer step stays outside (one launch).
//
//   GraphStep graph(model.parameters());
//   Tensor values = graph.captured() ? graph.replay(batch) : graph.capture(batch, body);
//   optimizer.step();  // the grads are those of `batch`
//
// What makes a replay equal an uncaptured step (tests/cuda/test_cuda_graph.cpp):
// - inputs: the graph reads the batch tensors it was captured with; replay() copies each batch into them;
// - dropout: the default generator's offset at the start of the step is written to the device before each
//   replay, and the captured kernels draw from it (engine/random.h, GraphPhilox); the host generator then
//   advances by what the step draws, as an uncaptured step would;
// - grads, without accumulation: captured with no grad present, so each replay writes them afresh; replay()
//   re-attaches them to the parameters, since an uncaptured step in between (a smaller last batch) replaces
//   them;
// - grads, with accumulation (update_epochs > 1, MMSA's MulT): captured with every grad present, so each replay
//   adds into the same buffers, as an uncaptured backward adds into existing grads; zero_grads() clears them in
//   place at the start of each accumulation group, and uncaptured steps in between add into them too;
// - memory: what the capture allocated stays the graph's (a private allocator pool), so nothing else is
//   ever given those addresses.
// The step must read nothing back and draw nothing else on the host: MS-Mix's selection and Mixup's pairs
// and ratios are host-side, so cuda_graph takes mix none. The batch's host-side fields (lengths, ids) are
// those of the captured batch: no backbone reads them.
#pragma once
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "data/loader.h"
#include "engine/cuda_runtime.h"
#include "engine/tensor.h"

namespace msmix {

class GraphStep {
 public:
  // The step's body on a batch: forward, loss, backward, clipping; returns the step's loss values [k].
  using Body = std::function<Tensor(const Batch& batch)>;

  // params: every parameter whose grad the step writes. accumulate: replays add into the grads (see above).
  explicit GraphStep(std::vector<Tensor> params, bool accumulate = false);

  bool captured() const { return graph_ != nullptr; }
  int64_t batch_size() const { return inputs_.size(); }
  int64_t replays() const { return replays_; }

  // Captures `body` on a copy of `batch` (the graph's inputs) and runs it once, so the grads are then those
  // of `batch`. When the body cannot be captured (it throws: a read back, a host-side draw), nothing is left
  // captured, the generator is as it was, and the error is passed on.
  Tensor capture(const Batch& batch, const Body& body);
  // Copies `batch` (the captured size) into the inputs, replays, re-attaches the grads; returns a copy of the
  // step's loss values.
  Tensor replay(const Batch& batch);
  // With accumulation, once captured: the grads the graph adds into, zeroed in place and attached to the
  // parameters (what zero_grad() does to an uncaptured step's grads).
  void zero_grads();

 private:
  std::vector<Tensor> params_;
  bool accumulate_;
  Batch inputs_;
  Tensor values_;                                // the captured step's output, rewritten by each replay
  std::vector<std::pair<Tensor, Tensor>> grads_;  // (parameter, the grad the graph writes)
  Tensor device_offset_;                         // 8 bytes: the Philox offset of the step being replayed
  uint64_t draws_ = 0;                           // Philox blocks the step takes from the default generator
  std::shared_ptr<cuda::CapturedGraph> graph_;
  int64_t replays_ = 0;
};

}  // namespace msmix
