"""Golden fixtures for msmix's MulT (tests/models/test_mult.cpp).

A PyTorch twin of MMSA v2.2.1's MULT with use_bert false (models/singleTask/MULT.py and
models/subNets/transformers_encoder/{transformer,multihead_attention}.py), written from their architecture with
the same parameter and buffer names, batch-first instead of MMSA's time-major layout (the math is the same):
  - text dropout, then Conv1d projections without bias or padding (skipped when a width already equals d);
  - TransformerEncoder: x * sqrt(d), embedding dropout (keys and values dropped separately), pre-LayerNorm
    layers (layer_norms.0 on the queries and on the keys/values, layer_norms.1 before the FFN d -> 4d -> d),
    a final layer_norm, a buffer `version` = [2.], no positional embedding;
  - attention mask (MMSA's default attn_mask = true): additive -inf where j >= i + 1 + |Lk - Lq|;
  - six cross-modal encoders, three self-attention encoders of width 2d with max(nlevels, 3) layers, the last
    step of each, a residual head proj1 -> ReLU -> dropout -> proj2, + input, out_layer.
Sizes are tiny (d 4, 2 heads, nlevels 1) and every dropout is 0. Even so the model has 10,757 parameters, so
to keep the fixture small the state is not stored but computed on both sides from a formula: parameter number p
(in named_parameters() order, which the C++ model must share) gets element i = 0.5 sin(1 + 0.731 i + 1.913 p),
computed in double and rounded to float32. The case writes tests/golden/mult/mult.json in the layout of
tests/golden/golden.h:
    text, audio, vision   inputs [B, T, D] with T = 7 / 9 / 4 and D = 6 / 4 / 5 (audio width = d: MMSA skips
                          proj_a, which is in the state dict but gets no grad)
    config.kernels        the Conv1d kernel sizes (l, a, v) = (3, 2, 1): projected lengths 5 / 9 / 4, so the
                          masks cover Lk > Lq, Lq > Lk with and without masked pairs, and Lq = Lk
    z.t, z.a, z.v         the projected sequences [B, T', d] (what MS-Mix mixes)
    out                   the prediction [B, 1]
    w                     fixed random weights: the loss is L = sum(out * w)
    grad.<input>          dL/d(text, audio, vision)
    grad.<name>           dL/d(parameter) in full for the parameters of FULL_GRADS (one module of each kind)
    gsum.<name>, gsq.<name>   sum and sum of squares of dL/d(parameter), for every parameter with a grad
    state.<name>          only the buffers (the `version` of each encoder)
Numbers are written with 6 significant digits; the test compares at rtol 1e-4.

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_mult_golden.py
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture_io import fmt, grad_summaries, rounded, write_fixture

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mult")

B = 2
DIMS = (6, 4, 5)          # text, audio, vision input widths (audio = d: MMSA skips proj_a)
LENGTHS = (7, 9, 4)       # input sequence lengths
KERNELS = (3, 2, 1)       # conv1d_kernel_size_l / _a / _v
D, HEADS, NLEVELS = 4, 2, 1


def xavier_linear(n_in, n_out):
    m = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(m.weight)
    nn.init.zeros_(m.bias)
    return m


class Attention(nn.Module):
    """Multi-head attention with one packed input projection (q, k, v rows) and out_proj."""

    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, mask):
        n, lq, e = query.shape
        lk = key.shape[1]
        w, b, hd = self.in_proj_weight, self.in_proj_bias, e // self.heads
        q = F.linear(query, w[:e], b[:e]) * hd ** -0.5
        k = F.linear(key, w[e:2 * e], b[e:2 * e])
        v = F.linear(value, w[2 * e:], b[2 * e:])
        q = q.view(n, lq, self.heads, hd).transpose(1, 2)   # [B, h, Lq, hd]
        k = k.view(n, lk, self.heads, hd).transpose(1, 2)
        v = v.view(n, lk, self.heads, hd).transpose(1, 2)
        scores = q @ k.transpose(2, 3)
        if mask is not None:
            scores = scores + mask
        p = F.dropout(torch.softmax(scores, dim=-1), self.dropout, self.training)
        ctx = (p @ v).transpose(1, 2).reshape(n, lq, e)
        return self.out_proj(ctx)


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, attn_dropout, relu_dropout, res_dropout):
        super().__init__()
        self.self_attn = Attention(dim, heads, attn_dropout)
        self.relu_dropout, self.res_dropout = relu_dropout, res_dropout
        self.fc1 = xavier_linear(dim, 4 * dim)
        self.fc2 = xavier_linear(4 * dim, dim)
        self.layer_norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])

    def forward(self, x, x_k, x_v, mask):
        ln0 = self.layer_norms[0]
        q = ln0(x)
        k, v = (q, q) if x_k is None else (ln0(x_k), ln0(x_v))
        x = x + F.dropout(self.self_attn(q, k, v, mask), self.res_dropout, self.training)
        h = F.dropout(F.relu(self.fc1(self.layer_norms[1](x))), self.relu_dropout, self.training)
        return x + F.dropout(self.fc2(h), self.res_dropout, self.training)


def future_mask(lq, lk):
    return torch.triu(torch.full((lq, lk), float("-inf")), 1 + abs(lk - lq))


class Encoder(nn.Module):
    def __init__(self, dim, heads, layers, attn_dropout, relu_dropout, res_dropout, embed_dropout, attn_mask):
        super().__init__()
        self.scale, self.embed_dropout, self.attn_mask = math.sqrt(dim), embed_dropout, attn_mask
        self.layers = nn.ModuleList(
            [EncoderLayer(dim, heads, attn_dropout, relu_dropout, res_dropout) for _ in range(layers)])
        self.register_buffer("version", torch.tensor([2.0]))
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x, source=None):
        drop = lambda t: F.dropout(self.scale * t, self.embed_dropout, self.training)
        x = drop(x)
        x_k = x_v = None
        if source is not None:
            x_k, x_v = drop(source), drop(source)
        lk = x.shape[1] if source is None else source.shape[1]
        mask = future_mask(x.shape[1], lk) if self.attn_mask else None
        for layer in self.layers:
            x = layer(x, x_k, x_v, mask)
        return self.layer_norm(x)


class MulT(nn.Module):
    def __init__(self, dims, kernels, d, heads, nlevels, attn_mask=True, drop=0.0):
        super().__init__()
        self.dims, self.d, self.drop = dims, d, drop
        self.proj_l, self.proj_a, self.proj_v = (
            nn.Conv1d(n, d, kernel_size=k, padding=0, bias=False) for n, k in zip(dims, kernels))

        def encoder(dim, layers):
            return Encoder(dim, heads, layers, drop, drop, drop, drop, attn_mask)

        for name in ("l_with_a", "l_with_v", "a_with_l", "a_with_v", "v_with_l", "v_with_a"):
            setattr(self, "trans_" + name, encoder(d, nlevels))
        for m in ("l", "a", "v"):
            setattr(self, f"trans_{m}_mem", encoder(2 * d, max(nlevels, 3)))
        self.proj1 = nn.Linear(6 * d, 6 * d)
        self.proj2 = nn.Linear(6 * d, 6 * d)
        self.out_layer = nn.Linear(6 * d, 1)

    def encode(self, text, audio, vision):
        text = F.dropout(text, self.drop, self.training)
        out = []
        for x, conv, n in ((text, self.proj_l, self.dims[0]), (audio, self.proj_a, self.dims[1]),
                           (vision, self.proj_v, self.dims[2])):
            out.append(x if n == self.d else conv(x.transpose(1, 2)).transpose(1, 2))
        return out

    def fuse(self, l, a, v):
        h_l = self.trans_l_mem(torch.cat([self.trans_l_with_a(l, a), self.trans_l_with_v(l, v)], dim=2))
        h_a = self.trans_a_mem(torch.cat([self.trans_a_with_l(a, l), self.trans_a_with_v(a, v)], dim=2))
        h_v = self.trans_v_mem(torch.cat([self.trans_v_with_l(v, l), self.trans_v_with_a(v, a)], dim=2))
        last = torch.cat([h_l[:, -1], h_a[:, -1], h_v[:, -1]], dim=1)
        h = self.proj2(F.dropout(F.relu(self.proj1(last)), self.drop, self.training)) + last
        return self.out_layer(h)


FULL_GRADS = ("proj_", "trans_l_with_a.", "trans_v_with_l.", "trans_a_mem.layers.2.", "trans_a_mem.layer_norm.", "out_layer.")


def formula_state(model):
    """Parameter p, element i: 0.5 sin(1 + 0.731 i + 1.913 p) (the C++ test computes the same)."""
    with torch.no_grad():
        for p, (_, t) in enumerate(model.named_parameters()):
            values = [0.5 * math.sin(1.0 + 0.731 * i + 1.913 * p) for i in range(t.numel())]
            t.copy_(torch.tensor(values, dtype=torch.float32).reshape(t.shape))


def main():
    torch.manual_seed(1111)
    model = MulT(DIMS, KERNELS, D, HEADS, NLEVELS)
    formula_state(model)
    model.eval()
    inputs = [rounded(torch.randn(B, t, n)).requires_grad_() for t, n in zip(LENGTHS, DIMS)]
    out = {"config.kernels": fmt(torch.tensor(KERNELS, dtype=torch.float))}
    for key, x in zip(("text", "audio", "vision"), inputs):
        out[key] = fmt(x)
    for key, t in model.named_buffers():
        out["state." + key] = fmt(t)
    z = model.encode(*inputs)
    y = model.fuse(*z)
    w = rounded(torch.randn_like(y))
    (y * w).sum().backward()
    for key, t in zip(("z.t", "z.a", "z.v"), z):
        out[key] = fmt(t)
    out.update({"out": fmt(y), "w": fmt(w)})
    for key, x in zip(("text", "audio", "vision"), inputs):
        out["grad." + key] = fmt(x.grad)
    grad_summaries(out, model, lambda key: key.startswith(FULL_GRADS))
    write_fixture(OUT, "mult.json", out)
    print(sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
