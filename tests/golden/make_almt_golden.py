"""Golden fixture for msmix's ALMT (tests/models/test_almt.cpp).

The PyTorch twin of tests/golden/almt_twin.py (ALMT from shared/spec/almt.md with MMSA's names, on text
features; the embeddings compute every position and then keep the tokens, so the C++ side's cut of the last
layer's queries is checked too).
Sizes are tiny: input widths (6, 4, 5), positional tables for (5, 7, 3) steps, inputs of (4, 7, 2) steps (text and
vision shorter than their tables), d 8, 2 tokens, 2 heads everywhere, embedding depths (1, 2, 1) (audio's two
layers exercise the cut of the last layer's queries), AHL_depth 3, fusion depth 2, hidden widths 8.
The state is not stored but computed on both sides: parameter number p (named_parameters() order, which the C++
model must share) gets element i = offset + amplitude * sin(1 + 0.731 i + 1.913 p + 0.05 ((i * i) mod 997)), in
double, rounded to float32, with the amplitude of a default init (see amplitude() and formula_state()).
Written to tests/golden/almt/almt.json (layout of tests/golden/golden.h):
    text, audio, vision       inputs [B, T, D]
    z.t, z.a, z.v             h_l, h_a, h_v [B, tokens, d] (what MS-Mix mixes)
    out                       the prediction [B, 1]
    w                         fixed random weights: the loss is L = sum(out * w)
    grad.<input>              dL/d(text, audio, vision)
    grad.<name>               dL/d(parameter) in full for the parameters matching FULL_GRADS
    gsum.<name>, gsq.<name>   sum and sum of squares of dL/d(parameter), for every parameter
The weights and inputs are float32 values, but the twin computes in float64, so the fixture holds the exact
answer to the float32 question and the C++ side's float32 rounding is all the test allows for. The grads of the
keys' LayerNorm biases (norm_k.bias) are exactly 0 (softmax ignores a shift shared by a row's scores): the test
checks that ours are rounding noise.
Numbers are written with 6 significant digits; the test compares at rtol 1e-4.

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_almt_golden.py
"""
import json
import math
import os

import torch

from almt_twin import ALMT
from fixture_io import fmt, grad_summaries, rounded, write_fixture  # noqa: F401 (re-exported)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "almt")

B = 3
DIMS = (6, 4, 5)          # text, audio, vision input widths
FRAMES = (5, 7, 3)        # feature_length: the positional tables' lengths
LENGTHS = (4, 7, 2)       # the inputs' lengths
D, TOKENS, HEADS, HIDDEN = 8, 2, 2, 8
EMBED_DEPTH = (1, 2, 1)
AHL_DEPTH, FUSION_DEPTH = 3, 2


def build():
    return ALMT(DIMS, FRAMES, d=D, tokens=TOKENS, heads=HEADS, hidden=HIDDEN, embed_depth=EMBED_DEPTH,
                ahl_depth=AHL_DEPTH, fusion_depth=FUSION_DEPTH)


FULL_GRADS = ("h_hyper", "embedding_a.0.", "embedding_a.1.encoder.layers.1.0.", "embedding_v.1.pos_embedding",
              "l_encoder.pos_embedding", "h_hyper_layer.layers.1.", "fusion_layer.extra_token",
              "fusion_layer.CrossTransformerEncoder.layers.1.1.", "regression_head.")


def amplitude(name, t):
    """Scaled like a default init, so no LayerNorm or softmax saturates: 1 / sqrt(last dim) for tensors of rank
    2 or more, 0.2 for rank-1 ones, around 1 for LayerNorm weights (rank-1 `*.weight`)."""
    if t.dim() >= 2:
        return 1.0 / math.sqrt(t.shape[-1]), 0.0
    return 0.2, 1.0 if name.endswith(".weight") else 0.0


def formula_state(model):
    """Parameter p, element i: offset + amplitude sin(1 + 0.731 i + 1.913 p + 0.05 ((i * i) mod 997)) (the C++
    test computes the same). The quadratic term gives each row of a matrix its own frequency: without it every
    weight matrix would be rank 2 (phase-shifted copies of one sinusoid) and the attention scores coherent sums."""
    with torch.no_grad():
        for p, (name, t) in enumerate(model.named_parameters()):
            amp, offset = amplitude(name, t)
            values = [offset + amp * math.sin(1.0 + 0.731 * i + 1.913 * p + 0.05 * ((i * i) % 997))
                      for i in range(t.numel())]
            t.copy_(torch.tensor(values, dtype=torch.float32).reshape(t.shape))


def main():
    torch.manual_seed(1111)
    model = build()
    formula_state(model)  # float32 values, then computed in float64 (see the docstring)
    model.double()
    inputs = [rounded(torch.randn(B, t, n)).float().double().requires_grad_() for t, n in zip(LENGTHS, DIMS)]
    z = model.encode(*inputs)
    y = model.fuse(*z)
    w = rounded(torch.randn_like(y)).float().double()
    (y * w).sum().backward()
    out = {}
    for key, x in zip(("text", "audio", "vision"), inputs):
        out[key] = fmt(x)
        out["grad." + key] = fmt(x.grad)
    for key, t in zip(("z.t", "z.a", "z.v"), z):
        out[key] = fmt(t)
    out.update({"out": fmt(y), "w": fmt(w)})
    grad_summaries(out, model, lambda key: key.startswith(FULL_GRADS))
    write_fixture(OUT, "almt.json", out)
    print(sum(p.numel() for p in model.parameters()), "parameters")

if __name__ == "__main__":
    main()
