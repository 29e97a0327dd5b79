"""Runs msmix's op benchmarks and their PyTorch twins and prints both with the ratio.

usage: python3 bench/compare.py build/bench_ops [--rounds N] [--threads 1,2] [--only name,part] [--cpu-time]
                                                [--min] [--markdown]

Ratio = PyTorch ms / msmix ms: above 1 means msmix is faster. The machine may be shared, so each round runs
msmix and then PyTorch back to back (the order alternates between rounds), at each thread count in turn;
the table shows per-case medians over the rounds, their ratio, and the range of the per-round ratios (lowest-
highest) as the noise.
--threads sets OMP_NUM_THREADS for both sides (default: the environment's, else all cores). --cpu-time times
the calling thread's CPU time on both sides instead of the wall clock: at 1 thread it leaves out the time
other processes hold the core (not their cache and memory pressure); at more threads it misses the workers.
--min takes each side's fastest call per case instead of its median call (both sides alike): on a loaded
machine, multi-threaded medians are mostly the scheduler's time slices.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_PYTHON = "/usr/bin/python3"  # Debian's python3-torch lives there, not in a pyenv python


def run_json(cmd, threads):
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return {r["case"]: r for r in (json.loads(l) for l in out.splitlines() if l.startswith("{"))}


def measure(bench_ops, threads, rounds, only, flags):
    """Per case: lists of msmix ms, torch ms, ratios, sgemm overheads over the rounds."""
    extra = (["--only", only] if only else []) + flags
    ours_cmd = [bench_ops, "--json"] + extra
    torch_cmd = [TORCH_PYTHON, os.path.join(HERE, "torch", "bench_ops.py")] + extra
    runs = {}
    for r in range(rounds):
        sides = [("ours", ours_cmd), ("torch", torch_cmd)]
        if r % 2:
            sides.reverse()
        got = {}
        for side, cmd in sides:
            try:
                got[side] = run_json(cmd, threads)
            except (subprocess.CalledProcessError, FileNotFoundError) as e:
                if side == "torch":
                    sys.exit(f"bench-compare: the PyTorch side failed ({e}); install python3-torch")
                raise
        for name, o in got["ours"].items():
            t = got["torch"].get(name)
            if t is None:
                continue
            c = runs.setdefault(name, {"ours": [], "torch": [], "ratio": [], "overhead": [], "unit": o["unit"],
                                       "amount": o["rate"] * o["ms"]})
            c["ours"].append(o["ms"])
            c["torch"].append(t["ms"])
            c["ratio"].append(t["ms"] / o["ms"])
            if "overhead_pct" in o:
                c["overhead"].append(o["overhead_pct"])
    return runs


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("bench_ops")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="")
    ap.add_argument("--only", default="")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--cpu-time", action="store_true")
    ap.add_argument("--min", action="store_true")
    a = ap.parse_args()
    for threads in [t for t in a.threads.split(",") if t] or [None]:
        flags = (["--cpu-time"] if a.cpu_time else []) + (["--min"] if a.min else [])
        runs = measure(a.bench_ops, threads, a.rounds, a.only, flags)
        label = threads or os.environ.get("OMP_NUM_THREADS", f"{os.cpu_count()} (all cores)")
        clock = ("thread CPU time" if a.cpu_time else "wall time") + (", fastest call" if a.min else ", median call")
        print(f"\nOMP_NUM_THREADS={label}, {clock}, medians of {a.rounds} rounds; ratio = torch ms / msmix ms "
              "(range: per-round ratios)")
        if a.markdown:
            print("| case | msmix ms | torch ms | msmix rate | torch rate | ratio | range |\n"
                  "|---|---:|---:|---:|---:|---:|---:|")
        else:
            print(f"{'case':<30} {'msmix ms':>10} {'torch ms':>10} {'msmix':>16} {'torch':>16} {'ratio':>7}  range")
        for name, c in runs.items():
            ours, theirs = statistics.median(c["ours"]), statistics.median(c["torch"])
            ratio = theirs / ours
            spread = f"{min(c['ratio']):.2f}-{max(c['ratio']):.2f}"
            rate_o, rate_t = c["amount"] / ours, c["amount"] / theirs
            note = f" (wrapper {statistics.median(c['overhead']):+.1f}% vs cblas)" if c["overhead"] else ""
            if a.markdown:
                print(f"| {name}{note} | {ours:.3f} | {theirs:.3f} | {rate_o:.2f} {c['unit']} | {rate_t:.2f} {c['unit']} "
                      f"| {ratio:.2f}x | {spread} |")
            else:
                print(f"{name:<30} {ours:>10.3f} {theirs:>10.3f} {rate_o:>8.2f} {c['unit']:<7} {rate_t:>8.2f} "
                      f"{c['unit']:<7} {ratio:>6.2f}x  {spread}{note}")


if __name__ == "__main__":
    main()
