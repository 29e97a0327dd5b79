"""PyTorch twin of `msmix bench`: whole training steps of LF_DNN, TFN, LMF, MulT, MISA, ALMT and GLoMo at MOSI's
defaults (MMSA's; GLoMo's own).

The modules are written from MMSA v2.2.1's architecture as msmix's models implement it (docs/backbones.md;
models/singleTask/{LF_DNN,TFN,LMF,MULT}.py, models/subNets/): the same parameter names, the same trainable
counts (checked against MMSA's below and printed), the same ops in MMSA's order and layout (TFN's two bmm,
LMF's matmul over the rank, MulT time-major with MMSA's MultiheadAttention: one packed GEMM when query, key
and value are one tensor, three apart otherwise, every layer over every step). Dropouts are MMSA's MOSI
values, active as in training.

One timed step is what MMSA's trainer (and msmix's, with update_epochs 1) does per batch:
    optimizer.zero_grad(); out = model(text, audio, vision); loss = L1(out, labels) [ALMT: MSE]; loss.backward();
    [MulT: clip_grad_value_(0.6)]; optimizer.step(); loss.item()
with Adam and MMSA's parameter groups (TFN without output_range / output_shift, LMF's factor group without
fusion_weights / fusion_bias), on random inputs of MMSA's MOSI unaligned shapes: text [B, 50, 768];
LF_DNN / TFN / LMF audio [B, 1, 5] and vision [B, 1, 20] (time-averaged, MMSA's need_normalized), MulT audio
[B, 375, 5] and vision [B, 500, 20]. Batch sizes are MMSA's: 128 / 32 / 64 / 16.
ALMT (tests/golden/almt_twin.py, on text features as msmix's): AdamW (lr 1e-4, weight decay 1e-4) and MSE,
batch 64, MulT's input shapes; its embeddings compute all T + 8 positions as MMSA's do.
MISA (tests/golden/misa_twin.py, on text features as msmix's): Adam (lr 1e-4), MSE plus its regularisers, clip
by value 0.8, batch 16, MulT's input shapes; its BiLSTMs run over packed sequences whose lengths are drawn as
synthetic:mosi draws them (uniform in [ceil(0.3 T), T]), so both sides do the same work on average.
GLoMo (tests/golden/glomo_twin.py, on text features as msmix's): AdamW (lr 4e-5, weight decay 1e-4 except on
biases: its name rule on msmix's names), L1 plus the experts' loss, the gates' noise drawn, batch 240, on MOSI's
word-aligned shapes (text, audio and vision 50 steps; msmix reads synthetic:mosi-aligned).

    OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch/bench_models.py --model tfn --steps 10 --warmup 2
    python3 bench/torch/bench_models.py --device cuda --steps 30 --warmup 5     # on a GPU machine

prints one JSON object per model on stdout (ms_per_step = median wall ms; cpu_ms_per_step = median process
CPU ms) and a readable line on stderr. Threads: torch.set_num_threads(OMP_NUM_THREADS, else all cores), as
msmix's OpenMP. Run with Debian's python3 (python3-torch 1.13). `--mix msmix` (TFN) times MS-Mix's step instead
(msmix_twin.py: encode, pair selection, intensity predictors, fuse on 2B rows, the three losses).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The MMSA sub-networks, one definition shared with the golden fixtures.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden"))
from mmsa_subnets import SubNet, TextSubNet  # noqa: E402
from msmix_twin import MSMixTwin  # noqa: E402
from almt_twin import ALMT  # noqa: E402
from misa_twin import MISA  # noqa: E402
from glomo_twin import GLoMo  # noqa: E402

# MMSA's trainable-parameter counts at MOSI defaults, feature dims (768, 5, 20) (issue 5, docs/backbones.md).
# ALMT: shared/spec/almt.md's count of MMSA's model without BERT; MISA: MMSA's model without BERT (msmix's count).
# GLoMo: its authors' model at MMSA's MOSI widths (msmix's count; 927,239 at GLoMo's own widths, the spec's).
EXPECTED_PARAMS = {"lf_dnn": 597171, "tfn": 9497043, "lmf": 505071, "mult": 2571551, "misa": 1138033,
                   "almt": 2603649, "glomo": 913415}

# MMSA v2.2.1 MOSI defaults (config_regression.json + the trainers), as msmix's models/defaults.cpp.
DEFAULTS = {
    "lf_dnn": dict(hidden_dims=(128, 16, 128), text_out=256, post_fusion_dim=128, dropouts=(0.2, 0.2, 0.2, 0.2),
                   batch_size=128, learning_rate=1e-3, weight_decay=0.01),
    "tfn": dict(hidden_dims=(128, 32, 128), text_out=32, post_fusion_dim=64, dropouts=(0.3, 0.3, 0.3, 0.5),
                batch_size=32, learning_rate=1e-3, weight_decay=0.0),
    "lmf": dict(hidden_dims=(128, 16, 128), rank=3, dropouts=(0.3, 0.3, 0.3, 0.3), batch_size=64,
                learning_rate=1e-3, factor_lr=1e-3, weight_decay=5e-3),
    "mult": dict(d=50, heads=10, nlevels=4, kernels=(5, 5, 5), text_dropout=0.5, output_dropout=0.5,
                 attn_dropout=0.3, attn_dropout_a=0.2, attn_dropout_v=0.0, embed_dropout=0.2, res_dropout=0.0,
                 relu_dropout=0.0, batch_size=16, learning_rate=2e-3, weight_decay=0.0, grad_clip=0.6),
    "misa": dict(batch_size=16, learning_rate=1e-4, weight_decay=0.0, grad_clip=0.8),
    "almt": dict(batch_size=64, learning_rate=1e-4, weight_decay=1e-4),
    "glomo": dict(d=48, heads=16, layers=4, dropouts=(0.5, 0.3, 0.3, 0.2, 0.1, 0.3), batch_size=240,
                  learning_rate=4e-5, weight_decay=1e-4),
}
FEATURE_DIMS = (768, 5, 20)          # text, audio, vision widths (MOSI)
SEQ_LENGTHS = (50, 375, 500)         # MOSI unaligned text / audio / vision steps


# ---------------------------------------------------------------- LF_DNN, TFN, LMF

def add_subnets(module, dims, hidden, dropouts, text_out):
    text_in, audio_in, video_in = dims
    text_hidden, audio_hidden, video_hidden = hidden
    module.audio_subnet = SubNet(audio_in, audio_hidden, dropouts[0])
    module.video_subnet = SubNet(video_in, video_hidden, dropouts[1])
    module.text_subnet = TextSubNet(text_in, text_hidden, text_out)


def subnet_outputs(module, text, audio, vision):
    return module.text_subnet(text), module.audio_subnet(audio.squeeze(1)), module.video_subnet(vision.squeeze(1))


class LFDNN(nn.Module):
    def __init__(self, dims=FEATURE_DIMS, hidden_dims=(128, 16, 128), text_out=256, post_fusion_dim=128,
                 dropouts=(0.2, 0.2, 0.2, 0.2), **_):
        super().__init__()
        add_subnets(self, dims, hidden_dims, dropouts, text_out)
        self.post_fusion_dropout = nn.Dropout(dropouts[3])
        self.post_fusion_layer_1 = nn.Linear(text_out + hidden_dims[2] + hidden_dims[1], post_fusion_dim)
        self.post_fusion_layer_2 = nn.Linear(post_fusion_dim, post_fusion_dim)
        self.post_fusion_layer_3 = nn.Linear(post_fusion_dim, 1)

    def forward(self, text, audio, vision):
        t, a, v = subnet_outputs(self, text, audio, vision)
        h = self.post_fusion_dropout(torch.cat([a, v, t], dim=-1))
        h = F.relu(self.post_fusion_layer_1(h))
        h = F.relu(self.post_fusion_layer_2(h))
        return self.post_fusion_layer_3(h)


class TFN(nn.Module):
    def __init__(self, dims=FEATURE_DIMS, hidden_dims=(128, 32, 128), text_out=32, post_fusion_dim=64,
                 dropouts=(0.3, 0.3, 0.3, 0.5), **_):
        super().__init__()
        self.output_range = nn.Parameter(torch.FloatTensor([6]), requires_grad=False)
        self.output_shift = nn.Parameter(torch.FloatTensor([-3]), requires_grad=False)
        add_subnets(self, dims, hidden_dims, dropouts, text_out)
        self.post_fusion_dropout = nn.Dropout(dropouts[3])
        fused = (text_out + 1) * (hidden_dims[2] + 1) * (hidden_dims[1] + 1)
        self.post_fusion_layer_1 = nn.Linear(fused, post_fusion_dim)
        self.post_fusion_layer_2 = nn.Linear(post_fusion_dim, post_fusion_dim)
        self.post_fusion_layer_3 = nn.Linear(post_fusion_dim, 1)

    def forward(self, text, audio, vision):
        return self.fuse(*self.encode(text, audio, vision))

    def encode(self, text, audio, vision):
        """z_t, z_a, z_v: the sub-networks' outputs with the constant 1 prepended (where MS-Mix mixes)."""
        t, a, v = subnet_outputs(self, text, audio, vision)
        ones = torch.ones(t.shape[0], 1, dtype=t.dtype, device=t.device)
        return torch.cat([ones, t], 1), torch.cat([ones, a], 1), torch.cat([ones, v], 1)

    def fuse(self, t, a, v):
        # MMSA's two bmm: audio slowest, text fastest
        f = torch.bmm(a.unsqueeze(2), v.unsqueeze(1)).view(-1, a.shape[1] * v.shape[1], 1)
        f = torch.bmm(f, t.unsqueeze(1)).view(t.shape[0], -1)
        h = self.post_fusion_dropout(f)
        h = F.relu(self.post_fusion_layer_1(h))
        h = F.relu(self.post_fusion_layer_2(h))
        return torch.sigmoid(self.post_fusion_layer_3(h)) * self.output_range + self.output_shift


