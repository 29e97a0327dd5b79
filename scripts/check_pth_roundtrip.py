#!/usr/bin/python3
"""Hand check (not part of the test suite): an MMSA-style .pth scored by msmix gives PyTorch's predictions.

    /usr/bin/python3 scripts/check_pth_roundtrip.py [--msmix build/msmix] [--keep DIR]

1. Builds the PyTorch TFN twin of bench/torch/bench_models.py at small dims (hidden 8 / 4 / 8, text_out 4,
   post_fusion_dim 8), randomises its BatchNorm statistics (so eval mode uses them) and trains it a few
   steps, then saves it the ways MMSA and its users do: torch.save of the AMIO wrapper's state_dict (names
   'Model.audio_subnet...') and a checkpoint dict {'state_dict': ..., 'epoch': 3} from a DataParallel model
   (names 'module.Model....'), both with int64 num_batches_tracked.
2. Writes a small dataset in MMSA's pickle layout (text [N, 6, 768], audio [N, 7, 5], vision [N, 9, 20],
   lengths, ids, labels) that msmix reads with --data.
3. Converts each .pth with scripts/pth_to_safetensors.py (also once with --skip-counters), runs
   `msmix eval --model tfn --data FILE --weights W --set ... --predictions CSV` on the test split.
4. Computes PyTorch's eval predictions on the same samples, after MMSA's loader (audio / vision averaged over
   the whole padded time axis), and compares: max |difference| must stay below 1e-4.
Exits non-zero with the worst difference when a check fails.
"""
import argparse
import csv
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench", "torch"))
import bench_models  # noqa: E402  (the PyTorch twins)

SMALL = dict(hidden_dims=(8, 4, 8), text_out=4, post_fusion_dim=8)
SETS = ["hidden_dims=[8,4,8]", "text_out=4", "post_fusion_dim=8"]
SIZES = {"train": 6, "valid": 4, "test": 10}
STEPS = (6, 7, 9)  # text, audio, vision steps
TOLERANCE = 1e-4


class AMIO(torch.nn.Module):
    """MMSA's wrapper: the backbone under .Model, so its state_dict names start with 'Model.'."""

    def __init__(self, model):
        super().__init__()
        self.Model = model


def make_split(rng, n):
    lt, la, lv = STEPS
    audio_lengths = rng.integers(2, la + 1, n)
    vision_lengths = rng.integers(2, lv + 1, n)
    audio = rng.normal(size=(n, la, 5)).astype(np.float32)
    vision = rng.normal(size=(n, lv, 20)).astype(np.float32)
    for i in range(n):  # padding at the end, zeros (MMSA-FET)
        audio[i, audio_lengths[i]:] = 0
        vision[i, vision_lengths[i]:] = 0
    return {"id": [f"clip{i}$_$0" for i in range(n)],
            "text": rng.normal(size=(n, lt, 768)).astype(np.float32),
            "audio": audio, "vision": vision,
            "audio_lengths": [int(x) for x in audio_lengths], "vision_lengths": [int(x) for x in vision_lengths],
            "regression_labels": rng.uniform(-3, 3, n).astype(np.float32)}


def torch_predictions(model, split):
    """Eval-mode predictions after MMSA's loader: audio / vision averaged over the padded time axis."""
    text = torch.from_numpy(split["text"])
    audio = torch.from_numpy(split["audio"]).mean(dim=1, keepdim=True)
    vision = torch.from_numpy(split["vision"]).mean(dim=1, keepdim=True)
    model.eval()
    with torch.no_grad():
        return model(text, audio, vision).reshape(-1).double().numpy()


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    return p.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msmix", default=os.path.join(ROOT, "build", "msmix"))
    parser.add_argument("--keep", help="write the files to this folder and keep them (default: a temp folder, removed)")
    args = parser.parse_args()
    torch.manual_seed(5)
    rng = np.random.default_rng(5)

    model, optimizer, _ = bench_models.build("tfn", **SMALL)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.3)
                m.bias.normal_(0, 0.3)
    data = {name: make_split(rng, n) for name, n in SIZES.items()}
    model.train()
    train = data["train"]
    for _ in range(3):  # a few real steps: weights away from their init, num_batches_tracked = 3
        optimizer.zero_grad()
        out = model(torch.from_numpy(train["text"]), torch.from_numpy(train["audio"]).mean(1, keepdim=True),
                    torch.from_numpy(train["vision"]).mean(1, keepdim=True))
        torch.nn.functional.l1_loss(out, torch.from_numpy(train["regression_labels"]).reshape(-1, 1)).backward()
        optimizer.step()
    with torch.no_grad():  # spread the predictions over (-3, 3), so a wrong input or statistic shows
        model.post_fusion_layer_3.weight.mul_(30)
    expected = torch_predictions(model, data["test"])

    folder = args.keep or tempfile.mkdtemp(prefix="msmix_pth_check_")
    os.makedirs(folder, exist_ok=True)
    pkl = os.path.join(folder, "roundtrip_mosi.pkl")
    with open(pkl, "wb") as f:
        pickle.dump(data, f, protocol=4)
    plain = os.path.join(folder, "tfn_mmsa.pth")
    torch.save(AMIO(model).state_dict(), plain)  # MMSA's trainer: torch.save(model.cpu().state_dict(), path)
    wrapped = os.path.join(folder, "tfn_dataparallel.pth")
    torch.save({"state_dict": torch.nn.DataParallel(AMIO(model)).state_dict(), "epoch": 3}, wrapped)

    worst_all = 0.0
    for pth, extra in ((plain, []), (wrapped, []), (plain, ["--skip-counters"])):
        st = os.path.splitext(pth)[0] + ("_nocount" if extra else "") + ".safetensors"
        print(run([sys.executable, os.path.join(ROOT, "scripts", "pth_to_safetensors.py"), pth, st] + extra)
              .splitlines()[-1])
        csv_path = st + ".csv"
        cmd = [args.msmix, "eval", "--model", "tfn", "--data", pkl, "--weights", st, "--device", "cpu",
               "--split", "test", "--predictions", csv_path]
        for s in SETS:
            cmd += ["--set", s]
        run(cmd)
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
        got = np.array([float(r["prediction"]) for r in rows])
        ids = [r["id"] for r in rows]
        if ids != data["test"]["id"] or got.shape != expected.shape:
            sys.exit(f"{st}: msmix wrote ids {ids[:3]}... ({len(ids)} rows), expected {data['test']['id'][:3]}...")
        worst = float(np.max(np.abs(got - expected)))
        worst_all = max(worst_all, worst)
        print(f"{os.path.basename(pth)} {' '.join(extra)}: {len(got)} test predictions, max |msmix - torch| = "
              f"{worst:.2e} (torch range {expected.min():.3f} .. {expected.max():.3f})")
    if not args.keep:
        shutil.rmtree(folder)
    if worst_all >= TOLERANCE:
        sys.exit(f"FAILED: max difference {worst_all:.2e} >= {TOLERANCE}")
    print(f"ok: msmix scores the converted MMSA-style .pth like PyTorch (max difference {worst_all:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
