"""PyTorch twin of bench/bench_ops.cpp: the same cases, names and units, one JSON object per line.

Run with Debian's python3 (python3-torch). Threads: set to all cores, as msmix's OpenMP uses (Debian's torch
otherwise starts with 1 here, which would flatter msmix).
"""
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


CLOCK = time.perf_counter  # --cpu-time: time.thread_time, as bench_ops --cpu-time (meaningful at 1 thread)
STAT = statistics.median  # --min: the fastest call, as bench_ops --min


def median_ms(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        start = CLOCK()
        fn()
        times.append((CLOCK() - start) * 1e3)
    return STAT(times)


def report(name, ms, amount, unit):
    print(json.dumps({"case": name, "ms": round(ms, 4), "rate": round(amount / (ms * 1e-3) / 1e9, 3), "unit": unit}))


ONLY = []  # --only a,b: the cases whose name contains one of these, as bench_ops --only


def wanted(name):
    return not ONLY or any(part in name for part in ONLY)


def bench(name, amount, unit, reps, fn):
    if wanted(name):
        report(name, median_ms(fn, reps), amount, unit)


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))  # same as msmix
    global CLOCK, STAT
    if "--cpu-time" in sys.argv:
        CLOCK = time.thread_time
    if "--min" in sys.argv:
        STAT = min
    if "--only" in sys.argv:
        ONLY.extend(p for p in sys.argv[sys.argv.index("--only") + 1].split(",") if p)
    torch.manual_seed(0)
    with torch.no_grad():
        for m, k, n in [(32, 768, 128), (1600, 768, 128), (512, 512, 512), (1024, 1024, 1024)]:
            a, b = torch.randn(m, k), torch.randn(k, n)
            bench(f"sgemm {m}x{k}x{n}", 2.0 * m * n * k, "GFLOP/s", 5 if m >= 1024 else 20, lambda: a @ b)
        n = 1 << 22
        nb = n * 4.0
        x, y = torch.randn(n), torch.randn(n)
        bench("add 4M", 3 * nb, "GB/s", 20, lambda: x + y)
        bench("mul 4M", 3 * nb, "GB/s", 20, lambda: x * y)
        bench("exp 4M", 2 * nb, "GB/s", 20, lambda: torch.exp(x))
        bench("gelu 4M", 2 * nb, "GB/s", 10, lambda: torch.nn.functional.gelu(x))
        bench("sum 4M all", nb, "GB/s", 20, lambda: x.sum())
        rows = torch.randn(4096, 1024)
        rb = rows.numel() * 4.0
        bench("softmax 4096x1024", 2 * rb, "GB/s", 20, lambda: torch.softmax(rows, -1))
        w, b = torch.ones(1024), torch.zeros(1024)
        bench("layer_norm 4096x1024", 2 * rb, "GB/s", 20, lambda: F.layer_norm(rows, (1024,), w, b))
        bench("sum 4096x1024 last dim", rb, "GB/s", 20, lambda: rows.sum(1))
        bench("mean 4096x1024 last dim", rb, "GB/s", 20, lambda: rows.mean(1))
        bench("sum 4096x1024 dim 0", rb, "GB/s", 20, lambda: rows.sum(0))

    # Forward + backward with a given output grad (5 tensors' bytes, as bench_ops.cpp).
    n = 1 << 22
    x, g = torch.randn(n, requires_grad=True), torch.randn(n)

    def exp_step():
        torch.exp(x).backward(g)
        x.grad = None

    bench("exp 4M fwd+bwd", 5 * n * 4.0, "GB/s", 20, exp_step)
    rows, g_rows = torch.randn(4096, 1024, requires_grad=True), torch.randn(4096, 1024)
    rb = rows.numel() * 4.0

    def softmax_step():
        torch.softmax(rows, -1).backward(g_rows)
        rows.grad = None

    bench("softmax 4096x1024 fwd+bwd", 5 * rb, "GB/s", 20, softmax_step)
    w, b = torch.ones(1024, requires_grad=True), torch.zeros(1024, requires_grad=True)

    def layer_norm_step():
        F.layer_norm(rows, (1024,), w, b).backward(g_rows)
        rows.grad = w.grad = b.grad = None

    bench("layer_norm 4096x1024 fwd+bwd", 5 * rb, "GB/s", 20, layer_norm_step)

    lstm = torch.nn.LSTM(768, 128, batch_first=True)
    x = torch.randn(32, 50, 768)

    def lstm_step():
        out, _ = lstm(x)
        out.sum().backward()
        lstm.zero_grad()

    bench("lstm 768->128 T50 B32 fwd+bwd", 3.0 * 2.0 * 32 * 50 * (768 + 128) * 4 * 128, "GFLOP/s", 10, lstm_step)


if __name__ == "__main__":
    sys.exit(main())