class LMF(nn.Module):
    def __init__(self, dims=FEATURE_DIMS, hidden_dims=(128, 16, 128), rank=3, dropouts=(0.3, 0.3, 0.3, 0.3), **_):
        super().__init__()
        text_out = hidden_dims[0] // 2
        self.audio_factor = nn.Parameter(torch.empty(rank, hidden_dims[1] + 1, 1))
        self.video_factor = nn.Parameter(torch.empty(rank, hidden_dims[2] + 1, 1))
        self.text_factor = nn.Parameter(torch.empty(rank, text_out + 1, 1))
        self.fusion_weights = nn.Parameter(torch.empty(1, rank))
        self.fusion_bias = nn.Parameter(torch.zeros(1, 1))
        for p in (self.audio_factor, self.video_factor, self.text_factor, self.fusion_weights):
            nn.init.xavier_normal_(p)
        add_subnets(self, dims, hidden_dims, dropouts, text_out)
        self.post_fusion_dropout = nn.Dropout(dropouts[3])  # built, never applied (as MMSA)

    def forward(self, text, audio, vision):
        t, a, v = subnet_outputs(self, text, audio, vision)
        ones = torch.ones(t.shape[0], 1, dtype=t.dtype, device=t.device)
        a, v, t = torch.cat([ones, a], 1), torch.cat([ones, v], 1), torch.cat([ones, t], 1)
        zy = torch.matmul(a, self.audio_factor) * torch.matmul(v, self.video_factor) * torch.matmul(t, self.text_factor)
        out = torch.matmul(self.fusion_weights, zy.permute(1, 0, 2)).squeeze(-1) + self.fusion_bias  # [B, 1]
        return out.view(-1, 1)


