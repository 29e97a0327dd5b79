"""Golden fixtures for msmix's MMSA backbones LF_DNN, TFN and LMF (tests/models/test_backbones.cpp).

The PyTorch modules below are written from MMSA v2.2.1's architecture (models/singleTask/{LF_DNN,TFN,LMF}.py,
models/subNets/FeatureNets.py) with the same parameter and buffer names, at tiny sizes:
    text [B=4, L=5, 6], audio [B, 1, 4], vision [B, 1, 5] (time-averaged, as MMSA's need_normalized),
    hidden_dims (text, audio, video) = (6, 3, 4), text_out 3, post_fusion_dim 5, LMF rank 2 (text_out 6 // 2).
All dropouts are 0, so train mode differs from eval only by BatchNorm (batch statistics, running stats
updated). Each case writes tests/golden/backbones/<model>_<mode>.json in the layout of tests/golden/golden.h:
    text, audio, vision   the inputs
    state.<name>          the model's state dict before the forward (random BatchNorm stats and affine)
    z.t, z.a, z.v         the representations MS-Mix mixes (sub-network outputs; TFN / LMF with the 1 in front)
    out                   the prediction [B, 1]
    w                     fixed random weights: the loss is L = sum(out * w)
    grad.<name>           dL/d(parameter) for every parameter that requires grad, and dL/d(text, audio, vision)
    state_after.<name>    buffers after the forward (train mode: updated running stats)
Floats are written with 9 significant digits (exact float32 round trip) to keep the files small.

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_backbone_golden.py
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmsa_subnets import SubNet, TextSubNet

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backbones")

B, L = 4, 5
TEXT_IN, AUDIO_IN, VIDEO_IN = 6, 4, 5
TEXT_HIDDEN, AUDIO_HIDDEN, VIDEO_HIDDEN = 6, 3, 4
TEXT_OUT, POST_FUSION_DIM, RANK = 3, 5, 2


def subnets(module, text_out):
    module.audio_subnet = SubNet(AUDIO_IN, AUDIO_HIDDEN)
    module.video_subnet = SubNet(VIDEO_IN, VIDEO_HIDDEN)
    module.text_subnet = TextSubNet(TEXT_IN, TEXT_HIDDEN, text_out)


def with_one(h):
    return torch.cat([torch.ones(h.shape[0], 1), h], dim=1)


def encode(module, text, audio, vision, add_one):
    a = module.audio_subnet(audio.squeeze(1))
    v = module.video_subnet(vision.squeeze(1))
    t = module.text_subnet(text)
    return (with_one(t), with_one(a), with_one(v)) if add_one else (t, a, v)


class LFDNN(nn.Module):
    def __init__(self):
        super().__init__()
        subnets(self, TEXT_OUT)
        self.post_fusion_dropout = nn.Dropout(0.0)
        self.post_fusion_layer_1 = nn.Linear(TEXT_OUT + VIDEO_HIDDEN + AUDIO_HIDDEN, POST_FUSION_DIM)
        self.post_fusion_layer_2 = nn.Linear(POST_FUSION_DIM, POST_FUSION_DIM)
        self.post_fusion_layer_3 = nn.Linear(POST_FUSION_DIM, 1)

    def forward(self, text, audio, vision):
        t, a, v = encode(self, text, audio, vision, add_one=False)
        h = self.post_fusion_dropout(torch.cat([a, v, t], dim=-1))
        h = F.relu(self.post_fusion_layer_1(h))
        h = F.relu(self.post_fusion_layer_2(h))
        return (t, a, v), self.post_fusion_layer_3(h)


class TFN(nn.Module):
    def __init__(self):
        super().__init__()
        self.output_range = nn.Parameter(torch.tensor([6.0]), requires_grad=False)
        self.output_shift = nn.Parameter(torch.tensor([-3.0]), requires_grad=False)
        subnets(self, TEXT_OUT)
        self.post_fusion_dropout = nn.Dropout(0.0)
        fused = (TEXT_OUT + 1) * (VIDEO_HIDDEN + 1) * (AUDIO_HIDDEN + 1)
        self.post_fusion_layer_1 = nn.Linear(fused, POST_FUSION_DIM)
        self.post_fusion_layer_2 = nn.Linear(POST_FUSION_DIM, POST_FUSION_DIM)
        self.post_fusion_layer_3 = nn.Linear(POST_FUSION_DIM, 1)

    def forward(self, text, audio, vision):
        t, a, v = encode(self, text, audio, vision, add_one=True)
        # f[b, i, j, k] = a[b, i] v[b, j] t[b, k], flattened row-major (audio slowest, text fastest)
        fusion = torch.einsum("bi,bj,bk->bijk", a, v, t).reshape(a.shape[0], -1)
        h = self.post_fusion_dropout(fusion)
        h = F.relu(self.post_fusion_layer_1(h))
        h = F.relu(self.post_fusion_layer_2(h))
        y = torch.sigmoid(self.post_fusion_layer_3(h))
        return (t, a, v), y * self.output_range + self.output_shift


class LMF(nn.Module):
    def __init__(self):
        super().__init__()
        text_out = TEXT_HIDDEN // 2
        self.audio_factor = nn.Parameter(torch.empty(RANK, AUDIO_HIDDEN + 1, 1))
        self.video_factor = nn.Parameter(torch.empty(RANK, VIDEO_HIDDEN + 1, 1))
        self.text_factor = nn.Parameter(torch.empty(RANK, text_out + 1, 1))
        self.fusion_weights = nn.Parameter(torch.empty(1, RANK))
        self.fusion_bias = nn.Parameter(torch.empty(1, 1))
        for p in (self.audio_factor, self.video_factor, self.text_factor, self.fusion_weights):
            nn.init.xavier_normal_(p)
        nn.init.normal_(self.fusion_bias, 0.0, 0.5)  # MMSA starts it at 0; random here to exercise it
        subnets(self, text_out)
        self.post_fusion_dropout = nn.Dropout(0.0)  # built, never applied (as MMSA)

    def forward(self, text, audio, vision):
        t, a, v = encode(self, text, audio, vision, add_one=True)
        zy = (a @ self.audio_factor) * (v @ self.video_factor) * (t @ self.text_factor)  # [r, B, 1]
        y = torch.einsum("r,rbo->bo", self.fusion_weights[0], zy) + self.fusion_bias
        return (t, a, v), y


def fmt(t):
    return {"shape": list(t.shape), "data": [float("%.9g" % x) for x in t.detach().double().reshape(-1).tolist()]}


def randomize_norms(model):
    """BatchNorm affine and running stats away from their defaults, so eval mode exercises them."""
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.copy_(1 + 0.3 * torch.randn_like(m.weight))
                m.bias.copy_(0.3 * torch.randn_like(m.bias))
                m.running_mean.copy_(0.5 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
                m.num_batches_tracked.fill_(3)


def write_case(name, model, train):
    model.train(train)
    text = torch.randn(B, L, TEXT_IN).requires_grad_()
    audio = torch.randn(B, 1, AUDIO_IN).requires_grad_()
    vision = torch.randn(B, 1, VIDEO_IN).requires_grad_()
    out = {"text": fmt(text), "audio": fmt(audio), "vision": fmt(vision)}
    for key, t in model.state_dict().items():
        out["state." + key] = fmt(t)
    (t, a, v), y = model(text, audio, vision)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    out.update({"z.t": fmt(t), "z.a": fmt(a), "z.v": fmt(v), "out": fmt(y), "w": fmt(w)})
    for key, x in (("text", text), ("audio", audio), ("vision", vision)):
        out["grad." + key] = fmt(x.grad)
    for key, p in model.named_parameters():
        if p.requires_grad:
            out["grad." + key] = fmt(p.grad)
    for key, b in model.named_buffers():
        out["state_after." + key] = fmt(b)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))


def main():
    torch.manual_seed(1111)
    for name, cls in (("lf_dnn", LFDNN), ("tfn", TFN), ("lmf", LMF)):
        for mode in ("eval", "train"):
            model = cls()
            randomize_norms(model)
            write_case(f"{name}_{mode}", model, mode == "train")


if __name__ == "__main__":
    main()
