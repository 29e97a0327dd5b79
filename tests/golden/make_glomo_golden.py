"""Golden fixtures for msmix's GLoMo (tests/models/test_glomo.cpp).

The PyTorch twin of tests/golden/glomo_twin.py (GLoMo from shared/spec/glomo.md with msmix's names, on text
features; the gates' noise passed in for the training-mode MoE fixture).
Tiny sizes: widths (6, 4, 5), 7 aligned steps, d 8, 2 heads, 1 encoder layer, fusion FFN 16, every dropout 0.
Audio sample 1 ends in two zero steps, so its last conv output is exactly 0 and gets no position.
Weights from make_almt_golden.py's formula (parameter order = named_parameters(), shared with C++), computed in
float64 from float32 weights and inputs. Two files in tests/golden/glomo/:
  glomo.json (eval: no gate noise): text, audio, vision; z.t, z.a, z.v (global), z.t_fine, ... (local);
    aux (the experts' loss); out; w (L = sum(out * w) + aux); grad.<input>; gsum./gsq.<name> for every
    parameter with a grad (all but the w_noise, used in training only) and grad.<name> in full for FULL_GRADS.
  moe.json (training, noise given): x [B, 24], noise [B, 3], out, loss, gates, w, grad.x, grad.<name>
    (L = sum(out * w) + loss).

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_glomo_golden.py
"""
import os

import torch

from fixture_io import fmt, grad_summaries, rounded, write_fixture
from glomo_twin import GLoMo, MoE
from make_almt_golden import formula_state

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "glomo")
B, L = 3, 7
DIMS = (6, 4, 5)
D, HEADS, LAYERS, SLOTS, EXPERTS, TOP_K, FUSION_LAYERS, FUSION_FF = 8, 2, 1, 3, 3, 2, 2, 16
MOE_WEIGHT = 0.01
FULL_GRADS = ("text_global.", "audio_conv.", "vision_encoder.layers.0.self_attn.", "moe_a.", "fusion.1.",
              "att_global.", "head.")


def main():
    torch.manual_seed(1111)
    model = GLoMo(DIMS, D, HEADS, LAYERS, SLOTS, EXPERTS, TOP_K, FUSION_LAYERS, FUSION_FF, moe_weight=MOE_WEIGHT)
    formula_state(model)  # float32 values, computed in float64
    model.double().eval()
    inputs = [rounded(torch.randn(B, L, n)).float().double() for n in DIMS]
    inputs[1][1, L - 2:] = 0  # audio sample 1: two zero steps at the end
    for x in inputs:
        x.requires_grad_()
    g, l, aux = model.encode(*inputs)
    y = model.fuse(g, l)
    w = rounded(torch.randn_like(y)).float().double()
    ((y * w).sum() + aux).backward()
    out = {"aux": fmt(aux.reshape(1)), "out": fmt(y), "w": fmt(w)}
    for key, x in zip(("text", "audio", "vision"), inputs):
        out[key] = fmt(x)
        out["grad." + key] = fmt(x.grad)
    for key, gv, lv in zip("tav", g, l):
        out["z." + key] = fmt(gv)
        out["z." + key + "_fine"] = fmt(lv)
    grad_summaries(out, model, lambda key: key.startswith(FULL_GRADS))
    write_fixture(OUT, "glomo.json", out)
    print(sum(p.numel() for p in model.parameters()), "parameters")

    torch.manual_seed(2222)
    moe = MoE(SLOTS * D, D, EXPERTS, TOP_K, MOE_WEIGHT)
    formula_state(moe)
    moe.double().train()
    x = rounded(torch.randn(5, SLOTS * D)).float().double().requires_grad_()
    noise = rounded(torch.randn(5, EXPERTS)).float().double()
    y, loss, gates = moe(x, noise)
    w = rounded(torch.randn_like(y)).float().double()
    ((y * w).sum() + loss).backward()
    out = {"x": fmt(x), "noise": fmt(noise), "out": fmt(y), "loss": fmt(loss.reshape(1)), "gates": fmt(gates),
           "w": fmt(w), "grad.x": fmt(x.grad)}
    for key, p in moe.named_parameters():
        out["grad." + key] = fmt(p.grad)
    write_fixture(OUT, "moe.json", out)


if __name__ == "__main__":
    main()
