"""A PyTorch twin of MISA as shared/spec/mmsa.md and MMSA v2.2.1 build it (models/singleTask/MISA.py and the
losses of trains/singleTask/MISA.py), written here from that description with MMSA's module names, fed text
STATES [B, L, Dt] (what BERT would give; msmix's models/misa.h with use_bert=false, or encode_states):
  - text: mean of the states over the mask's tokens (no mask: over all L);
  - audio, vision: packed BiLSTM -> LayerNorm -> packed BiLSTM (nn.LSTM over pack_padded_sequence, the width of
    each the input width), final states [h1 fwd, h2 fwd, h1 bwd, h2 bwd];
  - project_m (Linear, ReLU, LayerNorm), private_m and shared (Linear, Sigmoid), recon_m (Linear);
  - six tokens [p_t, p_v, p_a, s_t, s_v, s_a] through nn.TransformerEncoder(nn.TransformerEncoderLayer(d, heads))
    (sequence first, as MMSA), concat, fusion (Linear, Dropout, ReLU, Linear);
  - the losses: diff (soft orthogonality), CMD with 5 moments, reconstruction MSE, weighted as MMSA's trainer.
sp_discriminator and tlayer_norm are registered, unused, as in MMSA.
Shared by tests/golden/make_misa_golden.py (the fixtures) and bench/torch/bench_models.py.
"""
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def named_sequential(**modules):
    seq = nn.Sequential()
    for name, module in modules.items():
        seq.add_module(name, module)
    return seq


def diff_loss(x1, x2):
    """mean((X1^T X2)^2) over rows centred on the batch and scaled to unit norm (the norm a constant)."""
    def unit(x):
        x = x - x.mean(dim=0, keepdim=True)
        return x / (x.norm(p=2, dim=1, keepdim=True).detach() + 1e-6)
    return (unit(x1).t() @ unit(x2)).pow(2).mean()


def cmd(x1, x2, moments):
    """||mean x1 - mean x2|| + sum_k=2..moments ||E (x1 - m1)^k - E (x2 - m2)^k||."""
    m1, m2 = x1.mean(0), x2.mean(0)
    total = ((m1 - m2) ** 2).sum().sqrt()
    for k in range(2, moments + 1):
        total = total + (((x1 - m1) ** k).mean(0) - ((x2 - m2) ** k).mean(0)).pow(2).sum().sqrt()
    return total


