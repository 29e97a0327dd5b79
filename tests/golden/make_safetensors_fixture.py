#!/usr/bin/python3
"""Writes tests/golden/checkpoint/fixture.safetensors for tests/engine/test_checkpoint.cpp.

    /usr/bin/python3 tests/golden/make_safetensors_fixture.py

It goes the way an MMSA user's weights go: a checkpoint dict {'state_dict': ..., 'epoch': 3} is torch.save'd
to a .pth, and scripts/pth_to_safetensors.py (run as a command) converts it. The state_dict holds
  net.fc.*, net.bn.*   a torch Linear(3, 2) + BatchNorm1d(2) with the values set below
                       (bn.num_batches_tracked stays int64 -> I64),
  dtypes.*             one tensor per dtype msmix converts (F64, F16, BF16, I64, I32, I16, I8, U8, BOOL), plus an
                       empty, a rank-0 and a non-contiguous (transposed) float32 tensor.
Every value is written below in closed form, and the C++ test states the same values independently.
"""
import collections
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "checkpoint", "fixture.safetensors")


def state_dict():
    net = torch.nn.Module()
    net.fc = torch.nn.Linear(3, 2)
    net.bn = torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        net.fc.weight.copy_((torch.arange(6.0) - 2.5).reshape(2, 3) * 0.5)  # -1.25 .. 1.25
        net.fc.bias.copy_(torch.tensor([0.25, -0.75]))
        net.bn.weight.copy_(torch.tensor([1.5, 2.0]))
        net.bn.bias.copy_(torch.tensor([-0.5, 0.125]))
        net.bn.running_mean.copy_(torch.tensor([0.1, -0.2]))
        net.bn.running_var.copy_(torch.tensor([0.9, 1.1]))
        net.bn.num_batches_tracked.fill_(3)
    state = collections.OrderedDict(("net." + k, v) for k, v in net.state_dict().items())
    assert state["net.bn.num_batches_tracked"].dtype == torch.int64

    inf, nan = float("inf"), float("nan")
    state["dtypes.f64"] = torch.tensor([0.1, 1.0 / 3.0, -1e300, 2.5], dtype=torch.float64)
    state["dtypes.f16"] = torch.tensor([1.0, -2.0, 0.5, 65504.0, 2.0**-24, 2.0**-14, inf, -inf, nan],
                                       dtype=torch.float16).reshape(3, 3)
    state["dtypes.bf16"] = torch.tensor([1.0, -3.5, 2.0**100, 1.0 / 128], dtype=torch.bfloat16)
    state["dtypes.i64"] = torch.tensor([-2**24, -1, 0, 7, 2**24], dtype=torch.int64)
    state["dtypes.i32"] = torch.tensor([-5, 100000], dtype=torch.int32)
    state["dtypes.i16"] = torch.tensor([-32768, 32767], dtype=torch.int16)
    state["dtypes.i8"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    state["dtypes.u8"] = torch.tensor([0, 1, 255], dtype=torch.uint8)
    state["dtypes.bool"] = torch.tensor([True, False, False, True])
    state["dtypes.empty"] = torch.zeros(0, 3)
    state["dtypes.scalar"] = torch.tensor(42.5)
    state["dtypes.transposed"] = torch.arange(6.0).reshape(2, 3).t()  # [[0, 3], [1, 4], [2, 5]]
    assert not state["dtypes.transposed"].is_contiguous()
    return state


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "fixture.pth")
        torch.save({"state_dict": state_dict(), "epoch": 3}, pth)
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "pth_to_safetensors.py"), pth, OUT], check=True)
    print(f"{OUT}: {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
