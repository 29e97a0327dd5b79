"""The CUDA issue's goals, read off the step outputs of a gpucheck build folder (bench/gpucheck.sh puts this
table in its report; the raw numbers stay in the sections below it).

usage: python3 bench/gpucheck_goals.py BUILD_DIR

Goals (issue 3): elementwise, softmax and layer_norm at 16M+ elements reach 70% of the copy's bandwidth; the
fused attention beats PyTorch eager on MulT's shapes; a training step of each backbone is 3x PyTorch eager.
Also the two choices the issue leaves to measurement: which LSTM kernel makes each LSTM backbone's step
fastest (the lstm-scans step: our scans against cuDNN's), and our conv1d and LSTM layer beside PyTorch's
cuDNN ones. A step that did not run shows as "not measured"; nothing here fails gpucheck.
"""
import json
import os
import sys

COPY_GOAL = 70.0  # percent of the device-to-device copy's GB/s
STEP_GOAL = 3.0   # torch ms / msmix ms


def step_lines(build, step):
    path = os.path.join(build, f"step-{step}.txt")
    if not os.path.exists(path):
        return []
    with open(path, errors="replace") as f:
        return f.read().splitlines()


def json_lines(build, step):
    out = []
    for line in step_lines(build, step):
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def table_rows(build, step):
    """The markdown rows of a step's table, as lists of cells (the header and rule rows left out)."""
    rows = []
    for line in step_lines(build, step):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 1 and not set(cells[1]) <= set("-:") and cells[0] != "case":
            rows.append(cells)
    return rows


def met(ok):
    return "yes" if ok else "**no**"


def goals(build):
    rows = []  # (goal, case, measured, met)
    for r in json_lines(build, "bench-cuda"):
        if r.get("unit") == "GB/s" and "pct_of_copy" in r and not r["case"].startswith("copy"):
            rows.append(("70% of copy", r["case"], f"{r['pct_of_copy']:.0f}%", met(r["pct_of_copy"] >= COPY_GOAL)))
    for cells in table_rows(build, "bench-torch"):  # case | msmix ms | torch ms | rates | ratio
        if cells[0].startswith("attention") and cells[-1].endswith("x"):
            ratio = float(cells[-1][:-1])
            rows.append(("fused attention > PyTorch", cells[0], f"{ratio:.2f}x", met(ratio > 1)))
    for step, how in (("bench-models", "uncaptured"), ("bench-models-fast", "cuda_graph")):
        for r in json_lines(build, step):
            if "ratio" in r and "model" in r:
                rows.append((f"step {STEP_GOAL:.0f}x PyTorch", f"{r['model']} ({how})", f"{r['ratio']:.2f}x",
                             met(r["ratio"] >= STEP_GOAL)))
    return rows


def lstm_choices(build):
    """Per LSTM backbone: ms per step with each kernel, uncaptured and captured, the fastest first."""
    by_model = {}
    for r in json_lines(build, "lstm-scans"):
        if "model" not in r or "ms_per_step" not in r:
            continue
        kernel = r.get("gpu_kernels", "LSTM ?").split()[1]
        graph = " + cuda_graph" if r.get("cuda_graph") else ""
        by_model.setdefault(r["model"], []).append((r["ms_per_step"], kernel + graph))
    return {m: sorted(v) for m, v in by_model.items()}


def attention_choices(build):
    """MulT's step with each attention (the fused-attention step), uncaptured and captured, the fastest first."""
    runs = []
    for r in json_lines(build, "fused-attention"):
        if r.get("model") == "mult" and "ms_per_step" in r:
            attention = "fused" if "attention fused" in r.get("gpu_kernels", "") else "composite"
            runs.append((r["ms_per_step"], attention + (" + cuda_graph" if r.get("cuda_graph") else "")))
    return sorted(runs)


def softmax_choices(build):
    """The softmax forward at 16384 x 1024 with each kernel: (percent of copy, case), the fastest first."""
    rows = [(r["pct_of_copy"], r["case"]) for r in json_lines(build, "bench-cuda")
            if r.get("case", "").startswith("softmax 16384x1024") and "pct_of_copy" in r]
    return sorted(rows, reverse=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    build = sys.argv[1]
    rows = goals(build)
    print("| goal | case | measured | met |\n|---|---|---:|---|")
    for goal, case, measured, ok in rows:
        print(f"| {goal} | {case} | {measured} | {ok} |")
    if not rows:
        print("| all | not measured (no bench-cuda, bench-torch or bench-models output) | - | - |")
    print()
    choices = lstm_choices(build)
    if choices:
        print("LSTM kernel per backbone, ms per step (fastest first):")
        for model, runs in choices.items():
            print(f"- {model}: " + ", ".join(f"{name} {ms:.2f}" for ms, name in runs))
    attention = attention_choices(build)
    if attention:
        print("\nMulT's step by attention kernel, ms (fastest first): " +
              ", ".join(f"{name} {ms:.2f}" for ms, name in attention))
    softmax = softmax_choices(build)
    if softmax:
        print("\nThe softmax forward by kernel, % of copy (fastest first): " +
              ", ".join(f"{case} {pct:.0f}%" for pct, case in softmax))
    ours = [r for r in json_lines(build, "bench-cuda") if r.get("case", "").startswith(("lstm", "conv1d"))]
    if ours:
        print("\nThe LSTM layer and conv1d with each kernel choice: " +
              ", ".join(f"{r['case']} {r['ms']:.3f} ms" for r in ours))
    cudnn_rows = [c for c in table_rows(build, "bench-torch") if c[0].startswith(("conv1d", "lstm"))]
    if cudnn_rows:
        print("\nOurs beside PyTorch's cuDNN (ratio = torch ms / msmix ms; above 1: ours faster):")
        for cells in cudnn_rows:
            print(f"- {cells[0]}: msmix {cells[1]} ms, torch {cells[2]} ms, {cells[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
