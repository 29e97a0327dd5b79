"""Golden fixtures for msmix's sequence modules (tests/models/test_lstm.cpp, tests/models/test_attention.cpp),
from PyTorch 1.13: nn.LSTM (with packed sequences), nn.MultiheadAttention, nn.TransformerEncoderLayer.

Each case writes tests/golden/seq/<case>.json in the shared fixture layout (see tests/golden/golden.h)
    {"name": {"shape": [...], "data": [...]}}
with names
    x, query, key, value    the inputs (all require grad)
    lengths                 per-sample lengths (LSTM), as floats
    key_padding_mask        [B, S], 1 = padding (a bool mask in PyTorch)
    attn_mask.finite        the additive attention mask with its -inf entries replaced by 0 (JSON has no -inf)
    attn_mask.neg_inf       1 where the additive mask is -inf
    state.<name>            the module's parameters (PyTorch names), random so that every term matters
    <output>                the outputs: out (and h_n, c_n for the LSTM, weights for attention)
    w.<output>              fixed random weights: the loss is L = sum over outputs of sum(output * w.output)
    grad.<name>             dL/d(input) and dL/d(parameter)
Dropout is 0 everywhere and modules are in training mode (PyTorch's inference fast paths stay off).

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_seq_golden.py
"""
import json
import os

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seq")


def put(out, key, t):
    out[key] = {"shape": list(t.shape), "data": t.detach().double().reshape(-1).tolist()}


def randomize(module, scale):
    with torch.no_grad():
        for _, p in module.named_parameters():
            p.copy_(torch.randn_like(p) * scale)


def finish(name, out, module, inputs, outputs):
    """inputs, outputs: dicts name -> tensor. Backward of sum(output * w), then write everything."""
    for key, t in inputs.items():
        put(out, key, t)
    for key, p in module.named_parameters():
        put(out, "state." + key, p)
    loss = 0
    for key, y in outputs.items():
        w = torch.randn_like(y)
        loss = loss + (y * w).sum()
        put(out, key, y)
        put(out, "w." + key, w)
    loss.backward()
    for key, t in inputs.items():
        put(out, "grad." + key, t.grad)
    for key, p in module.named_parameters():
        put(out, "grad." + key, p.grad)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(out, f)
    print("wrote", name)


def lstm_case(name, T, B, lengths=None, **kwargs):
    lstm = nn.LSTM(batch_first=True, **kwargs)
    randomize(lstm, 0.5)
    x = torch.randn(B, T, kwargs["input_size"], requires_grad=True)
    out = {}
    if lengths is None:
        y, (h_n, c_n) = lstm(x)
    else:
        put(out, "lengths", torch.tensor(lengths, dtype=torch.float32))
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
        y, (h_n, c_n) = lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)
    finish(name, out, lstm, {"x": x}, {"out": y, "h_n": h_n, "c_n": c_n})


def causal_mask(L, S):
    """An additive float mask: small finite values, -inf above the diagonal."""
    finite = torch.randn(L, S) * 0.5
    neg_inf = torch.ones(L, S).triu(1)
    finite = finite * (1 - neg_inf)
    return finite, neg_inf, finite.masked_fill(neg_inf.bool(), float("-inf"))


def mha_case(name, B, L, S, E, heads, self_attention, padding=None, causal=False, shared_kv=False):
    mha = nn.MultiheadAttention(E, heads, batch_first=True)
    randomize(mha, 0.3)
    out = {}
    query = torch.randn(B, L, E, requires_grad=True)
    if self_attention:
        inputs = {"query": query}
        key = value = query
    elif shared_kv:
        key = value = torch.randn(B, S, E, requires_grad=True)
        inputs = {"query": query, "key": key}
    else:
        key = torch.randn(B, S, E, requires_grad=True)
        value = torch.randn(B, S, E, requires_grad=True)
        inputs = {"query": query, "key": key, "value": value}
    kpm = mask = None
    if padding is not None:
        kpm = torch.zeros(B, S)
        for b, n in enumerate(padding):
            kpm[b, S - n:] = 1
        put(out, "key_padding_mask", kpm)
        kpm = kpm.bool()
    if causal:
        finite, neg_inf, mask = causal_mask(L, S)
        put(out, "attn_mask.finite", finite)
        put(out, "attn_mask.neg_inf", neg_inf)
    y, weights = mha(query, key, value, key_padding_mask=kpm, attn_mask=mask, need_weights=True)
    finish(name, out, mha, inputs, {"out": y, "weights": weights})


def transformer_case(name, B, T, norm_first, activation, padding=None, causal=False):
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation=activation,
                                       batch_first=True, norm_first=norm_first)
    randomize(layer, 0.3)
    out = {}
    x = torch.randn(B, T, 8, requires_grad=True)
    kpm = mask = None
    if padding is not None:
        kpm = torch.zeros(B, T)
        for b, n in enumerate(padding):
            kpm[b, T - n:] = 1
        put(out, "key_padding_mask", kpm)
        kpm = kpm.bool()
    if causal:
        finite, neg_inf, mask = causal_mask(T, T)
        put(out, "attn_mask.finite", finite)
        put(out, "attn_mask.neg_inf", neg_inf)
    y = layer(x, src_mask=mask, src_key_padding_mask=kpm)
    finish(name, out, layer, {"x": x}, {"out": y})


def main():
    torch.manual_seed(0)
    lstm_case("lstm_2layer", T=5, B=3, input_size=4, hidden_size=3, num_layers=2)
    # lengths unsorted, the longest shorter than T (outputs padded to T), one sample of length 1
    lstm_case("lstm_bidir_lengths", T=6, B=4, lengths=[4, 1, 5, 3], input_size=4, hidden_size=3, num_layers=2,
              bidirectional=True)
    lstm_case("lstm_bidir_nobias", T=4, B=2, input_size=3, hidden_size=2, num_layers=1, bidirectional=True,
              bias=False)
    mha_case("mha_padding", B=2, L=5, S=5, E=8, heads=2, self_attention=True, padding=[0, 2])
    mha_case("mha_causal", B=2, L=5, S=5, E=8, heads=2, self_attention=True, causal=True)
    mha_case("mha_cross", B=2, L=4, S=7, E=8, heads=4, self_attention=False, padding=[3, 1])
    mha_case("mha_cross_shared_kv", B=2, L=3, S=6, E=6, heads=3, self_attention=False, shared_kv=True)
    transformer_case("transformer_post_norm", B=2, T=5, norm_first=False, activation="relu", padding=[0, 2])
    transformer_case("transformer_pre_norm", B=2, T=5, norm_first=True, activation="gelu", causal=True)


if __name__ == "__main__":
    main()
