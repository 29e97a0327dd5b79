#include "engine/autograd.h"

#include <unordered_set>

#include "engine/cuda_runtime.h"
#include "engine/error.h"
#include "engine/profile.h"

namespace msmix {

static thread_local bool grad_mode = true;

bool grad_mode_enabled() { return grad_mode; }
NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!grad_mode) return false;
  for (const Tensor* t : inputs)
    if (t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

void record(Tensor& output, const char* op, const std::vector<Tensor>& inputs, BackwardFn fn) {
  auto node = std::make_shared<Node>();
  node->op = op;
  for (const Tensor& t : inputs) {
    bool needs = t.requires_grad();
    node->inputs.push_back(needs ? t.impl_ptr() : nullptr);
    node->needs.push_back(needs);
  }
  node->backward = std::move(fn);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
}

Node::~Node() {
  // Destroying a node drops its inputs, which may drop their nodes, and so on: a chain of 10^5 ops would
  // recurse that deep. Instead, detach the nodes we are the last owner of and destroy them in a loop.
  std::vector<std::shared_ptr<Node>> pending;
  auto steal = [&pending](std::vector<std::shared_ptr<TensorImpl>>& ins) {
    for (auto& impl : ins)
      if (impl && impl.use_count() == 1 && impl->grad_fn && impl->grad_fn.use_count() == 1)
        pending.push_back(std::move(impl->grad_fn));
    ins.clear();
  };
  steal(inputs);
  while (!pending.empty()) {
    std::shared_ptr<Node> node = std::move(pending.back());
    pending.pop_back();
    steal(node->inputs);
  }  // each node dies here with no inputs left
}

static void add_into(Tensor& dst, const Tensor& src) {
  if (dst.is_cuda())
    cuda::add_inplace(dst.data(), src.data(), size_t(dst.numel()));
  else {
    float* d = dst.data();
    const float* s = src.data();
    int64_t n = dst.numel();
#pragma omp parallel for simd if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) d[i] += s[i];
  }
}

// Adds `g` into impl->grad. The first contribution is kept as is when nobody else holds it; a grad still
// shared with another tensor is copied first, so in-place updates (+=, clipping) never reach a neighbour.
static void accumulate(TensorImpl* impl, Tensor g, const char* op) {
  const Shape& want = impl->shape;
  MSMIX_CHECK(g.shape() == want && g.device() == impl->storage->device,
              "backward of {}: produced grad {} for an input of shape {} on {}", op, describe(g), shape_str(want),
              impl->storage->device.str());
  if (!impl->grad.defined()) {
    bool exclusive = g.impl_ptr().use_count() == 1 && g.impl()->storage.use_count() == 1;
    impl->grad = exclusive ? std::move(g) : g.detach().clone();
  } else {
    add_into(impl->grad, g);
  }
}

// Post-order DFS over grad_fn edges with an explicit stack; the reverse is a topological order.
static std::vector<std::shared_ptr<TensorImpl>> topological_order(const std::shared_ptr<TensorImpl>& root) {
  std::vector<std::shared_ptr<TensorImpl>> order;
  std::unordered_set<TensorImpl*> visited;
  std::vector<std::pair<std::shared_ptr<TensorImpl>, size_t>> stack;
  stack.push_back({root, 0});
  visited.insert(root.get());
  while (!stack.empty()) {
    auto& [impl, next] = stack.back();
    Node* node = impl->grad_fn.get();
    if (node && next < node->inputs.size()) {
      const auto& child = node->inputs[next++];
      if (child && visited.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(impl);
      stack.pop_back();
    }
  }
  return order;
}

void run_backward(const Tensor& root, const Tensor& grad_output) {
  MSMIX_CHECK(root.defined() && grad_output.defined(), "backward: undefined tensor");
  MSMIX_CHECK(root.requires_grad(), "backward: tensor {} does not require grad and has no grad_fn",
              describe(root));
  MSMIX_CHECK(grad_output.shape() == root.shape() && grad_output.device() == root.device(),
              "backward: grad {} does not match output {}", describe(grad_output), describe(root));
  std::vector<std::shared_ptr<TensorImpl>> order = topological_order(root.impl_ptr());
  if (root.impl()->grad_fn && !root.impl()->grad.defined()) {
    // A non-leaf root's grad is only read (by its node's backward) and then dropped, so the caller's tensor is
    // used as is: no copy. A backward that passes it through to a leaf is copied there by accumulate(), since
    // the caller still holds it.
    root.impl()->grad = grad_output.detach();
  } else {
    accumulate(root.impl(), grad_output.detach(), "backward");
  }

  NoGradGuard no_grad;  // backward functions compute with ops; they must not record
  ProfileRange backward_range("backward");
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* impl = it->get();
    std::shared_ptr<Node> node = std::move(impl->grad_fn);  // frees the node after this iteration
    if (!node) continue;  // a leaf: its grad stays
    Tensor gout = std::move(impl->grad);  // non-leaf grads are not kept
    if (!gout.defined()) continue;        // no path from the root reaches it
    ProfileRange node_range(node->op);    // the ops it runs nest inside
    Grads grads = node->backward(gout, node->needs);
    gout = Tensor();
    MSMIX_CHECK(grads.size() == node->inputs.size(), "backward of {}: {} grads for {} inputs", node->op,
                grads.size(), node->inputs.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!node->inputs[i] || !grads[i].defined()) continue;
      accumulate(node->inputs[i].get(), std::move(grads[i]), node->op);
    }
  }
}

}  // namespace msmix