# ---------------------------------------------------------------- MulT (time-major, as MMSA)

def xavier_linear(n_in, n_out):
    m = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(m.weight)
    nn.init.constant_(m.bias, 0.0)
    return m


class MultiheadAttention(nn.Module):
    """MMSA's: packed in_proj_weight / in_proj_bias, out_proj; inputs [T, B, E]."""

    def __init__(self, dim, heads, attn_dropout):
        super().__init__()
        self.dim, self.heads, self.attn_dropout = dim, heads, attn_dropout
        self.head_dim = dim // heads
        self.scaling = self.head_dim ** -0.5
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.constant_(self.out_proj.bias, 0.0)

    def _proj(self, x, start, end):
        return F.linear(x, self.in_proj_weight[start:end], self.in_proj_bias[start:end])

    def forward(self, query, key, value, attn_mask=None):
        lq, bsz, e = query.shape
        if query.data_ptr() == key.data_ptr() == value.data_ptr():
            q, k, v = self._proj(query, 0, 3 * e).chunk(3, dim=-1)
        else:
            q, k, v = self._proj(query, 0, e), self._proj(key, e, 2 * e), self._proj(value, 2 * e, 3 * e)
        q = q * self.scaling
        bh = bsz * self.heads
        q = q.contiguous().view(lq, bh, self.head_dim).transpose(0, 1)
        k = k.contiguous().view(-1, bh, self.head_dim).transpose(0, 1)
        v = v.contiguous().view(-1, bh, self.head_dim).transpose(0, 1)
        w = torch.bmm(q, k.transpose(1, 2))                         # [B*h, Lq, Lk]
        if attn_mask is not None:
            w = w + attn_mask.unsqueeze(0)
        w = F.dropout(F.softmax(w.float(), dim=-1).type_as(w), p=self.attn_dropout, training=self.training)
        out = torch.bmm(w, v).transpose(0, 1).contiguous().view(lq, bsz, e)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, attn_dropout, relu_dropout, res_dropout, attn_mask):
        super().__init__()
        self.self_attn = MultiheadAttention(dim, heads, attn_dropout)
        self.relu_dropout, self.res_dropout, self.attn_mask = relu_dropout, res_dropout, attn_mask
        self.fc1 = xavier_linear(dim, 4 * dim)
        self.fc2 = xavier_linear(4 * dim, dim)
        self.layer_norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])

    def forward(self, x, x_k=None, x_v=None):
        residual = x
        x = self.layer_norms[0](x)
        mask = None
        if x_k is None:
            if self.attn_mask:
                mask = future_mask(x.shape[0], x.shape[0], x.device)
            x = self.self_attn(x, x, x, mask)
        else:
            x_k, x_v = self.layer_norms[0](x_k), self.layer_norms[0](x_v)
            if self.attn_mask:
                mask = future_mask(x.shape[0], x_k.shape[0], x.device)
            x = self.self_attn(x, x_k, x_v, mask)
        x = residual + F.dropout(x, p=self.res_dropout, training=self.training)
        residual = x
        x = F.dropout(F.relu(self.fc1(self.layer_norms[1](x))), p=self.relu_dropout, training=self.training)
        return residual + F.dropout(self.fc2(x), p=self.res_dropout, training=self.training)


