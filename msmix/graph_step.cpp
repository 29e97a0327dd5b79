#include "msmix/graph_step.h"

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/random.h"

namespace msmix {

namespace {

// The batch's tensors, in one fixed order (the graph's inputs); B is Batch or const Batch.
template <class B>
auto tensors_of(B& b) {
  return std::vector{&b.text, &b.text_bert, &b.audio, &b.vision, &b.labels, &b.labels_t, &b.labels_a, &b.labels_v};
}

}  // namespace

GraphStep::GraphStep(std::vector<Tensor> params, bool accumulate)
    : params_(std::move(params)), accumulate_(accumulate) {}

std::vector<Tensor> GraphStep::capture(const Batch& batch, const Tensor& draws, const Body& body) {
  MSMIX_CHECK(!captured(), "GraphStep: already captured");
  MSMIX_CHECK(batch.labels.defined() && batch.labels.is_cuda(), "GraphStep: a CUDA graph needs the batch on the GPU");
  {
    NoGradGuard no_grad;
    inputs_ = batch;  // host-side fields as they are; the tensors become the graph's own copies
    for (Tensor* t : tensors_of(inputs_))
      if (t->defined()) *t = t->detach().clone();
    draws_in_ = draws.defined() ? draws.detach().clone() : Tensor();
    device_offset_ = Tensor::zeros({2}, batch.labels.device());  // 8 bytes
    // Without accumulation the captured backward writes each grad (none present); with it, adds to each.
    for (Tensor& p : params_) {
      if (!accumulate_) p.zero_grad();
      else if (!p.grad().defined()) p.set_grad(Tensor::zeros(p.shape(), p.device()));
    }
  }

  Generator& gen = default_generator();
  const uint64_t start = gen.offset;
  graph_philox() = {reinterpret_cast<const uint64_t*>(device_offset_.data()), start};
  cuda::begin_capture();
  try {
    outputs_ = body(inputs_, draws_in_);
    graph_ = cuda::end_capture();
  } catch (...) {
    cuda::abort_capture();
    graph_philox() = {};
    gen.offset = start;
    outputs_.clear();
    graph_.reset();
    if (!accumulate_)  // with accumulation the grads are as they were: nothing captured ran
      for (Tensor& p : params_) p.zero_grad();
    throw;
  }
  graph_philox() = {};
  draws_ = gen.offset - start;
  gen.offset = start;  // nothing ran yet: the replay below takes the step's draws
  for (Tensor& p : params_)
    if (p.grad().defined()) grads_.emplace_back(p, p.grad());
  return replay(batch, draws);
}

std::vector<Tensor> GraphStep::replay(const Batch& batch, const Tensor& draws) {
  MSMIX_CHECK(captured(), "GraphStep: nothing captured");
  MSMIX_CHECK(batch.size() == inputs_.size(), "GraphStep: a batch of {} for a step captured with {}", batch.size(),
              inputs_.size());
  const std::vector<Tensor*> to = tensors_of(inputs_);
  const std::vector<const Tensor*> from = tensors_of(batch);
  for (size_t k = 0; k < to.size(); ++k) {
    MSMIX_CHECK(to[k]->defined() == from[k]->defined(), "GraphStep: the batch's tensors differ from the captured ones");
    if (to[k]->defined()) to[k]->copy_(*from[k]);  // shapes checked by copy_
  }
  MSMIX_CHECK(draws.defined() == draws_in_.defined(), "GraphStep: draws {} for a step captured {} them",
              draws.defined() ? "given" : "missing", draws_in_.defined() ? "with" : "without");
  if (draws.defined()) draws_in_.copy_(draws);
  Generator& gen = default_generator();
  const uint64_t offset = gen.offset;
  cuda::memcpy_host_to_device(device_offset_.data(), &offset, sizeof(offset));  // queued before the replay
  cuda::replay(*graph_);
  gen.offset += draws_;
  for (auto& [p, g] : grads_) p.set_grad(g);
  ++replays_;
  NoGradGuard no_grad;
  std::vector<Tensor> out;
  for (const Tensor& t : outputs_) out.push_back(t.defined() ? t.clone() : Tensor());
  return out;
}

void GraphStep::zero_grads() {
  MSMIX_CHECK(captured() && accumulate_, "GraphStep::zero_grads: only for a captured step that accumulates");
  NoGradGuard no_grad;
  for (auto& [p, g] : grads_) {
    g.fill_(0.0f);
    p.set_grad(g);
  }
}

}  // namespace msmix
