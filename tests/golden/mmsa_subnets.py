"""MMSA's feature sub-networks (models/subNets/FeatureNets.py, v2.2.1) in PyTorch, with MMSA's parameter names:
the one definition that the golden fixtures (make_backbone_golden.py) and the training-step bench
(bench/torch/bench_models.py) build LF_DNN, TFN and LMF from. msmix's twins: models/subnets.cpp."""
import torch.nn as nn
import torch.nn.functional as F


class SubNet(nn.Module):
    """Audio / video: BatchNorm1d -> Dropout -> 3 x (Linear + ReLU)."""

    def __init__(self, n_in, hidden, dropout=0.0):
        super().__init__()
        self.norm = nn.BatchNorm1d(n_in)
        self.drop = nn.Dropout(dropout)
        self.linear_1 = nn.Linear(n_in, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)
        self.linear_3 = nn.Linear(hidden, hidden)

    def forward(self, x):
        y = self.drop(self.norm(x))
        for layer in (self.linear_1, self.linear_2, self.linear_3):
            y = F.relu(layer(y))
        return y


class TextSubNet(nn.Module):
    """One-layer LSTM over every step (no packing), final hidden state -> Dropout (0: MMSA zeroes it for one
    layer) -> Linear."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.rnn = nn.LSTM(n_in, hidden, num_layers=1, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.linear_1 = nn.Linear(hidden, n_out)

    def forward(self, x):
        _, (h, _) = self.rnn(x)
        return self.linear_1(self.dropout(h.squeeze(0)))
