"""Golden fixtures for msmix's basic modules (tests/models/test_modules.cpp), from PyTorch 1.13.

Each case writes tests/golden/basic/<case>.json in the shared fixture layout (see tests/golden/golden.h)
    {"name": {"shape": [...], "data": [...]}}
with names
    x                  the input (kl_div: input and target)
    state.<name>       the module's state dict before the forward (parameters and buffers, PyTorch names)
    w                  fixed random weights: the loss is L = sum(out * w)
    out                the forward output
    grad.<name>        dL/d(input) and dL/d(parameter) for x and every parameter
    state_after.<name> buffers after the forward (BatchNorm1d in training: the updated running stats)
Parameters and running stats are random (not the module defaults) so that every term is exercised.

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_basic_golden.py
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "basic")


def put(out, key, t):
    out[key] = {"shape": list(t.shape), "data": t.detach().double().reshape(-1).tolist()}


def randomize(module):
    """Random parameters and running stats (running_var positive)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name == "weight" else 0.0))
        for name, b in module.named_buffers():
            if name == "running_mean":
                b.copy_(torch.randn_like(b) * 0.5)
            elif name == "running_var":
                b.copy_(torch.rand_like(b) + 0.5)
            elif name == "num_batches_tracked":
                b.fill_(3)


def module_case(name, module, x, train=True):
    """Forward, L = sum(out * w), backward; writes the case. Integer x (ids) is saved as float, no grad."""
    out = {}
    module.train(train)
    if x.is_floating_point():
        x.requires_grad_()
    put(out, "x", x)
    for key, t in module.state_dict().items():
        put(out, "state." + key, t)
    y = module(x)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    put(out, "w", w)
    put(out, "out", y)
    if x.requires_grad:
        put(out, "grad.x", x.grad)
    for key, p in module.named_parameters():
        put(out, "grad." + key, p.grad)
    for key, b in module.named_buffers():
        put(out, "state_after." + key, b)
    write(name, out)


def kl_div_case(name, zero_target):
    out = {}
    inp = F.log_softmax(torch.randn(4, 5), dim=-1).requires_grad_()
    target = F.softmax(torch.randn(4, 5), dim=-1)
    if zero_target:  # zero targets contribute 0; their target grad is not defined, so none is asked for
        target[1, 2] = 0
        target[3, 0] = 0
    else:
        target.requires_grad_()
    put(out, "input", inp)
    put(out, "target", target)
    y = F.kl_div(inp, target, reduction="batchmean")
    w = torch.randn_like(y)
    (y * w).sum().backward()
    put(out, "w", w)
    put(out, "out", y)
    put(out, "grad.input", inp.grad)
    if target.requires_grad:
        put(out, "grad.target", target.grad)
    write(name, out)


def write(name, out):
    path = os.path.join(OUT, name + ".json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path, os.path.getsize(path), "bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240601)

    m = torch.nn.Linear(5, 4)
    module_case("linear", m, torch.randn(2, 3, 5))
    m = torch.nn.Linear(6, 3, bias=False)
    module_case("linear_nobias", m, torch.randn(4, 6))

    m = torch.nn.LayerNorm(6)
    randomize(m)
    module_case("layer_norm", m, torch.randn(2, 3, 6) * 2 + 1)

    for shape, tag in (((6, 4), "2d"), ((3, 4, 5), "3d")):
        for train in (True, False):
            m = torch.nn.BatchNorm1d(4)
            randomize(m)
            module_case(f"batch_norm_{tag}_{'train' if train else 'eval'}", m, torch.randn(*shape) * 1.5 + 0.5, train)

    m = torch.nn.Conv1d(3, 4, 3)
    module_case("conv1d_pad0", m, torch.randn(2, 3, 7))
    m = torch.nn.Conv1d(3, 4, 3, padding=2)
    module_case("conv1d_pad2", m, torch.randn(2, 3, 7))

    # padding_idx 0: row 0 gets no grad, even though id 0 appears twice.
    m = torch.nn.Embedding(6, 3, padding_idx=0)
    with torch.no_grad():
        m.weight[0] = torch.randn(3)  # a non-zero padding row: its value must still be looked up
    module_case("embedding_pad0", m, torch.tensor([[1, 0, 5], [0, 3, 1]]))

    kl_div_case("kl_div", zero_target=False)
    kl_div_case("kl_div_zero_target", zero_target=True)


if __name__ == "__main__":
    main()
