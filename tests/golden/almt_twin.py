"""A PyTorch twin of ALMT as shared/spec/almt.md describes it (MMSA v2.2.1's models/singleTask/ALMT.py), written
here from that description with MMSA's module and parameter names, fed text FEATURES (no BERT), as msmix's
models/almt.h. Eager PyTorch as MMSA runs it: the embeddings' layers compute every position, then keep the
first `tokens`. Shared by tests/golden/make_almt_golden.py (the fixture) and bench/torch/bench_models.py.
"""
import torch
import torch.nn as nn


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
    def __init__(self, dim, depth, heads, hidden, dim_head=64):
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleList([PreNormAttention(dim, heads, dim_head), PreNormForward(dim, hidden)])
                                     for _ in range(depth)])

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
    """dims: input widths (text, audio, vision); frames: the positional tables' lengths (feature_length)."""

    def __init__(self, dims, frames, d=128, tokens=8, heads=8, hidden=128, embed_depth=(1, 1, 1), ahl_depth=3,
                 fusion_depth=2):
        super().__init__()
        self.tokens = tokens
        self.h_hyper = nn.Parameter(torch.ones(1, tokens, d))
        for m, name in enumerate("lav"):
            setattr(self, "embedding_" + name, nn.Sequential(
                nn.Linear(dims[m], d), Transformer(frames[m], tokens, d, embed_depth[m], heads, hidden)))
        self.l_encoder = Transformer(tokens, 0, d, ahl_depth - 1, heads, d)
        self.h_hyper_layer = HyperEncoder(d, ahl_depth, heads)
        self.fusion_layer = CrossTransformer(tokens, d, fusion_depth, heads, hidden)
        self.regression_head = nn.Linear(d, 1)

    def encode(self, text, audio, vision):
        out = []
        for x, emb in ((text, self.embedding_l), (audio, self.embedding_a), (vision, self.embedding_v)):
            out.append(emb[1].hidden(emb[0](x))[-1][:, :self.tokens])
        return out

    def fuse(self, h_l, h_a, h_v):
        z = self.l_encoder.hidden(h_l)
        h = self.h_hyper.expand(h_l.shape[0], -1, -1)
        for i, layer in enumerate(self.h_hyper_layer.layers):
            h = layer[0](z[i], h_a, h_v, h)
        return self.regression_head(self.fusion_layer(h, z[-1])[:, 0])

    def forward(self, text, audio, vision):
        return self.fuse(*self.encode(text, audio, vision))
