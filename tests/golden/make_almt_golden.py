"""Golden fixture for msmix's ALMT (tests/models/test_almt.cpp).

A PyTorch twin of ALMT as shared/spec/almt.md describes it (MMSA v2.2.1's models/singleTask/ALMT.py), written
here from that description with MMSA's module and parameter names, fed text FEATURES (no BERT; msmix's ALMT
reads the file's text features):
  - embedding_{l,a,v} = Sequential(Linear(D_m -> d), Transformer): learned tokens (zeros) prepended, a positional
    table (1, frames + tokens, d) sliced to the input, pre-LN layers; the first `tokens` positions kept;
  - a layer: x <- to_out(attn(to_q(LN_q(x)), to_k(LN_k(kv)), to_v(LN_v(kv)))) + x, then x <- net.3(GELU(net.0(LN(x))))
    + x; q/k/v without bias, heads of 64, no final LayerNorm, no dropout;
  - l_encoder: h_l + its positional table, AHL_depth - 1 layers, every hidden state kept;
  - hyper-modality layer i: H <- LN4(H) + to_out(attn(q, k_ta, v_ta) + attn(q, k_tv, v_tv)), q from LN1(z_i),
    k/v from LN2(h_a) and LN3(h_v), heads of d / heads;
  - fusion: target [c; z_last] + pos_t attends to source [c; H] + pos_s; regression_head of position 0.
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
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "almt")

B = 3
DIMS = (6, 4, 5)          # text, audio, vision input widths
FRAMES = (5, 7, 3)        # feature_length: the positional tables' lengths
LENGTHS = (4, 7, 2)       # the inputs' lengths
D, TOKENS, HEADS, HIDDEN = 8, 2, 2, 8
EMBED_DEPTH = (1, 2, 1)
AHL_DEPTH, FUSION_DEPTH = 3, 2
DIM_HEAD = 64             # ALMT's Transformer and CrossTransformer fix it


def attend(q, k, v, heads, dim_head):
    """q [B, L, h*dh], k/v [B, S, h*dh] -> [B, L, h*dh]: per head softmax(q k^T / sqrt(dh)) v."""
    b, n, _ = q.shape
    split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, dim_head).transpose(1, 2)
    p = torch.softmax(split(q) @ split(k).transpose(-1, -2) * dim_head ** -0.5, dim=-1)
    return (p @ split(v)).transpose(1, 2).reshape(b, n, heads * dim_head)


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_k = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_v = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim))

    def forward(self, q, k, v):
        return self.to_out(attend(self.to_q(q), self.to_k(k), self.to_v(v), self.heads, self.dim_head))


class PreNormAttention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.norm_q, self.norm_k, self.norm_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fn = Attention(dim, heads, dim_head)

    def forward(self, q, k, v):
        return self.fn(self.norm_q(q), self.norm_k(k), self.norm_v(v))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim),
                                 nn.Dropout(0.0))

    def forward(self, x):
        return self.net(x)


class PreNormForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = FeedForward(dim, hidden)

    def forward(self, x):
        return self.fn(self.norm(x))


class Encoder(nn.Module):
    def __init__(self, dim, depth, heads, hidden):
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.ModuleList([PreNormAttention(dim, heads, DIM_HEAD), PreNormForward(dim, hidden)]) for _ in range(depth)])

    def hidden(self, x):
        out = [x]
        for attn, ff in self.layers:
            x = attn(x, x, x) + x
            x = ff(x) + x
            out.append(x)
        return out

    def cross(self, source, target):
        for attn, ff in self.layers:
            target = attn(target, source, source) + target
            target = ff(target) + target
        return target


class Transformer(nn.Module):
    def __init__(self, frames, tokens, dim, depth, heads, hidden):
        super().__init__()
        self.tokens = tokens
        self.pos_embedding = nn.Parameter(torch.randn(1, frames + tokens, dim))
        if tokens:
            self.extra_token = nn.Parameter(torch.zeros(1, tokens, dim))
        self.encoder = Encoder(dim, depth, heads, hidden)

    def hidden(self, x):
        b, n, _ = x.shape
        if self.tokens:
            x = torch.cat([self.extra_token.expand(b, -1, -1), x], dim=1)
        return self.encoder.hidden(x + self.pos_embedding[:, :n + self.tokens])


class HyperLearning(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.dim_head = heads, dim // heads
        for name in ("to_q", "to_k_ta", "to_k_tv", "to_v_ta", "to_v_tv"):
            setattr(self, name, nn.Linear(dim, dim, bias=False))
        self.to_out = nn.Sequential(nn.Linear(dim, dim))

    def forward(self, t, a, v):
        q = self.to_q(t)
        o = attend(q, self.to_k_ta(a), self.to_v_ta(a), self.heads, self.dim_head) + \
            attend(q, self.to_k_tv(v), self.to_v_tv(v), self.heads, self.dim_head)
        return self.to_out(o)


class PreNormAHL(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(dim) for _ in range(4))
        self.fn = HyperLearning(dim, heads)

    def forward(self, t, a, v, h):
        return self.norm4(h) + self.fn(self.norm1(t), self.norm2(a), self.norm3(v))


class HyperEncoder(nn.Module):
    def __init__(self, dim, depth, heads):
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleList([PreNormAHL(dim, heads)]) for _ in range(depth)])


class CrossTransformer(nn.Module):
    def __init__(self, frames, dim, depth, heads, hidden):
        super().__init__()
        self.pos_embedding_s = nn.Parameter(torch.randn(1, frames + 1, dim))
        self.pos_embedding_t = nn.Parameter(torch.randn(1, frames + 1, dim))
        self.extra_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.CrossTransformerEncoder = Encoder(dim, depth, heads, hidden)

    def forward(self, source, target):
        b, s, _ = source.shape
        t = target.shape[1]
        c = self.extra_token.expand(b, -1, -1)
        source = torch.cat([c, source], dim=1) + self.pos_embedding_s[:, :s + 1]
        target = torch.cat([c, target], dim=1) + self.pos_embedding_t[:, :t + 1]
        return self.CrossTransformerEncoder.cross(source, target)


class ALMT(nn.Module):
    def __init__(self):
        super().__init__()
        self.h_hyper = nn.Parameter(torch.ones(1, TOKENS, D))
        for m, name in enumerate("lav"):
            setattr(self, "embedding_" + name, nn.Sequential(
                nn.Linear(DIMS[m], D), Transformer(FRAMES[m], TOKENS, D, EMBED_DEPTH[m], HEADS, HIDDEN)))
        self.l_encoder = Transformer(TOKENS, 0, D, AHL_DEPTH - 1, HEADS, D)
        self.h_hyper_layer = HyperEncoder(D, AHL_DEPTH, HEADS)
        self.fusion_layer = CrossTransformer(TOKENS, D, FUSION_DEPTH, HEADS, HIDDEN)
        self.regression_head = nn.Linear(D, 1)

    def encode(self, text, audio, vision):
        out = []
        for x, emb in ((text, self.embedding_l), (audio, self.embedding_a), (vision, self.embedding_v)):
            out.append(emb[1].hidden(emb[0](x))[-1][:, :TOKENS])
        return out

    def fuse(self, h_l, h_a, h_v):
        z = self.l_encoder.hidden(h_l)
        h = self.h_hyper.expand(h_l.shape[0], -1, -1)
        for i, layer in enumerate(self.h_hyper_layer.layers):
            h = layer[0](z[i], h_a, h_v, h)
        return self.regression_head(self.fusion_layer(h, z[-1])[:, 0])


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


def rounded(t):
    return torch.tensor([float("%.6g" % x) for x in t.detach().double().reshape(-1).tolist()]).reshape(t.shape)


def fmt(t):
    return {"shape": list(t.shape), "data": [float("%.6g" % x) for x in t.detach().double().reshape(-1).tolist()]}


def main():
    torch.manual_seed(1111)
    model = ALMT()
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
    for key, p in model.named_parameters():
        g = p.grad.double()
        out["gsum." + key] = fmt(g.sum().reshape(1))
        out["gsq." + key] = fmt((g * g).sum().reshape(1))
        if key.startswith(FULL_GRADS):
            out["grad." + key] = fmt(p.grad)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "almt.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), "bytes,", sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
