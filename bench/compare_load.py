"""Loading an MMSA feature file: `msmix data FILE` (load_mmsa, then the summary) next to Python's pickle.load.

usage: python3 bench/compare_load.py [--msmix build/msmix] [--baseline OTHER/msmix] [--scale 8] [--repeats 3]
                                     [--file PATH] [--markdown]

Writes a synthetic MOSEI file at MMSA's unaligned shapes (text 50 x 768, audio 500 x 74, vision 500 x 35;
`--scale 8`: 3,584 samples, 1.3 GB) unless --file names one, then times each reader in its own process, --repeats
times alternating: wall time and peak resident memory (the process's own, from wait4). Python is Debian's
/usr/bin/python3 with numpy (pickle.load only: no summary). msmix's peak counts the file's mapped pages, which
are clean page cache the kernel can take back, beside the tensors. --baseline times a second msmix binary (a
build of an earlier commit) in the same rounds.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

PYTHON = os.environ.get("NUMPY_PYTHON", "/usr/bin/python3")


def timed(cmd):
    """Wall seconds and peak RSS (MiB) of one child process; its output is dropped."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    return seconds, usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--msmix", default="build/msmix")
    ap.add_argument("--baseline", help="another msmix binary, timed in the same rounds")
    ap.add_argument("--scale", type=float, default=8.0, help="synthetic:mosei size scale (1 = 448 samples)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--file", help="an existing MMSA .pkl instead of a synthetic one")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="msmix-load-") as tmp:
        path = args.file
        if not path:
            path = os.path.join(tmp, "mosei_unaligned.pkl")
            subprocess.run([args.msmix, "data", "synthetic:mosei", "--write", path, "--scale", str(args.scale)],
                           check=True, stdout=subprocess.DEVNULL)
        size_mib = os.path.getsize(path) / 2**20
        readers = {"msmix": [args.msmix, "data", path]}
        if args.baseline:
            readers["msmix before"] = [args.baseline, "data", path]
        readers["python pickle.load"] = [PYTHON, "-c", f"import pickle; pickle.load(open({path!r}, 'rb'))"]
        runs = {name: [] for name in readers}
        for _ in range(args.repeats):
            for name, cmd in readers.items():
                runs[name].append(timed(cmd))

    rows = []
    for name, results in runs.items():
        rows.append((name, statistics.median(s for s, _ in results), max(m for _, m in results)))
    python_s = rows[-1][1]
    if args.markdown:
        print(f"file: {size_mib:.0f} MiB; median of {args.repeats} runs\n")
        print("| reader | s | peak MiB | peak / file | python s / s |")
        print("|---|---:|---:|---:|---:|")
        for name, s, mib in rows:
            print(f"| {name} | {s:.2f} | {mib:.0f} | {mib / size_mib:.2f} | {python_s / s:.2f}x |")
    else:
        print(f"file: {size_mib:.0f} MiB; median of {args.repeats} runs")
        for name, s, mib in rows:
            print(f"{name:20s} {s:7.2f} s  peak {mib:7.0f} MiB ({mib / size_mib:.2f}x the file)  "
                  f"python / this {python_s / s:.2f}x")


if __name__ == "__main__":
    main()
