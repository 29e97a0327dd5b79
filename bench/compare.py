"""Runs msmix's op benchmarks and their PyTorch twins in one invocation and prints both with the ratio.

usage: python3 bench/compare.py build/bench_ops [--markdown]
Ratio = PyTorch ms / msmix ms: above 1 means msmix is faster.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_PYTHON = "/usr/bin/python3"  # Debian's python3-torch lives there, not in a pyenv python


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {r["case"]: r for r in (json.loads(l) for l in out.splitlines() if l.startswith("{"))}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ours = run_json([sys.argv[1], "--json"])
    try:
        theirs = run_json([TORCH_PYTHON, os.path.join(HERE, "torch", "bench_ops.py")])
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        sys.exit(f"bench-compare: the PyTorch side failed ({e}); install python3-torch (apt-get install python3-torch)")
    md = "--markdown" in sys.argv
    head = ("| case | msmix ms | torch ms | msmix rate | torch rate | ratio |\n|---|---:|---:|---:|---:|---:|" if md else
            f"{'case':<30} {'msmix ms':>10} {'torch ms':>10} {'msmix':>16} {'torch':>16} {'ratio':>7}")
    print(head)
    for name, r in ours.items():
        t = theirs.get(name)
        if t is None:
            continue
        ratio = t["ms"] / r["ms"]
        if md:
            print(f"| {name} | {r['ms']:.3f} | {t['ms']:.3f} | {r['rate']:.2f} {r['unit']} | {t['rate']:.2f} {t['unit']} | {ratio:.2f}x |")
        else:
            print(f"{name:<30} {r['ms']:>10.3f} {t['ms']:>10.3f} {r['rate']:>8.2f} {r['unit']:<7} {t['rate']:>8.2f} {t['unit']:<7} {ratio:>6.2f}x")


if __name__ == "__main__":
    main()
