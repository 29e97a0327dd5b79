"""PyTorch (eager, CUDA) twin of bench/bench_cuda_ops.cpp: the same cases, names, byte counts and timing
(kInner back-to-back calls between two synchronisations, median of kReps samples after a warm-up), one JSON
object per line.

usage: python3 bench/torch/bench_cuda_ops.py [--ours FILE]
With --ours (bench_cuda_ops --json output) it prints a markdown table of both with the ratio torch ms / msmix
ms (above 1: msmix faster) instead of JSON; cases msmix lacks get a row with torch's side only. Exits 2
without a GPU. TF32 is off, as msmix's FP32 cuBLAS.
The attention cases time the explicit composite PyTorch 1.13's nn.MultiheadAttention runs in eager mode
(scale q, baddbmm with the additive mask, softmax, dropout, bmm), on its sequence-first layout (no copies to
split the heads); with PyTorch 2's F.scaled_dot_product_attention present, also that, as extra "(sdpa)" rows.
"""
import json
import math
import statistics
import sys
import time

import torch

REPS, INNER = 15, 10


def time_ms(fn):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(REPS):
        start = time.perf_counter()
        for _ in range(INNER):
            fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3 / INNER)
    return statistics.median(samples)


def cases():
    """Yields (name, ms, amount, unit) for every case of bench_cuda_ops.cpp that PyTorch can express."""
    dev = "cuda"
    n, R, C = 1 << 24, 16384, 1024
    B = 4.0 * n
    g = torch.Generator(device=dev).manual_seed(1)
    x, y, gr = (torch.randn(R, C, device=dev, generator=g) for _ in range(3))
    out = torch.empty(R, C, device=dev)
    bias, w = torch.randn(C, device=dev, generator=g), torch.ones(C, device=dev)
    F = torch.nn.functional
    yield "copy d2d 16M", time_ms(lambda: out.copy_(x)), 2 * B, "GB/s"
    yield "add 16M", time_ms(lambda: x + y), 3 * B, "GB/s"
    yield "mul 16M", time_ms(lambda: x * y), 3 * B, "GB/s"
    yield "add bias rows 16384x1024", time_ms(lambda: x + bias), 2 * B, "GB/s"
    yield "mul scalar 16M", time_ms(lambda: x * 0.5), 2 * B, "GB/s"
    yield "relu 16M", time_ms(lambda: torch.relu(x)), 2 * B, "GB/s"
    yield "exp 16M", time_ms(lambda: torch.exp(x)), 2 * B, "GB/s"
    yield "gelu 16M", time_ms(lambda: F.gelu(x)), 2 * B, "GB/s"
    yield "gelu backward 16M", time_ms(lambda: torch.ops.aten.gelu_backward(gr, x)), 3 * B, "GB/s"
    yield "softmax 16384x1024", time_ms(lambda: torch.softmax(x, -1)), 2 * B, "GB/s"
    sm = torch.softmax(y, -1)
    yield ("softmax backward 16384x1024",
           time_ms(lambda: torch.ops.aten._softmax_backward_data(gr, sm, -1, torch.float32)), 3 * B, "GB/s")
    wide = x.reshape(2048, 8192)
    yield "softmax 2048x8192", time_ms(lambda: torch.softmax(wide, -1)), 2 * B, "GB/s"
    yield "layer_norm 16384x1024", time_ms(lambda: F.layer_norm(x, (C,), w, bias)), 2 * B, "GB/s"
    _, mean, rstd = torch.ops.aten.native_layer_norm(x, [C], w, bias, 1e-5)
    lnb = torch.ops.aten.native_layer_norm_backward
    yield ("layer_norm backward gx 16384x1024",
           time_ms(lambda: lnb(gr, x, [C], mean, rstd, w, bias, [True, False, False])), 3 * B, "GB/s")
    yield ("layer_norm backward all 16384x1024",
           time_ms(lambda: lnb(gr, x, [C], mean, rstd, w, bias, [True, True, True])), 3 * B, "GB/s")
    yield "sum 16384x1024 last dim", time_ms(lambda: x.sum(1)), B, "GB/s"
    yield "sum 16384x1024 first dim", time_ms(lambda: x.sum(0)), B, "GB/s"
    yield "sum 16M all", time_ms(lambda: x.sum()), B, "GB/s"
    gemms = [("sgemm 4096x4096x4096", 1, 4096, 4096, 4096), ("sgemm 1600x768x128", 1, 1600, 768, 128),
             ("bmm 160x500x50x500", 160, 500, 50, 500)]
    for name, batch, m, k, nn in gemms:
        shape_a, shape_b = ((batch, m, k), (batch, k, nn)) if batch > 1 else ((m, k), (k, nn))
        a, b = torch.randn(*shape_a, device=dev, generator=g), torch.randn(*shape_b, device=dev, generator=g)
        yield name, time_ms(lambda: torch.matmul(a, b)), 2.0 * batch * m * nn * k, "GFLOP/s"


