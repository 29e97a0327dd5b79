// A training step captured once as a CUDA graph and replayed for every later batch of the same size (the run
// key cuda_graph): the forward, the loss, the backward and the clipping become one launch instead of a few
// hundred, which is what bounds MMSA's small backbones on a GPU. The optimizer step stays outside (one launch).
//
//   GraphStep graph(model.parameters());
//   Tensor draws = mixer.draw(B, mix_gen, device);     // the step's host-side draws, made before it
//   std::vector<Tensor> out = graph.captured() ? graph.replay(batch, draws) : graph.capture(batch, draws, body);
//   optimizer.step();  // the grads are those of `batch`
//
// What makes a replay equal an uncaptured step (tests/cuda/test_cuda_graph.cpp):
// - inputs: the graph reads the batch tensors and the draws it was captured with; replay() copies each batch
//   and each step's draws (Mixup's pairs and ratio, MS-Mix's selection draws and Beta draws: made on the host
//   before the step, from the mixing generator) into them;
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
// The step must read nothing back and draw nothing else on the host (MS-Mix selects its pairs on the device,
// ops/pair_selection.h). The batch's host-side fields (lengths, ids) are those of the captured batch: only MISA
// reads lengths, and on data that has them it refuses to be captured (so its steps run uncaptured).
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
  // The step's body on a batch and its draws (undefined without mixing): forward, loss, backward, clipping;
  // returns the step's outputs (its loss values, its mixing statistics), which each replay rewrites.
  using Body = std::function<std::vector<Tensor>(const Batch& batch, const Tensor& draws)>;

  // params: every parameter whose grad the step writes. accumulate: replays add into the grads (see above).
  explicit GraphStep(std::vector<Tensor> params, bool accumulate = false);

  bool captured() const { return graph_ != nullptr; }
  int64_t batch_size() const { return inputs_.size(); }
  int64_t replays() const { return replays_; }

  // Captures `body` on copies of `batch` and `draws` (the graph's inputs) and runs it once, so the grads are
  // then those of `batch`. When the body cannot be captured (it throws: a read back, a host-side draw),
  // nothing is left captured, the generator is as it was, and the error is passed on.
  std::vector<Tensor> capture(const Batch& batch, const Tensor& draws, const Body& body);
  // Copies `batch` (the captured size) and `draws` into the inputs, replays, re-attaches the grads; returns
  // copies of the step's outputs.
  std::vector<Tensor> replay(const Batch& batch, const Tensor& draws);
  // With accumulation, once captured: the grads the graph adds into, zeroed in place and attached to the
  // parameters (what zero_grad() does to an uncaptured step's grads).
  void zero_grads();

 private:
  std::vector<Tensor> params_;
  bool accumulate_;
  Batch inputs_;
  Tensor draws_in_;                              // the draws input (undefined without mixing)
  std::vector<Tensor> outputs_;                  // the captured step's outputs, rewritten by each replay
  std::vector<std::pair<Tensor, Tensor>> grads_;  // (parameter, the grad the graph writes)
  Tensor device_offset_;                         // 8 bytes: the Philox offset of the step being replayed
  uint64_t draws_ = 0;                           // Philox blocks the step takes from the default generator
  std::shared_ptr<cuda::CapturedGraph> graph_;
  int64_t replays_ = 0;
};

}  // namespace msmix
