"""An independent PyTorch run of MMSA's protocol on an utterance-level MMSA pickle: the reference that msmix's own
training results on real data (docs/results.md) are checked against.

The models are bench_models.py's PyTorch twins of LF_DNN, TFN, LMF and MulT (MMSA v2.2.1's architecture,
parameter groups and MOSI defaults; MulT with Conv1d kernels of 1, as msmix's mosi-utterance entry); the
protocol is MMSA's single-task trainers as docs/training.md describes them and msmix follows them: Adam, L1
loss, a fresh shuffle of train each epoch, the validation loss (L1 over batches, averaged) checked after every
epoch, early stop once 8 epochs pass without an improvement of 1e-6, the best epoch's weights reloaded, test
scored once with MMSA's metrics (scripts/recompute_metrics.py). MulT adds its trainer's parts: gradients
accumulated over 8 batches (the count restarts each epoch), clipping by value at 0.6 after every backward,
ReduceLROnPlateau(min, factor 0.1, patience 5) on the validation loss, and the raw (not averaged) features.
Sequences of length 1 are what the file holds (text [N, 1, 100] goes through the LSTM as one step).

    OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch/train_reference.py ../shared/data/mosi-utterance/mosi_utterance.pkl \
        --model lf_dnn --seeds 1111,1112,1113,1114,1115

Prints one line per seed and the mean +- population std per metric. Seeds fix torch's initialisation, dropout
and the shuffles; the draws are PyTorch's, not msmix's, so runs agree with msmix in distribution, not digit
for digit. Run with Debian's python3 (python3-torch 1.13).

--parity DIR takes the randomness out so that the two frameworks can be compared epoch by epoch: every dropout
0, train in file order (msmix: `--set shuffle=false`), no early stop, and msmix starts from PyTorch's
initial weights (written to DIR/init.safetensors, passed as `--weights`). It trains --epochs epochs in both
(msmix through --msmix BINARY into DIR/msmix) and prints each epoch's train and valid loss side by side with
their relative difference; what remains is float rounding, which grows over the epochs.

    OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch/train_reference.py DATA.pkl --model tfn --parity /tmp/p \
        --msmix build/msmix --epochs 10
"""
import argparse
import copy
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from bench_models import build  # noqa: E402
from recompute_metrics import mosi_metrics  # noqa: E402
from pth_to_safetensors import write_safetensors  # noqa: E402

# Every dropout key of each backbone, as msmix's run config and bench_models.py's constructors name them.
DROPOUT_KEYS = {
    "lf_dnn": {"dropouts": [0.0, 0.0, 0.0, 0.0]},
    "tfn": {"dropouts": [0.0, 0.0, 0.0, 0.0]},
    "lmf": {"dropouts": [0.0, 0.0, 0.0, 0.0]},
    "mult": {k: 0.0 for k in ("text_dropout", "output_dropout", "attn_dropout", "attn_dropout_a", "attn_dropout_v",
                              "embed_dropout", "res_dropout", "relu_dropout")},
}


def load(path, average):
    with open(path, "rb") as f:
        data = pickle.load(f)  # the project's shared data: a trusted file
    out = {}
    for split in ("train", "valid", "test"):
        s = data[split]
        # audio / vision averaged over time for need_normalized backbones (the file has one step already)
        audio = torch.tensor(np.asarray(s["audio"], dtype=np.float32))
        vision = torch.tensor(np.asarray(s["vision"], dtype=np.float32))
        tensors = [torch.tensor(np.asarray(s["text"], dtype=np.float32)),
                   audio.mean(1, keepdim=True) if average else audio,
                   vision.mean(1, keepdim=True) if average else vision,
                   torch.tensor(np.asarray(s["regression_labels"], dtype=np.float32)).reshape(-1, 1)]
        out[split] = tensors
    return out


def eval_loss(model, split, batch, criterion):
    """MMSA's validation loss: the mean of the per-batch losses over the split in order (the last batch may be
    smaller), not the loss over the whole split, rounded to 4 decimals as MMSA's eval results (the early stop
    compares the rounded values)."""
    losses = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(split[3]), batch):
            text, audio, vision, labels = (t[start:start + batch] for t in split)
            losses.append(criterion(model(text, audio, vision), labels).item())
    return round(sum(losses) / len(losses), 4)


def predict(model, split):
    text, audio, vision, _ = split
    model.eval()
    with torch.no_grad():
        return model(text, audio, vision)


