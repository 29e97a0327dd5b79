"""Golden fixtures for msmix's MISA (tests/models/test_misa.cpp), from the PyTorch twin of tests/golden/misa_twin.py.

Tiny sizes: text states 6 wide over 3 steps, audio 3 wide over 5 steps, vision 4 wide over 4 steps, batch 4,
hidden 8, 2 heads, feed-forward 16, loss weights (0.1, 0.3, 1.0), 5 moments; eval mode (no dropout).
Weights from make_almt_golden.py's formula (parameter order = named_parameters(), shared with C++), computed in
float64 from float32 weights and inputs. Files in tests/golden/misa/:
  features.json: text without a mask (mean over every step), audio and vision over their own lengths
    (audio [5, 2, 4, 1], vision [4, 4, 1, 3]);
  masked.json: a text mask with [3, 1, 2, 3] tokens, whose counts are also the audio and vision lengths (MMSA's
    use_bert rule);
  each: text, audio, vision (+ mask, lengths); z.t, z.a, z.v (the projections, what MS-Mix mixes); out; aux
    (the weighted regularisers) and diff, cmd, recon; w (L = sum(out * w) + aux); grad.<input>; gsum./gsq.<name>
    for every parameter with a grad (sp_discriminator and tlayer_norm have none) and grad.<name> in full for
    FULL_GRADS.
  losses.json: x1, x2 [5, 4]; diff = misa_diff_loss, cmd3 / cmd5 = the CMD with 3 / 5 moments; grad.x1.<loss>,
    grad.x2.<loss> of each.

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_misa_golden.py
"""
import os

import torch

from fixture_io import fmt, grad_summaries, rounded, write_fixture
from make_almt_golden import formula_state
from misa_twin import MISA, cmd, diff_loss

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "misa")
B = 4
DIMS = (6, 3, 4)    # text, audio, vision widths
STEPS = (3, 5, 4)   # text, audio, vision steps
HIDDEN, HEADS, FF = 8, 2, 16
FULL_GRADS = ("arnn1.", "vrnn2.weight_hh_l0_reverse", "project_t.", "private_a.", "shared.", "recon_v.",
              "transformer_encoder.layers.0.self_attn.", "fusion.fusion_layer_3.")


def build():
    return MISA(DIMS, hidden=HIDDEN, heads=HEADS, ff=FF, dropout=0.2, transformer_dropout=0.1)


def case(name, model, audio_lengths, vision_lengths, mask=None):
    model.zero_grad()
    inputs = [rounded(torch.randn(B, t, n)).float().double().requires_grad_() for t, n in zip(STEPS, DIMS)]
    z = model.encode(*inputs, torch.tensor(audio_lengths), torch.tensor(vision_lengths), text_mask=mask)
    y, aux, (diff, sim, recon) = model.fuse(*z)
    w = rounded(torch.randn_like(y)).float().double()
    ((y * w).sum() + aux).backward()
    out = {"audio_lengths": fmt(torch.tensor(audio_lengths, dtype=torch.float64)),
           "vision_lengths": fmt(torch.tensor(vision_lengths, dtype=torch.float64))}
    if mask is not None:
        out["mask"] = fmt(mask)
    for key, x in zip(("text", "audio", "vision"), inputs):
        out[key] = fmt(x)
        out["grad." + key] = fmt(x.grad)
    for key, t in zip(("z.t", "z.a", "z.v"), z):
        out[key] = fmt(t)
    out.update({"out": fmt(y), "w": fmt(w), "aux": fmt(aux.reshape(1)), "diff": fmt(diff.reshape(1)),
                "cmd": fmt(sim.reshape(1)), "recon": fmt(recon.reshape(1))})
    grad_summaries(out, model, lambda key: key.startswith(FULL_GRADS))
    write_fixture(OUT, name, out)


def losses():
    x1 = rounded(torch.randn(5, 4)).float().double().requires_grad_()
    x2 = rounded(torch.randn(5, 4) * 0.5 + 0.3).float().double().requires_grad_()
    out = {"x1": fmt(x1), "x2": fmt(x2)}
    for key, fn in (("diff", lambda: diff_loss(x1, x2)), ("cmd3", lambda: cmd(x1, x2, 3)),
                    ("cmd5", lambda: cmd(x1, x2, 5))):
        x1.grad, x2.grad = None, None
        value = fn()
        value.backward()
        out[key] = fmt(value.reshape(1))
        out["grad.x1." + key] = fmt(x1.grad)
        out["grad.x2." + key] = fmt(x2.grad)
    write_fixture(OUT, "losses.json", out)


def main():
    torch.manual_seed(1111)
    model = build()
    formula_state(model)  # float32 values, then computed in float64
    model.double().eval()
    case("features.json", model, [5, 2, 4, 1], [4, 4, 1, 3])
    counts = [3, 1, 2, 3]
    mask = torch.tensor([[1.0 if j < n else 0.0 for j in range(STEPS[0])] for n in counts], dtype=torch.float64)
    case("masked.json", model, counts, counts, mask=mask)
    losses()
    print(sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
