"""Golden fixtures for msmix's GLoMo (tests/models/test_glomo.cpp).

A PyTorch twin of GLoMo as shared/spec/glomo.md describes it, written here from that description with msmix's
module names (models/glomo.h), on text FEATURES (use_bert false: the features stand for BERT's last hidden state
H12 and the local branch convolves them alone):
  - text: g_t = text_global(x[:, 0]); local = adaptive max pool to 3 slots of text_conv (k 3, pad 1, no bias);
  - audio / vision: *_conv, then MulT's encoder (tests/golden/make_mult_golden.py's layers) with sqrt(d) scaling
    and fairseq's sinusoidal positions (row t + 1 where the conv output's first channel is non-zero), a final
    LayerNorm; global = max over time, local = adaptive max pool to 3 slots;
  - per modality the noisy top-2 mixture of 3 experts on the flattened local [B, 3d] (the gate's noise passed
    in, so both sides use the same); out = log(sum_i gate_i exp(E_i)); loss = 0.01 (cv^2(importance) + cv^2(load));
  - fusion: [g_t, l_t, g_a, l_a, g_v, l_v] through torch.nn.TransformerEncoderLayer x 2 (post-norm, ReLU);
    attention pools, global_local, modality_*, head.
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
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture_io import fmt, grad_summaries, rounded, write_fixture
from make_almt_golden import formula_state
from make_mult_golden import EncoderLayer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "glomo")
B, L = 3, 7
DIMS = (6, 4, 5)
D, HEADS, LAYERS, SLOTS, EXPERTS, TOP_K, FUSION_LAYERS, FUSION_FF = 8, 2, 1, 3, 3, 2, 2, 16
MOE_WEIGHT = 0.01
FULL_GRADS = ("text_global.", "audio_conv.", "vision_encoder.layers.0.self_attn.", "moe_a.", "fusion.1.",
              "att_global.", "head.")


def sinusoidal_positions(x):
    """fairseq's SinusoidalPositionalEmbedding (padding index 0) as MulT uses it: step t gets row t + 1 where
    x[:, t, 0] != 0."""
    b, n, e = x.shape
    half = e // 2
    freq = torch.exp(torch.arange(half, dtype=x.dtype) * -(math.log(10000) / (half - 1)))
    angle = torch.arange(1, n + 1, dtype=x.dtype)[:, None] * freq[None, :]
    table = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)
    if e % 2:
        table = torch.cat([table, torch.zeros(n, 1, dtype=x.dtype)], dim=1)
    return (x[:, :, :1] != 0).to(x.dtype) * table[None]


class Encoder(nn.Module):
    """MulT's encoder with positions: x = sqrt(d) u + PE(u), pre-norm layers, final LayerNorm (self-attention)."""

    def __init__(self, dim, heads, layers):
        super().__init__()
        self.scale = math.sqrt(dim)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, 0.0, 0.0, 0.0) for _ in range(layers)])
        self.register_buffer("version", torch.tensor([2.0]))
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, u):
        x = self.scale * u + sinusoidal_positions(u)
        for layer in self.layers:
            x = layer(x, None, None, None)
        return self.layer_norm(x)


class Expert(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_in, n_out), nn.Linear(n_out, n_out)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def cv_squared(x):
    return x.var() / (x.mean() ** 2 + 1e-10) if x.numel() > 1 else torch.zeros((), dtype=x.dtype)


class MoE(nn.Module):
    """Noisy top-k gating (Shazeer et al. 2017), as GLoMo's code uses it; noise given in training."""

    def __init__(self, n_in, n_out, experts, k):
        super().__init__()
        self.k = k
        self.w_gate = nn.Parameter(torch.zeros(n_in, experts))
        self.w_noise = nn.Parameter(torch.zeros(n_in, experts))
        self.experts = nn.ModuleList([Expert(n_in, n_out) for _ in range(experts)])

    def forward(self, x, noise=None):
        clean = x @ self.w_gate
        k, e = self.k, self.w_gate.shape[1]
        if self.training:
            std = F.softplus(x @ self.w_noise) + 0.01
            logits = clean + noise * std
        else:
            logits = clean
        top, idx = logits.topk(min(k + 1, e), dim=1)
        gates = torch.zeros_like(logits).scatter(1, idx[:, :k], torch.softmax(top[:, :k], dim=1))
        if self.training and k < e:
            normal = torch.distributions.Normal(torch.zeros((), dtype=x.dtype), torch.ones((), dtype=x.dtype))
            threshold_in, threshold_out = top[:, k:k + 1], top[:, k - 1:k]
            p_in = normal.cdf((clean - threshold_in) / std)
            p_out = normal.cdf((clean - threshold_out) / std)
            load = torch.where(logits > threshold_in, p_in, p_out).sum(0)
        else:
            load = (gates > 0).sum(0).to(x.dtype)
        loss = (cv_squared(gates.sum(0)) + cv_squared(load)) * MOE_WEIGHT
        outs = torch.stack([expert(x) for expert in self.experts], dim=1)  # [B, E, out]
        mixture = (gates[:, :, None] * outs.exp()).sum(1)
        mixture = torch.where(mixture == 0, torch.full_like(mixture, 2.220446049250313e-16), mixture)
        return mixture.log(), loss, gates


