"""PyTorch twin of msmix's MS-Mix training step, for timing (bench_models.py --mix msmix): the same work per
step as msmix's mixer (../shared/spec/msmix.md; msmix/mixing.cpp, sample_selection.cpp, intensity_predictor.cpp,
alignment_loss.cpp), written from the spec, not a numerical match (its own random draws).

Per batch of B: the backbone's encoder gives z_t, z_a, z_v; SASS picks B pairs from the cosine similarity
averaged over the modalities (read back to the host, as msmix does); one intensity predictor per modality
(Linear(d, 3d) attention over the sample's tokens, LayerNorm, mean, Linear(d, 1), 3 tanh) gives the ratios
with a Beta(2, 2) draw per pair; the fused model runs on the B originals and the B mixed; the loss is the task
loss + 0.7 * the mixed loss + 0.5 * the alignment loss (KL of softmaxes across the batch, x1000 / B).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

DELTA, ALPHA, MIX_WEIGHT, SAL_WEIGHT, SAL_SCALE, HEADS = 0.4, 2.0, 0.7, 0.5, 3.0, 4


class IntensityPredictor(nn.Module):
    """I = 3 tanh(Linear(mean_tokens(LN(x + attention(x))))) over x [B, T, d] (d zero-padded to HEADS's multiple)."""

    def __init__(self, d):
        super().__init__()
        self.reduce = nn.Linear(d, 1024) if d > 2000 else None
        width = 1024 if d > 2000 else d
        self.padded = (width + HEADS - 1) // HEADS * HEADS
        self.qkv_proj = nn.Linear(self.padded, 3 * self.padded)
        self.norm1 = nn.LayerNorm(self.padded)
        self.output_proj = nn.Linear(self.padded, 1)

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(1)  # a vector: one token
        if self.reduce is not None:
            x = self.reduce(x)
        B, T, d = x.shape
        if self.padded > d:
            x = torch.cat([x, x.new_zeros(B, T, self.padded - d)], 2)
        heads = lambda t: t.reshape(B, T, HEADS, -1).permute(0, 2, 1, 3)
        q, k, v = (heads(t) for t in self.qkv_proj(x).chunk(3, dim=-1))
        attn = torch.softmax(q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5), dim=-1) @ v
        h = self.norm1(x + attn.permute(0, 2, 1, 3).reshape(B, T, self.padded)).mean(1)
        return 3.0 * torch.tanh(self.output_proj(h))  # [B, 1]


def select_pairs(zs, gen):
    """SASS: B ordered pairs (i, j), i != j, from the min-max normalised mean cosine similarity (on the host)."""
    B = zs[0].shape[0]
    with torch.no_grad():
        s = sum(F.normalize(z.reshape(B, -1), dim=1) @ F.normalize(z.reshape(B, -1), dim=1).t() for z in zs) / 3
        s = s.cpu()
    off = ~torch.eye(B, dtype=torch.bool)
    lo, hi = s[off].min(), s[off].max()
    s = ((s - lo) / (hi - lo + 1e-12)) * off
    cand = (s > DELTA).nonzero()
    if len(cand) < B:  # the 2B largest of the strict upper triangle
        iu = torch.triu_indices(B, B, 1)
        top = s[iu[0], iu[1]].topk(min(2 * B, iu.shape[1])).indices
        cand = iu[:, top].t()
    pick = torch.randperm(len(cand), generator=gen)[:B]
    if len(pick) < B:
        pick = torch.randint(len(cand), (B,), generator=gen)
    return cand[pick, 0], cand[pick, 1]


class MSMixTwin(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.predictors = nn.ModuleList(IntensityPredictor(d) for d in dims)

    def loss(self, model, text, audio, vision, labels, gen):
        """The step's total loss: model.encode -> mix -> model.fuse on 2B rows."""
        zs = model.encode(text, audio, vision)
        B = labels.shape[0]
        i, j = (t.to(labels.device) for t in select_pairs(zs, gen))
        intensity = [p(z) for p, z in zip(self.predictors, zs)]  # [B, 1] each
        base = torch.distributions.Beta(ALPHA, ALPHA).sample((B, 1)).to(labels.device)
        lambdas = []
        for w in (m.abs() for m in intensity):
            w = (w - w.min()) / (w.max() - w.min() + 1e-8)
            lambdas.append((base + (w[i] + 1e-8) / (w[i] + w[j] + 2e-8)) / 2)
        mixed = []
        for lam, z in zip(lambdas, zs):
            lam = lam.view(B, *([1] * (z.dim() - 1)))  # [B, 1] or [B, 1, 1]: one ratio per pair
            mixed.append(lam * z[i] + (1 - lam) * z[j])
        lam_label = sum(lambdas) / 3
        out = model.fuse(*(torch.cat([z, m], 0) for z, m in zip(zs, mixed)))
        pred, mixed_pred = out[:B], out[B:]
        task = F.l1_loss(pred, labels)
        mix = (lam_label * (mixed_pred - labels[i]) ** 2 + (1 - lam_label) * (mixed_pred - labels[j]) ** 2).mean()
        q = torch.softmax(labels.abs().view(-1) / SAL_SCALE, 0) + 1e-8
        sal = sum((q * (q.log() - (torch.softmax(m.abs().view(-1) / SAL_SCALE, 0) + 1e-8).log())).sum()
                  for m in intensity) * 1000 / B
        return task + MIX_WEIGHT * mix + SAL_WEIGHT * sal