def future_mask(lq, lk, device):
    return torch.triu(torch.full((lq, lk), float("-inf"), device=device), 1 + abs(lk - lq))


class TransformerEncoder(nn.Module):
    def __init__(self, dim, heads, layers, attn_dropout, relu_dropout, res_dropout, embed_dropout, attn_mask):
        super().__init__()
        self.embed_dropout, self.embed_scale = embed_dropout, math.sqrt(dim)
        self.layers = nn.ModuleList(
            [EncoderLayer(dim, heads, attn_dropout, relu_dropout, res_dropout, attn_mask) for _ in range(layers)])
        self.register_buffer("version", torch.Tensor([2]))
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x_in, x_in_k=None, x_in_v=None):
        x = F.dropout(self.embed_scale * x_in, p=self.embed_dropout, training=self.training)
        x_k = x_v = None
        if x_in_k is not None:
            x_k = F.dropout(self.embed_scale * x_in_k, p=self.embed_dropout, training=self.training)
            x_v = F.dropout(self.embed_scale * x_in_v, p=self.embed_dropout, training=self.training)
        for layer in self.layers:
            x = layer(x, x_k, x_v)
        return self.layer_norm(x)


class MulT(nn.Module):
    def __init__(self, dims=FEATURE_DIMS, d=50, heads=10, nlevels=4, kernels=(5, 5, 5), text_dropout=0.5,
                 output_dropout=0.5, attn_dropout=0.3, attn_dropout_a=0.2, attn_dropout_v=0.0, embed_dropout=0.2,
                 res_dropout=0.0, relu_dropout=0.0, attn_mask=True, **_):
        super().__init__()
        self.dims, self.d, self.text_dropout, self.output_dropout = dims, d, text_dropout, output_dropout
        self.proj_l = nn.Conv1d(dims[0], d, kernel_size=kernels[0], padding=0, bias=False)
        self.proj_a = nn.Conv1d(dims[1], d, kernel_size=kernels[1], padding=0, bias=False)
        self.proj_v = nn.Conv1d(dims[2], d, kernel_size=kernels[2], padding=0, bias=False)

        def encoder(dim, layers, attn):
            return TransformerEncoder(dim, heads, layers, attn, relu_dropout, res_dropout, embed_dropout, attn_mask)

        # the attention dropout follows the key modality (MMSA's get_network)
        self.trans_l_with_a = encoder(d, nlevels, attn_dropout_a)
        self.trans_l_with_v = encoder(d, nlevels, attn_dropout_v)
        self.trans_a_with_l = encoder(d, nlevels, attn_dropout)
        self.trans_a_with_v = encoder(d, nlevels, attn_dropout_v)
        self.trans_v_with_l = encoder(d, nlevels, attn_dropout)
        self.trans_v_with_a = encoder(d, nlevels, attn_dropout_a)
        self.trans_l_mem = encoder(2 * d, max(nlevels, 3), attn_dropout)
        self.trans_a_mem = encoder(2 * d, max(nlevels, 3), attn_dropout)
        self.trans_v_mem = encoder(2 * d, max(nlevels, 3), attn_dropout)
        self.proj1 = nn.Linear(6 * d, 6 * d)
        self.proj2 = nn.Linear(6 * d, 6 * d)
        self.out_layer = nn.Linear(6 * d, 1)

    def forward(self, text, audio, vision):
        x_l = F.dropout(text.transpose(1, 2), p=self.text_dropout, training=self.training)
        x_a, x_v = audio.transpose(1, 2), vision.transpose(1, 2)
        p_l = (x_l if self.dims[0] == self.d else self.proj_l(x_l)).permute(2, 0, 1)  # [T, B, d]
        p_a = (x_a if self.dims[1] == self.d else self.proj_a(x_a)).permute(2, 0, 1)
        p_v = (x_v if self.dims[2] == self.d else self.proj_v(x_v)).permute(2, 0, 1)
        h_l = self.trans_l_mem(torch.cat([self.trans_l_with_a(p_l, p_a, p_a), self.trans_l_with_v(p_l, p_v, p_v)], 2))
        h_a = self.trans_a_mem(torch.cat([self.trans_a_with_l(p_a, p_l, p_l), self.trans_a_with_v(p_a, p_v, p_v)], 2))
        h_v = self.trans_v_mem(torch.cat([self.trans_v_with_l(p_v, p_l, p_l), self.trans_v_with_a(p_v, p_a, p_a)], 2))
        last = torch.cat([h_l[-1], h_a[-1], h_v[-1]], dim=1)
        h = self.proj2(F.dropout(F.relu(self.proj1(last)), p=self.output_dropout, training=self.training)) + last
        return self.out_layer(h)


