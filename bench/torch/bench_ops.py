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


def median_ms(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def report(name, ms, amount, unit):
    print(json.dumps({"case": name, "ms": round(ms, 4), "rate": round(amount / (ms * 1e-3) / 1e9, 3), "unit": unit}))


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))  # same as msmix
    torch.manual_seed(0)
    with torch.no_grad():
        for m, k, n in [(32, 768, 128), (1600, 768, 128), (512, 512, 512), (1024, 1024, 1024)]:
            a, b = torch.randn(m, k), torch.randn(k, n)
            report(f"sgemm {m}x{k}x{n}", median_ms(lambda: a @ b, 5 if m >= 1024 else 20), 2.0 * m * n * k, "GFLOP/s")
        n = 1 << 22
        x, y = torch.randn(n), torch.randn(n)
        report("add 4M", median_ms(lambda: x + y, 20), 3.0 * n * 4, "GB/s")
        report("mul 4M", median_ms(lambda: x * y, 20), 3.0 * n * 4, "GB/s")
        report("exp 4M", median_ms(lambda: torch.exp(x), 20), 2.0 * n * 4, "GB/s")
        rows = torch.randn(4096, 1024)
        report("softmax 4096x1024", median_ms(lambda: torch.softmax(rows, -1), 20), 2.0 * rows.numel() * 4, "GB/s")
        w, b = torch.ones(1024), torch.zeros(1024)
        ln = lambda: torch.nn.functional.layer_norm(rows, (1024,), w, b)
        report("layer_norm 4096x1024", median_ms(ln, 20), 2.0 * rows.numel() * 4, "GB/s")
        report("sum 4096x1024 last dim", median_ms(lambda: rows.sum(1), 20), 1.0 * rows.numel() * 4, "GB/s")
    lstm = torch.nn.LSTM(768, 128, batch_first=True)
    x = torch.randn(32, 50, 768)

    def lstm_step():
        out, _ = lstm(x)
        out.sum().backward()
        lstm.zero_grad()

    report("lstm 768->128 T50 B32 fwd+bwd", median_ms(lstm_step, 10), 3.0 * 2.0 * 32 * 50 * (768 + 128) * 4 * 128, "GFLOP/s")


if __name__ == "__main__":
    sys.exit(main())