class AttentionPool(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.d = d
        self.fc1, self.fc2 = nn.Linear(3 * d, d), nn.Linear(d, 3)

    def forward(self, x1, x2, x3):
        w = torch.softmax(self.fc2(F.relu(self.fc1(torch.cat([x1, x2, x3], 1)))) / math.sqrt(self.d), dim=1)
        return w, (w[:, :, None] * torch.stack([x1, x2, x3], 1)).sum(1)


def adaptive_max_pool(h, slots):  # h [B, L, C] -> [B, C, slots]
    return F.adaptive_max_pool1d(h.transpose(1, 2), slots)


class GLoMo(nn.Module):
    def __init__(self):
        super().__init__()
        dt, da, dv = DIMS
        self.text_global = nn.Linear(dt, D)
        self.text_conv = nn.Conv1d(dt, D, 3, padding=1, bias=False)
        self.audio_conv = nn.Conv1d(da, D, 3, padding=1, bias=False)
        self.vision_conv = nn.Conv1d(dv, D, 3, padding=1, bias=False)
        self.audio_encoder = Encoder(D, HEADS, LAYERS)
        self.vision_encoder = Encoder(D, HEADS, LAYERS)
        self.moe_t, self.moe_a, self.moe_v = (MoE(SLOTS * D, D, EXPERTS, TOP_K) for _ in range(3))
        self.fusion = nn.ModuleList([nn.TransformerEncoderLayer(D, HEADS, FUSION_FF, 0.0, batch_first=True)
                                     for _ in range(FUSION_LAYERS)])
        self.att_global, self.att_local = AttentionPool(D), AttentionPool(D)
        self.global_local = nn.Linear(2 * D, D)
        self.modality_t, self.modality_a, self.modality_v = (nn.Linear(2 * D, D) for _ in range(3))
        self.head = nn.Linear(2 * D, 1)

    def encode(self, text, audio, vision):
        conv = lambda c, x: c(x.transpose(1, 2)).transpose(1, 2)
        g_t = self.text_global(text[:, 0])
        local_t = adaptive_max_pool(conv(self.text_conv, text), SLOTS)
        h_a = self.audio_encoder(conv(self.audio_conv, audio))
        h_v = self.vision_encoder(conv(self.vision_conv, vision))
        g_a, g_v = h_a.max(1).values, h_v.max(1).values
        b = text.shape[0]
        l_t, loss_t, _ = self.moe_t(local_t.reshape(b, -1))
        l_a, loss_a, _ = self.moe_a(adaptive_max_pool(h_a, SLOTS).reshape(b, -1))
        l_v, loss_v, _ = self.moe_v(adaptive_max_pool(h_v, SLOTS).reshape(b, -1))
        return (g_t, g_a, g_v), (l_t, l_a, l_v), loss_t + loss_a + loss_v

    def fuse(self, g, l):
        z = torch.stack([g[0], l[0], g[1], l[1], g[2], l[2]], 1)
        for layer in self.fusion:
            z = layer(z)
        w_g, f_g = self.att_global(z[:, 0], z[:, 2], z[:, 4])
        _, f_l = self.att_local(z[:, 1], z[:, 3], z[:, 5])
        a = self.global_local(torch.cat([f_g, f_l], 1))
        m = torch.stack([self.modality_t(torch.cat([z[:, 0], z[:, 1]], 1)),
                         self.modality_a(torch.cat([z[:, 2], z[:, 3]], 1)),
                         self.modality_v(torch.cat([z[:, 4], z[:, 5]], 1))], 1)
        c = (w_g[:, :, None] * m).sum(1)
        return self.head(torch.cat([a, c], 1))


def main():
    torch.manual_seed(1111)
    model = GLoMo()
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
    moe = MoE(SLOTS * D, D, EXPERTS, TOP_K)
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