def attention_cases(L, S):
    """fused_attention's twins at MOSI's MulT shapes (bench_cuda_ops.cpp bench_attention): batch 16, 10 heads of
    width 5, MulT's future mask, dropout 0.3 in training. Yields (name, ms, amount, unit)."""
    dev, B, H, D = "cuda", 16, 10, 5
    E = H * D
    F = torch.nn.functional
    g = torch.Generator(device=dev).manual_seed(3)
    # [L, B, E] and [S, B, E]: nn.MultiheadAttention's default layout.
    q, k, v = (torch.randn(n, B, E, device=dev, generator=g).requires_grad_() for n in (L, S, S))
    grad = torch.randn(L, B, E, device=dev, generator=g)
    mask = torch.triu(torch.full((L, S), float("-inf"), device=dev), diagonal=1 + abs(S - L))
    scale = 1.0 / math.sqrt(D)

    def composite():
        qh = q.reshape(L, B * H, D).transpose(0, 1) * scale  # [B H, L, D]
        kh = k.reshape(S, B * H, D).transpose(0, 1)
        vh = v.reshape(S, B * H, D).transpose(0, 1)
        attn = F.dropout(torch.softmax(torch.baddbmm(mask, qh, kh.transpose(1, 2)), -1), p=0.3, training=True)
        return torch.bmm(attn, vh).transpose(0, 1).reshape(L, B, E)

    def sdpa():
        split = lambda x, n: x.reshape(n, B, H, D).permute(1, 2, 0, 3)  # [B, H, n, D]
        o = F.scaled_dot_product_attention(split(q, L), split(k, S), split(v, S), attn_mask=mask, dropout_p=0.3)
        return o.permute(2, 0, 1, 3).reshape(L, B, E)

    def fwd_bwd(f):
        def run():
            with torch.enable_grad():
                torch.autograd.grad(f(), (q, k, v), grad)
        return run

    pairs = B * H * L * S * D
    shape = f"B16 h10 L{L} S{S}"
    variants = [("", composite)]
    if hasattr(F, "scaled_dot_product_attention"):
        variants.append((" (sdpa)", sdpa))
    for suffix, f in variants:
        yield f"attention fwd {shape}{suffix}", time_ms(f), 4 * pairs, "GFLOP/s"
        yield f"attention fwd+bwd {shape}{suffix}", time_ms(fwd_bwd(f)), 12 * pairs, "GFLOP/s"


def lstm_cases():
    """nn.LSTM(768 -> 128) on the GPU (cuDNN) over 50 steps at batch 128, forward + backward."""
    lstm = torch.nn.LSTM(768, 128, batch_first=True).cuda()
    x = torch.randn(128, 50, 768, device="cuda")

    def step():
        with torch.enable_grad():
            out, _ = lstm(x)
            out.sum().backward()
        lstm.zero_grad()

    yield "lstm 768->128 T50 B128 fwd+bwd", time_ms(step), 3.0 * 2.0 * 128 * 50 * (768 + 128) * 4 * 128, "GFLOP/s"


def conv1d_cases():
    """nn.Conv1d at MulT's input projections on MOSI (kernel 5, no padding, no bias), cuDNN, forward + backward."""
    for c_in, L in ((768, 50), (20, 500)):
        B, c_out, K = 16, 50, 5
        x = torch.randn(B, c_in, L, device="cuda", requires_grad=True)
        w = (0.1 * torch.randn(c_out, c_in, K, device="cuda")).requires_grad_()

        def step():
            with torch.enable_grad():
                torch.nn.functional.conv1d(x, w).sum().backward()
            x.grad = None
            w.grad = None

        yield (f"conv1d {c_in}->{c_out} k{K} B{B} L{L} fwd+bwd", time_ms(step),
               3.0 * 2.0 * B * c_out * (L - K + 1) * c_in * K, "GFLOP/s")


def main():
    if not torch.cuda.is_available():
        print("bench_cuda_ops.py: no GPU visible to torch", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ours = None
    if "--ours" in sys.argv:
        with open(sys.argv[sys.argv.index("--ours") + 1]) as f:
            ours = {r["case"]: r for r in (json.loads(line) for line in f if line.startswith("{"))}
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}\n")
        print("| case | msmix ms | torch ms | msmix rate | torch rate | ratio |\n|---|---:|---:|---:|---:|---:|")
    def all_cases():
        with torch.no_grad():  # the attention cases turn grad mode back on where they need it
            yield from cases()
            yield from attention_cases(375, 500)
            yield from attention_cases(50, 50)
            yield from lstm_cases()
            yield from conv1d_cases()

    for name, ms, amount, unit in all_cases():
        rate = amount / (ms * 1e-3) / 1e9
        if ours is None:
            print(json.dumps({"case": name, "ms": round(ms, 4), "rate": round(rate, 2), "unit": unit}), flush=True)
        elif name in ours:
            r = ours[name]
            print(f"| {name} | {r['ms']:.4f} | {ms:.4f} | {r['rate']:.1f} {unit} | {rate:.1f} {unit} | "
                  f"{ms / r['ms']:.2f}x |", flush=True)
        else:
            print(f"| {name} | - | {ms:.4f} | - | {rate:.1f} {unit} | - |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