def almt(dims=FEATURE_DIMS, **_):
    return ALMT(dims, SEQ_LENGTHS)


def misa(dims=FEATURE_DIMS, **_):
    return MISA(dims)


def glomo(dims=FEATURE_DIMS, d=48, heads=16, layers=4, dropouts=(0.0,) * 6, **_):
    return GLoMo(dims, d, heads, layers, dropouts=dropouts)


MODELS = {"lf_dnn": LFDNN, "tfn": TFN, "lmf": LMF, "mult": MulT, "misa": misa, "almt": almt, "glomo": glomo}
SEQUENCE_MODELS = ("mult", "misa", "almt", "glomo")  # the others read audio / vision averaged over time
ALIGNED_MODELS = ("glomo",)  # word-aligned inputs: audio and vision as long as the text
AUX_MODELS = ("misa", "glomo")  # the loss adds the model's own (self.aux): MISA's regularisers, GLoMo's experts
MSE_MODELS = ("misa", "almt")  # their trainers' loss; the others' is L1


def build(name, dims=FEATURE_DIMS, **overrides):
    """The model at MOSI defaults (overrides replace keys), its optimizer as MMSA's trainer builds it."""
    cfg = dict(DEFAULTS[name], **overrides)
    model = MODELS[name](dims=dims, **cfg)
    params = list(model.parameters())
    if name == "tfn":  # MMSA: parameters()[2:], without output_range / output_shift
        groups = [{"params": params[2:]}]
    elif name == "lmf":  # MMSA: factors [:3] at factor_lr, sub-networks [5:]; fusion weights / bias left out
        groups = [{"params": params[:3], "lr": cfg["factor_lr"]}, {"params": params[5:]}]
    elif name == "glomo":  # no weight decay on biases (GLoMo's rule; msmix's names have no "LayerNorm.weight")
        named = list(model.named_parameters())
        groups = [{"params": [p for n, p in named if "bias" not in n]},
                  {"params": [p for n, p in named if "bias" in n], "weight_decay": 0.0}]
    else:
        groups = [{"params": params}]
    adam = torch.optim.AdamW if name in ("almt", "glomo") else torch.optim.Adam  # their trainers' AdamW
    optimizer = adam(groups, lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    return model, optimizer, cfg


def trainable_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_batch(name, batch, gen, device="cpu"):
    """Random inputs of MOSI's shapes; audio / vision time-averaged for the need_normalized backbones."""
    (lt, la, lv), (dt, da, dv) = SEQ_LENGTHS, FEATURE_DIMS
    if name not in SEQUENCE_MODELS:
        la = lv = 1
    elif name in ALIGNED_MODELS:
        la = lv = lt
    text = torch.randn(batch, lt, dt, generator=gen)
    audio = torch.randn(batch, la, da, generator=gen)
    vision = torch.randn(batch, lv, dv, generator=gen)
    labels = torch.rand(batch, 1, generator=gen) * 6 - 3
    return tuple(t.to(device) for t in (text, audio, vision, labels))


def bench(name, steps, warmup, batch=None, device="cpu", mix="none"):
    torch.manual_seed(1111)
    model, optimizer, cfg = build(name)
    twin = None
    if mix == "msmix":  # the intensity predictors train with the backbone (msmix_twin.py)
        with torch.no_grad():
            dims = [z.shape[1] for z in model.encode(*make_batch(name, 2, torch.Generator().manual_seed(0))[:3])]
        twin = MSMixTwin(dims).to(device)
        optimizer.add_param_group({"params": list(twin.parameters())})
    model.to(device)  # before the first step: Adam's state is created on the parameters' device
    batch = batch or cfg["batch_size"]
    clip = cfg.get("grad_clip", -1)
    criterion = nn.MSELoss() if name in MSE_MODELS else nn.L1Loss()
    gen = torch.Generator().manual_seed(1)
    batches = [make_batch(name, batch, gen, device) for _ in range(2)]
    # MISA's packed LSTMs: per-sample audio / vision lengths as synthetic:mosi draws them (kept on the host).
    lengths = [tuple(torch.randint(math.ceil(0.3 * t), t + 1, (batch,), generator=gen) for t in SEQ_LENGTHS[1:])
               for _ in batches] if name == "misa" else [() for _ in batches]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    model.train()
    wall, cpu = [], []
    for i in range(warmup + steps):
        text, audio, vision, labels = batches[i % len(batches)]
        extra = lengths[i % len(batches)]
        sync()
        w0, c0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad()
        if twin is None:
            loss = criterion(model(text, audio, vision, *extra), labels)
            if name in AUX_MODELS:
                loss = loss + model.aux  # MISA's regularisers, GLoMo's experts' loss, as their trainers add them
        else:
            loss = twin.loss(model, text, audio, vision, labels, gen)
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_value_([p for p in model.parameters() if p.requires_grad], clip)
        optimizer.step()
        loss.item()  # MMSA's trainer reads the loss each step; msmix bench waits for the GPU at each step's end
        sync()
        ms, cpu_ms = (time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3
        print(f"{name} step {i + 1}/{warmup + steps}: {ms:.1f} ms{' (warm-up)' if i < warmup else ''}",
              file=sys.stderr, flush=True)
        if i >= warmup:
            wall.append(ms)
            cpu.append(cpu_ms)
    return {"model": name, "mix": mix, "framework": "torch " + torch.__version__, "device": device,
            "threads": torch.get_num_threads(),
            "batch": batch, "steps": steps, "warmup": warmup, "ms_per_step": statistics.median(wall),
            "min_ms": min(wall), "max_ms": max(wall), "items_per_s": batch / (statistics.median(wall) / 1e3),
            "cpu_ms_per_step": statistics.median(cpu), "trainable_params": trainable_params(model),
            "expected_params": EXPECTED_PARAMS[name], "step_ms": wall}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", choices=sorted(MODELS), help="repeatable; default: all seven")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=0, help="0 = MMSA's MOSI batch size")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (FP32: TF32 off, as msmix's cuBLAS calls)")
    parser.add_argument("--params-only", action="store_true", help="check and print the parameter counts, no timing")
    parser.add_argument("--mix", default="none", choices=["none", "msmix"],
                        help="msmix: MS-Mix's step (msmix_twin.py; TFN only, the backbone with the encode/fuse split)")
    args = parser.parse_args(argv)
    if args.mix != "none" and any(m != "tfn" for m in args.model or ["lf_dnn"]):
        parser.error("--mix msmix has a PyTorch twin for tfn only (--model tfn)")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))  # as msmix's OpenMP
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    failed = False
    for name in args.model or ["lf_dnn", "tfn", "lmf", "mult", "misa", "almt", "glomo"]:
        torch.manual_seed(1111)
        count = trainable_params(build(name)[0])
        ok = count == EXPECTED_PARAMS[name]
        failed |= not ok
        print(f"{name}: {count:,} trainable parameters ({'= MMSA' if ok else f'MMSA has {EXPECTED_PARAMS[name]:,}'})",
              file=sys.stderr, flush=True)
        if ok and not args.params_only:
            print(json.dumps(bench(name, args.steps, args.warmup, args.batch, args.device, args.mix)), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
