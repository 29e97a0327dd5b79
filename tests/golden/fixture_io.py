"""What the golden scripts share: values rounded the way a fixture stores them, the fixture's tensor layout
(tests/golden/golden.h), the grad summaries, and writing a fixture file."""
import json
import os


def rounded(t):
    """t with every value rounded to 6 significant digits (as written), as a float32 tensor of t's shape."""
    import torch
    return torch.tensor([float("%.6g" % x) for x in t.detach().double().reshape(-1).tolist()]).reshape(t.shape)


def fmt(t):
    return {"shape": list(t.shape), "data": [float("%.6g" % x) for x in t.detach().double().reshape(-1).tolist()]}


def grad_summaries(out, model, full=lambda name: False):
    """gsum.<name> and gsq.<name> (sum and sum of squares of the grad) for every parameter with a grad, and
    grad.<name> in full where full(name)."""
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.double()
        out["gsum." + name] = fmt(g.sum().reshape(1))
        out["gsq." + name] = fmt((g * g).sum().reshape(1))
        if full(name):
            out["grad." + name] = fmt(p.grad)


def write_fixture(folder, name, out):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), "bytes")
