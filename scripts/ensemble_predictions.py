#!/usr/bin/env python3
"""Score the mean of several runs' predictions (a seed ensemble) with MMSA's metrics, beside the runs' own mean.

Each CSV is what `msmix eval --predictions` writes (id,label,prediction) for the same split; rows are matched
by id. Tells whether a gap between runs and a reference is noise between seeds (averaging closes it) or a
limit every seed shares (it does not). numpy only; the metrics are recompute_metrics.py's.

    for s in 1111 1112 1113 1114 1115; do
      build/msmix eval --data FILE.pkl --weights runs/none-$s/best.safetensors --predictions pred-$s.csv
    done
    python3 scripts/ensemble_predictions.py pred-*.csv [--sims]
"""
import argparse
import csv
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recompute_metrics import mosi_metrics, sims_metrics  # noqa: E402


def read_predictions(path):
    """{id: (label, prediction)} from one CSV; an id twice is an error."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"id", "label", "prediction"} <= set(rows[0]):
        sys.exit(f"{path}: expected a CSV with columns id,label,prediction")
    out = {}
    for r in rows:
        if r["id"] in out:
            sys.exit(f"{path}: id {r['id']} appears twice")
        out[r["id"]] = (float(r["label"]), float(r["prediction"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", help="prediction CSVs of the same split, one per run")
    ap.add_argument("--sims", action="store_true", help="SIMS metrics (labels in [-1, 1])")
    args = ap.parse_args()
    runs = [read_predictions(p) for p in args.csv]
    ids = sorted(runs[0])
    for path, run in zip(args.csv[1:], runs[1:]):
        if sorted(run) != ids:
            sys.exit(f"{path}: its ids differ from {args.csv[0]}'s (not the same split?)")
        if any(run[i][0] != runs[0][i][0] for i in ids):
            sys.exit(f"{path}: a label differs from {args.csv[0]}'s for the same id")
    y = np.array([runs[0][i][0] for i in ids])
    preds = np.array([[run[i][1] for i in ids] for run in runs])  # [runs, N]
    score = sims_metrics if args.sims else mosi_metrics
    each = [score(y, p) for p in preds]
    mean_of_runs = {k: float(np.mean([m[k] for m in each])) for k in each[0]}
    ensemble = score(y, preds.mean(axis=0))
    print(json.dumps({"runs": len(runs),
                      "mean_of_runs": {k: round(v, 4) for k, v in mean_of_runs.items()},
                      "ensemble": {k: round(float(v), 4) for k, v in ensemble.items()}}, indent=1))


if __name__ == "__main__":
    main()
