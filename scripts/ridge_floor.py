#!/usr/bin/env python3
"""The linear floor of an MMSA utterance-level pickle: closed-form ridge regression over a range of lambdas.

For each lambda: features of the chosen modalities concatenated, standardised with the train split's mean and
std, an unpenalised intercept, fitted on train; prints valid MAE (what a selection on valid would look at) and
the test metrics. Shows how much the floor itself moves with lambda, the yardstick for "a backbone beats it".
numpy only; reads the pickle with Python's pickle (trusted file: the project's shared data).

    /usr/bin/python3 scripts/ridge_floor.py ../shared/data/mosi-utterance/mosi_utterance.pkl [--modalities text]
"""
import argparse
import pickle

import numpy as np

from recompute_metrics import mosi_metrics  # MMSA's metrics, the same script folder


def features(split, modalities):
    # [N, 1, D] per modality (utterance level) -> [N, sum D]
    return np.concatenate([split[m].reshape(len(split[m]), -1) for m in modalities], 1).astype(np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pickle")
    ap.add_argument("--modalities", default="text,audio,vision")
    ap.add_argument("--lambdas", default="1,10,100,300,1000,3000,10000")
    args = ap.parse_args()
    with open(args.pickle, "rb") as f:
        data = pickle.load(f)
    mods = args.modalities.split(",")
    x = {s: features(data[s], mods) for s in ("train", "valid", "test")}
    y = {s: np.asarray(data[s]["regression_labels"], dtype=np.float64) for s in ("train", "valid", "test")}
    mu, sd = x["train"].mean(0), x["train"].std(0) + 1e-8
    design = {s: np.c_[(x[s] - mu) / sd, np.ones(len(x[s]))] for s in x}
    a = design["train"]
    print(f"ridge on {','.join(mods)} ({a.shape[1] - 1} features), fitted on {len(a)} train samples")
    print(f"{'lambda':>8} {'valid MAE':>10} {'test MAE':>9} {'Corr':>7} {'Non0_acc_2':>11} {'Has0_acc_2':>11} {'Acc_7':>7}")
    for lam in (float(v) for v in args.lambdas.split(",")):
        penalty = lam * np.eye(a.shape[1])
        penalty[-1, -1] = 0  # the intercept is not shrunk
        w = np.linalg.solve(a.T @ a + penalty, a.T @ y["train"])
        valid_mae = np.abs(design["valid"] @ w - y["valid"]).mean()
        m = mosi_metrics(y["test"], design["test"] @ w)
        print(f"{lam:8g} {valid_mae:10.4f} {m['MAE']:9.4f} {m['Corr']:7.4f} {m['Non0_acc_2']:11.4f} "
              f"{m['Has0_acc_2']:11.4f} {m['Mult_acc_7']:7.4f}")


if __name__ == "__main__":
    main()