def run(name, data, seed, max_epochs=200, early_stop=8, parity_dir=None):
    """Trains one seed; returns (best epoch, best valid loss, test metrics, per-epoch [train loss, valid loss]).
    With parity_dir: no dropout, file order, no early stop, the initial weights written there first."""
    torch.manual_seed(seed)
    dims = tuple(data["train"][i].shape[-1] for i in range(3))
    overrides = {"kernels": (1, 1, 1)} if name == "mult" else {}
    if parity_dir:
        overrides.update(DROPOUT_KEYS[name])
    model, optimizer, cfg = build(name, dims=dims, **overrides)
    if parity_dir:
        write_safetensors(os.path.join(parity_dir, "init.safetensors"), model.state_dict())
    criterion = nn.L1Loss()
    update_every, clip = (8, cfg["grad_clip"]) if name == "mult" else (1, -1)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=5)
                 if name == "mult" else None)
    shuffle = torch.Generator().manual_seed(seed)
    n, batch = len(data["train"][3]), cfg["batch_size"]
    best_loss, best_epoch, best_state, curve = float("inf"), 0, None, []
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.arange(n) if parity_dir else torch.randperm(n, generator=shuffle)
        left, losses = update_every, []
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            if len(idx) == 1:  # BatchNorm cannot train on one sample (msmix drops it too)
                continue
            text, audio, vision, labels = (t[idx] for t in data["train"])
            if left == update_every:  # zero at the start of each accumulation group
                optimizer.zero_grad()
            left -= 1
            loss = criterion(model(text, audio, vision), labels)
            losses.append(loss.item())
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_value_([p for p in model.parameters() if p.requires_grad], clip)
            if left == 0:
                optimizer.step()
                left = update_every
        valid_loss = eval_loss(model, data["valid"], batch, criterion)
        curve.append((sum(losses) / len(losses), valid_loss))
        if scheduler:
            scheduler.step(valid_loss)
        if valid_loss <= best_loss - 1e-6:
            best_loss, best_epoch, best_state = valid_loss, epoch, copy.deepcopy(model.state_dict())
        if epoch - best_epoch >= early_stop and not parity_dir:
            break
    model.load_state_dict(best_state)
    pred = predict(model, data["test"]).numpy().reshape(-1).astype(np.float64)
    metrics = mosi_metrics(data["test"][3].numpy().reshape(-1).astype(np.float64), pred)
    return best_epoch, best_loss, metrics, curve


def parity(args, data):
    """PyTorch and msmix from the same weights without randomness: per-epoch losses side by side."""
    os.makedirs(args.parity, exist_ok=True)
    seed = int(args.seeds.split(",")[0])
    _, _, torch_metrics, curve = run(args.model, data, seed, max_epochs=args.epochs, parity_dir=args.parity)
    out = os.path.join(args.parity, "msmix")
    cmd = [args.msmix, "train", "--model", args.model, "--data", args.pickle, "--seed", str(seed), "--out", out,
           "--overwrite", "--epochs", str(args.epochs), "--weights", os.path.join(args.parity, "init.safetensors"),
           "--set", "shuffle=false", "--set", f"early_stop={args.epochs + 1}"]
    for key, value in DROPOUT_KEYS[args.model].items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "log.jsonl")) as f:
        log = [json.loads(line) for line in f if line.strip()]
    print(f"{args.model}, seed {seed}: PyTorch {torch.__version__} and msmix from the same initial weights, "
          "no dropout, file order")
    print(f"{'epoch':>5} {'torch train':>12} {'msmix train':>12} {'rel diff':>9} {'torch valid':>12} "
          f"{'msmix valid':>12} {'rel diff':>9}")
    for epoch, ((t_train, t_valid), line) in enumerate(zip(curve, log), start=1):
        m_train, m_valid = line["train_loss"], line["valid_loss"]
        print(f"{epoch:5d} {t_train:12.6f} {m_train:12.6f} {abs(m_train - t_train) / t_train:9.1e} "
              f"{t_valid:12.4f} {m_valid:12.4f} {abs(m_valid - t_valid) / t_valid:9.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pickle")
    ap.add_argument("--model", default="lf_dnn", choices=["lf_dnn", "tfn", "lmf", "mult"])
    ap.add_argument("--seeds", default="1111,1112,1113,1114,1115")
    ap.add_argument("--parity", metavar="DIR", help="compare with msmix epoch by epoch, without randomness")
    ap.add_argument("--msmix", default="build/msmix", help="the msmix binary (--parity)")
    ap.add_argument("--epochs", type=int, default=10, help="epochs of the --parity runs")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = load(args.pickle, average=args.model != "mult")
    if args.parity:
        return parity(args, data)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        epoch, valid_loss, m, _ = run(args.model, data, seed)
        rows.append(m)
        print(f"{args.model} seed {seed}: best epoch {epoch}, valid loss {valid_loss:.4f}, test "
              + ", ".join(f"{k} {v:.4f}" for k, v in m.items()), flush=True)
    print(f"{args.model} (PyTorch {torch.__version__}), {len(rows)} seeds, test mean +- std:")
    for key in rows[0]:
        values = np.array([r[key] for r in rows])
        scale = 1 if key in ("MAE", "Corr") else 100
        print(f"  {key:<14} {scale * values.mean():.4f} +- {scale * values.std():.4f}")


if __name__ == "__main__":
    main()
