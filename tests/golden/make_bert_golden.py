"""Golden fixture for msmix's BERT encoder (tests/models/test_bert.cpp).

A PyTorch twin of BERT's encoder as Hugging Face's BertModel computes it (post-norm layers, exact GELU, LayerNorm
eps 1e-12, padded keys masked out, word embedding row 0 as padding_idx), written here from that architecture
with Hugging Face's parameter names. Tiny sizes: vocab 20, hidden 8, 2 layers of 2 heads, intermediate 12,
10 positions, 2 token types; a batch of 3 samples of 6 tokens with 6, 4 and 2 real tokens (the rest padding:
id 0, mask 0) and both segment ids. Dropout 0 (eval); the fixture is computed in float64 from float32 weights
and inputs, like tests/golden/make_almt_golden.py, whose weight formula this shares:
parameter p, element i = offset + amplitude sin(1 + 0.731 i + 1.913 p + 0.05 ((i * i) mod 997)), amplitude
1 / sqrt(last dim) for rank >= 2, else 0.2, offset 1 for LayerNorm weights.
Written to tests/golden/bert/bert.json (layout of tests/golden/golden.h):
    text_bert            [B, 3, L] float rows: ids, mask, segments (MMSA's layout)
    out                  the last hidden states [B, L, H] (padded positions included, as BERT computes them)
    w                    fixed random weights: the loss is L = sum(out * w)
    grad.<name>          dL/d(parameter) in full for every parameter
Numbers are written with 6 significant digits; the test compares at rtol 1e-4.

Run with Debian's python (torch 1.13):  /usr/bin/python3 tests/golden/make_bert_golden.py
"""
import json
import os

import torch
import torch.nn as nn

from fixture_io import fmt, rounded, write_fixture
from make_almt_golden import formula_state

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bert")
VOCAB, HIDDEN, LAYERS, HEADS, INTERMEDIATE, POSITIONS, TYPES = 20, 8, 2, 2, 12, 10, 2
B, L = 3, 6
LENGTHS = (6, 4, 2)


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN, padding_idx=0)
        self.position_embeddings = nn.Embedding(POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(TYPES, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, ids, segments):
        positions = torch.arange(ids.shape[1])
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions)
                              + self.token_type_embeddings(segments))


class Dense(nn.Module):
    """A module holding `dense` (and a LayerNorm when asked), as Hugging Face nests them."""

    def __init__(self, n_in, n_out, norm):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        if norm:
            self.LayerNorm = nn.LayerNorm(n_out, eps=1e-12)


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))

    def forward(self, x, additive_mask):
        b, n, h = x.shape
        split = lambda t: t.reshape(b, n, HEADS, h // HEADS).transpose(1, 2)
        scores = split(self.query(x)) @ split(self.key(x)).transpose(-1, -2) / (h // HEADS) ** 0.5
        p = torch.softmax(scores + additive_mask, dim=-1)
        return (p @ split(self.value(x))).transpose(1, 2).reshape(b, n, h)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self = SelfAttention()
        self.output = Dense(HIDDEN, HIDDEN, norm=True)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Dense(HIDDEN, INTERMEDIATE, norm=False)
        self.output = Dense(INTERMEDIATE, HIDDEN, norm=True)

    def forward(self, x, additive_mask):
        out = self.attention.output
        a = out.LayerNorm(x + out.dense(self.attention.self(x, additive_mask)))
        h = self.output.dense(torch.nn.functional.gelu(self.intermediate.dense(a)))
        return self.output.LayerNorm(a + h)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(LAYERS)])


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()
        self.pooler = Dense(HIDDEN, HIDDEN, norm=False)

    def forward(self, text_bert):
        ids, mask, segments = text_bert[:, 0].long(), text_bert[:, 1], text_bert[:, 2].long()
        additive = (1.0 - mask)[:, None, None, :] * torch.finfo(text_bert.dtype).min  # Hugging Face's mask
        x = self.embeddings(ids, segments)
        for layer in self.encoder.layer:
            x = layer(x, additive)
        return x


def main():
    torch.manual_seed(1111)
    model = Bert()
    formula_state(model)  # float32 values, computed in float64
    model.double()
    text_bert = torch.zeros(B, 3, L)
    for b, n in enumerate(LENGTHS):
        text_bert[b, 0, :n] = torch.randint(1, VOCAB, (n,)).float()
        text_bert[b, 1, :n] = 1
        text_bert[b, 2, n // 2:n] = 1
    y = model(text_bert.double())
    w = rounded(torch.randn_like(y)).float().double()
    (y * w).sum().backward()
    out = {"text_bert": fmt(text_bert), "out": fmt(y), "w": fmt(w)}
    for key, p in model.named_parameters():
        if p.grad is None:  # the pooler: not run
            continue
        out["grad." + key] = fmt(p.grad)
    write_fixture(OUT, "bert.json", out)
    print(sum(p.numel() for p in model.parameters()), "parameters")

if __name__ == "__main__":
    main()
