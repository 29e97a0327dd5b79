"""A PyTorch twin of GLoMo as shared/spec/glomo.md describes it, written from that description with msmix's
module names (models/glomo.h), on text FEATURES (use_bert false: the features stand for BERT's last hidden state
H12 and the local branch convolves them alone):
  - text: g_t = text_global(x[:, 0]); local = adaptive max pool to 3 slots of text_conv (k 3, pad 1, no bias);
  - audio / vision: *_conv, then MulT's encoder (tests/golden/make_mult_golden.py's layers) with sqrt(d) scaling
    and fairseq's sinusoidal positions (row t + 1 where the conv output's first channel is non-zero), a final
    LayerNorm; global = max over time, local = adaptive max pool to 3 slots;
  - per modality the noisy top-2 mixture of 3 experts on the flattened local [B, 3d] (in training the gate's
    noise given, so both sides use the same, or drawn); out = log(sum_i gate_i exp(E_i));
    loss = 0.01 (cv^2(importance) + cv^2(load));
  - fusion: [g_t, l_t, g_a, l_a, g_v, l_v] through torch.nn.TransformerEncoderLayer x 2 (post-norm, ReLU);
    attention pools, global_local, modality_*, head.
Shared by tests/golden/make_glomo_golden.py (the fixtures) and bench/torch/bench_models.py.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_mult_golden import EncoderLayer


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
    """MulT's encoder with positions: x = dropout(sqrt(d) u + PE(u)), pre-norm layers, final LayerNorm
    (self-attention)."""

    def __init__(self, dim, heads, layers, attn_dropout=0.0, relu_dropout=0.0, res_dropout=0.0, embed_dropout=0.0):
        super().__init__()
        self.scale, self.embed_dropout = math.sqrt(dim), embed_dropout
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, attn_dropout, relu_dropout, res_dropout)
                                     for _ in range(layers)])
        self.register_buffer("version", torch.tensor([2.0]))
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, u):
        x = F.dropout(self.scale * u + sinusoidal_positions(u), self.embed_dropout, self.training)
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
    """Noisy top-k gating (Shazeer et al. 2017), as GLoMo's code uses it; in training the noise is given (the
    fixtures) or drawn (the bench)."""

    def __init__(self, n_in, n_out, experts, k, loss_weight=0.01):
        super().__init__()
        self.k, self.loss_weight = k, loss_weight
        self.w_gate = nn.Parameter(torch.zeros(n_in, experts))
        self.w_noise = nn.Parameter(torch.zeros(n_in, experts))
        self.experts = nn.ModuleList([Expert(n_in, n_out) for _ in range(experts)])

    def forward(self, x, noise=None):
        clean = x @ self.w_gate
        k, e = self.k, self.w_gate.shape[1]
        if self.training:
            std = F.softplus(x @ self.w_noise) + 0.01
            noise = torch.randn_like(clean) if noise is None else noise
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
        loss = (cv_squared(gates.sum(0)) + cv_squared(load)) * self.loss_weight
        outs = torch.stack([expert(x) for expert in self.experts], dim=1)  # [B, E, out]
        mixture = (gates[:, :, None] * outs.exp()).sum(1)
        mixture = torch.where(mixture == 0, torch.full_like(mixture, 2.220446049250313e-16), mixture)
        return mixture.log(), loss, gates


class AttentionPool(nn.Module):
    def __init__(self, d, dropout=0.0):
        super().__init__()
        self.d, self.dropout = d, dropout
        self.fc1, self.fc2 = nn.Linear(3 * d, d), nn.Linear(d, 3)

    def forward(self, x1, x2, x3):
        h = F.relu(F.dropout(self.fc1(torch.cat([x1, x2, x3], 1)), self.dropout, self.training))
        w = torch.softmax(self.fc2(h) / math.sqrt(self.d), dim=1)
        return w, (w[:, :, None] * torch.stack([x1, x2, x3], 1)).sum(1)


def adaptive_max_pool(h, slots):  # h [B, L, C] -> [B, C, slots]
    return F.adaptive_max_pool1d(h.transpose(1, 2), slots)


class GLoMo(nn.Module):
    """dims: text, audio, vision widths; dropouts: attn, relu, res, embed (the encoders), fusion, gate (the
    attention pools)."""

    def __init__(self, dims, d, heads, layers, slots=3, experts=3, top_k=2, fusion_layers=2, fusion_ff=2048,
                 dropouts=(0.0,) * 6, moe_weight=0.01):
        super().__init__()
        dt, da, dv = dims
        attn, relu, res, embed, fusion, gate = dropouts
        self.slots = slots
        self.text_global = nn.Linear(dt, d)
        self.text_conv = nn.Conv1d(dt, d, 3, padding=1, bias=False)
        self.audio_conv = nn.Conv1d(da, d, 3, padding=1, bias=False)
        self.vision_conv = nn.Conv1d(dv, d, 3, padding=1, bias=False)
        self.audio_encoder = Encoder(d, heads, layers, attn, relu, res, embed)
        self.vision_encoder = Encoder(d, heads, layers, attn, relu, res, embed)
        self.moe_t, self.moe_a, self.moe_v = (MoE(slots * d, d, experts, top_k, moe_weight) for _ in range(3))
        self.fusion = nn.ModuleList([nn.TransformerEncoderLayer(d, heads, fusion_ff, fusion, batch_first=True)
                                     for _ in range(fusion_layers)])
        self.att_global, self.att_local = AttentionPool(d, gate), AttentionPool(d, gate)
        self.global_local = nn.Linear(2 * d, d)
        self.modality_t, self.modality_a, self.modality_v = (nn.Linear(2 * d, d) for _ in range(3))
        self.head = nn.Linear(2 * d, 1)

    def forward(self, text, audio, vision):
        """The prediction; the experts' loss is left in self.aux."""
        g, l, self.aux = self.encode(text, audio, vision)
        return self.fuse(g, l)

    def encode(self, text, audio, vision):
        conv = lambda c, x: c(x.transpose(1, 2)).transpose(1, 2)
        g_t = self.text_global(text[:, 0])
        local_t = adaptive_max_pool(conv(self.text_conv, text), self.slots)
        h_a = self.audio_encoder(conv(self.audio_conv, audio))
        h_v = self.vision_encoder(conv(self.vision_conv, vision))
        g_a, g_v = h_a.max(1).values, h_v.max(1).values
        b = text.shape[0]
        l_t, loss_t, _ = self.moe_t(local_t.reshape(b, -1))
        l_a, loss_a, _ = self.moe_a(adaptive_max_pool(h_a, self.slots).reshape(b, -1))
        l_v, loss_v, _ = self.moe_v(adaptive_max_pool(h_v, self.slots).reshape(b, -1))
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
