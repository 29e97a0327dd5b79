#!/usr/bin/env python3
"""Recompute MMSA's regression metrics from an `msmix eval --predictions` CSV, independently of msmix.

An end-to-end check a researcher can run by hand: numpy only (no scikit-learn), written from MMSA's metric
definitions (docs/, ../shared/spec/mmsa.md), not from msmix's C++. Prints the metrics as JSON with MMSA's
names; compare with `msmix eval --json` on the same weights.

    build/msmix eval --data FILE.pkl --weights run/best.safetensors --predictions pred.csv --json
    python3 scripts/recompute_metrics.py pred.csv [--sims]
"""
import argparse
import csv
import json

import numpy as np


def weighted_f1(truth, pred):
    """F1 per class weighted by the class's support (sklearn's average='weighted'), classes taken from truth."""
    total = 0.0
    for c in np.unique(truth):
        tp = np.sum((pred == c) & (truth == c))
        fp = np.sum((pred == c) & (truth != c))
        fn = np.sum((pred != c) & (truth == c))
        f1 = 0.0 if tp == 0 else 2.0 * tp / (2.0 * tp + fp + fn)
        total += f1 * np.sum(truth == c)
    return total / len(truth)


def mosi_metrics(y, p):
    nonzero = y != 0
    return {
        "Has0_acc_2": np.mean((y >= 0) == (p >= 0)),
        "Has0_F1_score": weighted_f1(y >= 0, p >= 0),
        "Non0_acc_2": np.mean((y[nonzero] > 0) == (p[nonzero] > 0)),
        "Non0_F1_score": weighted_f1(y[nonzero] > 0, p[nonzero] > 0),
        # np.round rounds half to even, as MMSA's np.round does
        "Mult_acc_5": np.mean(np.round(np.clip(p, -2, 2)) == np.round(np.clip(y, -2, 2))),
        "Mult_acc_7": np.mean(np.round(np.clip(p, -3, 3)) == np.round(np.clip(y, -3, 3))),
        "MAE": np.mean(np.abs(p - y)),
        "Corr": np.corrcoef(p, y)[0, 1],
    }


def sims_metrics(y, p):
    y, p = np.clip(y, -1, 1), np.clip(p, -1, 1)

    def bins(x, edges):
        out = np.zeros(len(x), dtype=int)
        for k in range(len(edges) - 1):
            out[(x > edges[k]) & (x <= edges[k + 1])] = k
        return out

    two, three, five = [-1.01, 0.0, 1.01], [-1.01, -0.1, 0.1, 1.01], [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]
    return {
        "Mult_acc_2": np.mean(bins(p, two) == bins(y, two)),
        "Mult_acc_3": np.mean(bins(p, three) == bins(y, three)),
        "Mult_acc_5": np.mean(bins(p, five) == bins(y, five)),
        "F1_score": weighted_f1(bins(y, two), bins(p, two)),
        "MAE": np.mean(np.abs(p - y)),
        "Corr": np.corrcoef(p, y)[0, 1],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="CSV with columns id,label,prediction")
    ap.add_argument("--sims", action="store_true", help="SIMS metrics (labels in [-1, 1])")
    args = ap.parse_args()
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([float(r["label"]) for r in rows])
    p = np.array([float(r["prediction"]) for r in rows])
    metrics = sims_metrics(y, p) if args.sims else mosi_metrics(y, p)
    print(json.dumps({k: round(float(v), 4) for k, v in metrics.items()}))


if __name__ == "__main__":
    main()
