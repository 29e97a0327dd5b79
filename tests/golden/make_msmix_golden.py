"""Golden fixtures for MS-Mix (tests/msmix/test_msmix.cpp), from PyTorch 1.13.

Each case writes tests/golden/msmix/<case>.json in the shared fixture layout (see tests/golden/golden.h)
    {"name": {"shape": [...], "data": [...]}}

alignment_<s>.json: the Sentiment Alignment Loss (shared/spec/msmix.md section 3) on a small batch
    labels          [B]
    intensity.<m>   [B] for m in t, a, v
    loss            []   1000 * sum_m F.kl_div(log(p_m), q, reduction='batchmean'),
                         q = softmax(|labels| / s) + 1e-8, p_m = softmax(|intensity_m| / s) + 1e-8
    grad.<m>        [B]  d loss / d intensity_m
    s               []   the label scale (3: MOSI/MOSEI, 1: SIMS)

predictor_<case>.json: the intensity predictor (section 2), PyTorch modules named as the released code
    x               the input, [B, d] or [B, T, d]
    state.<name>    the state dict (random parameters, LayerNorm affine included)
    w               fixed random weights: L = sum(out * w)
    out             [B] intensities
    grad.x, grad.<name>  dL/dx and dL/d(parameter)
    heads           [] the head count

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_msmix_golden.py
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "msmix")


def put(out, key, t):
    t = torch.as_tensor(t)
    out[key] = {"shape": list(t.shape), "data": t.detach().double().reshape(-1).tolist()}


def write(name, out):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(out, f)


def away_from_zero(n, bound, low=0.1):
    """n values in (-bound, -low) U (low, bound): |x| is smooth there."""
    mag = torch.rand(n) * (bound - low) + low
    sign = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    return mag * sign


def alignment_case(name, batch, s):
    out = {}
    labels = away_from_zero(batch, s)
    intensities = {m: away_from_zero(batch, 3.0).requires_grad_() for m in "tav"}
    q = F.softmax(labels.abs() / s, dim=0) + 1e-8
    loss = 0
    for m in "tav":
        p = F.softmax(intensities[m].abs() / s, dim=0) + 1e-8
        loss = loss + F.kl_div(p.log(), q, reduction="batchmean")
    loss = 1000 * loss
    loss.backward()
    put(out, "labels", labels)
    for m in "tav":
        put(out, "intensity." + m, intensities[m])
        put(out, "grad." + m, intensities[m].grad)
    put(out, "loss", loss)
    put(out, "s", torch.tensor(float(s)))
    write(name, out)


class Predictor(nn.Module):
    """The spec's predictor: attention over each sample's own tokens, LN(x + attn), mean, Linear, 3 tanh."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.dimension_reducer = nn.Linear(d, 1024) if d > 2000 else None
        reduced = 1024 if d > 2000 else d
        self.padded = -(-reduced // heads) * heads
        self.pad = self.padded - reduced
        self.qkv_proj = nn.Linear(self.padded, 3 * self.padded)
        self.output_proj = nn.Linear(self.padded, 1)
        self.norm1 = nn.LayerNorm(self.padded)

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(1)  # one token
        if self.dimension_reducer is not None:
            x = self.dimension_reducer(x)
        x = F.pad(x, (0, self.pad))
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = (part.reshape(b, t, self.heads, hd).transpose(1, 2) for part in self.qkv_proj(x).chunk(3, dim=-1))
        weights = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1)
        attn = (weights @ v).transpose(1, 2).reshape(b, t, d)
        h = self.norm1(x + attn).mean(dim=1)
        return 3 * torch.tanh(self.output_proj(h)).squeeze(-1)


def predictor_case(name, shape, heads=4):
    out = {}
    module = Predictor(shape[-1], heads)
    with torch.no_grad():  # random LayerNorm affine too, so every term is exercised
        module.norm1.weight.copy_(torch.randn_like(module.norm1.weight) * 0.5 + 1)
        module.norm1.bias.copy_(torch.randn_like(module.norm1.bias) * 0.5)
    x = torch.randn(*shape).requires_grad_()
    put(out, "x", x)
    for key, t in module.state_dict().items():
        put(out, "state." + key, t)
    y = module(x)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    put(out, "w", w)
    put(out, "out", y)
    put(out, "grad.x", x.grad)
    for key, p in module.named_parameters():
        put(out, "grad." + key, p.grad)
    put(out, "heads", torch.tensor(float(heads)))
    write(name, out)


def main():
    torch.manual_seed(2510)
    alignment_case("alignment_s3", batch=6, s=3.0)
    alignment_case("alignment_s1", batch=5, s=1.0)
    predictor_case("predictor_vector", (5, 6))        # d = 6: padded to 8
    predictor_case("predictor_sequence", (3, 4, 7))   # d = 7: padded to 8, attention over T = 4
    predictor_case("predictor_sequence_2heads", (2, 5, 10), heads=2)  # no padding, other head count


if __name__ == "__main__":
    main()
