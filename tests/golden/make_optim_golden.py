"""Golden fixtures for msmix's optimizers (tests/msmix/test_optimizer.cpp), from PyTorch 1.13.

Each case runs five optimizer steps on four parameters in two parameter groups, with fixed grads per
step, and writes tests/golden/optim/<case>.json in the shared fixture layout (read by tests/golden/golden.h)
    {"name": {"shape": [...], "data": [...]}}
with names
    init.p<k>          the parameter before the first step
    step<s>.grad.p<k>  the grad fed at step s (absent: the grad is None at that step, the param is skipped)
    step<s>.param.p<k> the parameter after step s
The hyperparameters below are repeated in the C++ test: keep both in sync.

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_optim_golden.py
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim")
STEPS = 5
SHAPES = [[3, 4], [5], [2, 3], [4]]
# p2's grads are tiny (1e-7) so Adam's eps matters; p3 has no grad at step 3 (skipped, its step count
# and momentum buffer stay as they are).
GRAD_SCALE = [1.0, 0.5, 1e-7, 2.0]
MISSING = {(3, 3)}  # (step, param)


def make_case(name, make_optimizer, seed):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in SHAPES]
    out = {}

    def put(key, t):
        out[key] = {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}

    for k, p in enumerate(params):
        put(f"init.p{k}", p)
    opt = make_optimizer(params)
    for step in range(1, STEPS + 1):
        for k, p in enumerate(params):
            if (step, k) in MISSING:
                p.grad = None
                continue
            p.grad = torch.randn(SHAPES[k], generator=gen) * GRAD_SCALE[k]
            put(f"step{step}.grad.p{k}", p.grad)
        opt.step()
        for k, p in enumerate(params):
            put(f"step{step}.param.p{k}", p)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(out, f)
    print("wrote", name)


def groups(params, g0, g1):
    return [dict(params=params[:2], **g0), dict(params=params[2:], **g1)]


def main():
    os.makedirs(OUT, exist_ok=True)
    make_case("adam", lambda p: torch.optim.Adam(
        groups(p, dict(lr=0.05, weight_decay=0.1), dict(lr=0.01, weight_decay=0.0))), seed=1)
    make_case("adamw", lambda p: torch.optim.AdamW(
        groups(p, dict(lr=0.05, weight_decay=0.2), dict(lr=0.02)), betas=(0.8, 0.99), eps=1e-6), seed=2)
    make_case("sgd_nesterov", lambda p: torch.optim.SGD(
        groups(p, dict(lr=0.1, weight_decay=0.01), dict(lr=0.05)), lr=0.1, momentum=0.9, nesterov=True), seed=3)
    make_case("sgd_dampening", lambda p: torch.optim.SGD(
        groups(p, dict(lr=0.1), dict(lr=0.03, weight_decay=0.05)), lr=0.1, momentum=0.8, dampening=0.3), seed=4)


if __name__ == "__main__":
    main()