class MISA(nn.Module):
    def __init__(self, dims, hidden=128, heads=2, ff=2048, dropout=0.2, transformer_dropout=0.1,
                 weights=(0.1, 0.3, 1.0), moments=5):
        super().__init__()
        dt, da, dv = dims
        self.weights, self.moments = weights, moments
        self.vrnn1 = nn.LSTM(dv, dv, bidirectional=True)
        self.vrnn2 = nn.LSTM(2 * dv, dv, bidirectional=True)
        self.arnn1 = nn.LSTM(da, da, bidirectional=True)
        self.arnn2 = nn.LSTM(2 * da, da, bidirectional=True)
        for m, width in (("t", dt), ("v", 4 * dv), ("a", 4 * da)):
            setattr(self, "project_" + m, named_sequential(**{
                "project_" + m: nn.Linear(width, hidden), "project_%s_activation" % m: nn.ReLU(),
                "project_%s_layer_norm" % m: nn.LayerNorm(hidden)}))
        for m, suffix in (("t", "1"), ("v", "1"), ("a", "3")):
            setattr(self, "private_" + m, named_sequential(**{
                "private_%s_%s" % (m, suffix): nn.Linear(hidden, hidden),
                "private_%s_activation_%s" % (m, suffix): nn.Sigmoid()}))
        self.shared = named_sequential(shared_1=nn.Linear(hidden, hidden), shared_activation_1=nn.Sigmoid())
        for m in "tva":
            setattr(self, "recon_" + m, named_sequential(**{"recon_%s_1" % m: nn.Linear(hidden, hidden)}))
        self.sp_discriminator = named_sequential(sp_discriminator_layer_1=nn.Linear(hidden, 4))
        self.fusion = named_sequential(fusion_layer_1=nn.Linear(6 * hidden, 3 * hidden),
                                       fusion_layer_1_dropout=nn.Dropout(dropout),
                                       fusion_layer_1_activation=nn.ReLU(),
                                       fusion_layer_3=nn.Linear(3 * hidden, 1))
        self.tlayer_norm = nn.LayerNorm(2 * dt)
        self.vlayer_norm = nn.LayerNorm(2 * dv)
        self.alayer_norm = nn.LayerNorm(2 * da)
        layer = nn.TransformerEncoderLayer(d_model=hidden, nhead=heads, dim_feedforward=ff,
                                           dropout=transformer_dropout)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=1)

    @staticmethod
    def utterance(x, lengths, rnn1, norm, rnn2):
        """x [B, T, D], lengths [B] -> [B, 4 H] from the two BiLSTMs' final states."""
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out1, (h1, _) = rnn1(packed)
        padded, _ = pad_packed_sequence(out1, batch_first=True)
        packed = pack_padded_sequence(norm(padded), lengths, batch_first=True, enforce_sorted=False)
        _, (h2, _) = rnn2(packed)
        return torch.cat((h1, h2), dim=2).permute(1, 0, 2).reshape(x.shape[0], -1)

    def encode(self, text, audio, vision, audio_lengths, vision_lengths, text_mask=None):
        if text_mask is None:
            u_t = text.mean(dim=1)
        else:
            u_t = (text * text_mask.unsqueeze(2)).sum(dim=1) / text_mask.sum(dim=1, keepdim=True)
        u_a = self.utterance(audio, audio_lengths, self.arnn1, self.alayer_norm, self.arnn2)
        u_v = self.utterance(vision, vision_lengths, self.vrnn1, self.vlayer_norm, self.vrnn2)
        return self.project_t(u_t), self.project_a(u_a), self.project_v(u_v)

    def fuse(self, u_t, u_a, u_v, original_rows=None):
        """-> prediction [B, 1], the weighted regularisers of the first original_rows rows, and the three."""
        p_t, p_v, p_a = self.private_t(u_t), self.private_v(u_v), self.private_a(u_a)
        s_t, s_v, s_a = self.shared(u_t), self.shared(u_v), self.shared(u_a)
        h = self.transformer_encoder(torch.stack((p_t, p_v, p_a, s_t, s_v, s_a), dim=0))
        y = self.fusion(torch.cat(tuple(h), dim=1))
        n = original_rows or u_t.shape[0]
        p_t, p_v, p_a, s_t, s_v, s_a, u_t, u_a, u_v = (x[:n] for x in (p_t, p_v, p_a, s_t, s_v, s_a, u_t, u_a, u_v))
        diff = (diff_loss(p_t, s_t) + diff_loss(p_v, s_v) + diff_loss(p_a, s_a) + diff_loss(p_a, p_t) +
                diff_loss(p_a, p_v) + diff_loss(p_t, p_v))
        sim = (cmd(s_t, s_v, self.moments) + cmd(s_t, s_a, self.moments) + cmd(s_a, s_v, self.moments)) / 3.0
        mse = lambda a, b: ((a - b) ** 2).mean()
        recon = (mse(self.recon_t(p_t + s_t), u_t) + mse(self.recon_v(p_v + s_v), u_v) +
                 mse(self.recon_a(p_a + s_a), u_a)) / 3.0
        wd, ws, wr = self.weights
        return y, wd * diff + ws * sim + wr * recon, (diff, sim, recon)

    def forward(self, text, audio, vision, audio_lengths, vision_lengths):
        """The prediction; the weighted regularisers are left in self.aux (as MMSA's model leaves its vectors
        for the trainer's losses)."""
        y, self.aux, _ = self.fuse(*self.encode(text, audio, vision, audio_lengths, vision_lengths))
        return y
