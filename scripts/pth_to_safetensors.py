#!/usr/bin/python3
"""Convert a PyTorch / MMSA .pth state_dict into a .safetensors file that msmix loads.

    /usr/bin/python3 scripts/pth_to_safetensors.py tfn-mosi.pth tfn-mosi.safetensors
    build/msmix eval --model tfn --data aligned_50.pkl --weights tfn-mosi.safetensors

The input may be a state_dict (name -> tensor, as MMSA saves with torch.save(model.state_dict(), path)) or a
checkpoint dict holding one under 'state_dict', 'model_state_dict' or 'model'. Wrapper prefixes are removed
when every name carries them: DataParallel's 'module.', then MMSA's AMIO 'Model.' (each with a note;
--keep-prefix turns this off, --strip-prefix removes any other prefix). Dtypes are kept: int64 buffers such
as BatchNorm's num_batches_tracked stay I64 and msmix converts them on load (a note lists them);
--skip-counters leaves them out instead (msmix then keeps its own count, with a note on load). A table of
names, dtypes and shapes is printed.

Security: a .pth file is a pickle, and unpickling can execute arbitrary code. PyTorch < 2.6 does so by default
unless torch.load(..., weights_only=True) is used. This script passes weights_only=True whenever the installed
torch supports it (1.13 and later), which only admits tensors, dicts, lists and plain values; --unsafe-full-load
turns that off for trusted files that need it (e.g. a whole pickled nn.Module).

The safetensors format is written by hand (json + struct), no `safetensors` package needed:
8-byte little-endian header length N, N bytes of JSON header padded with spaces to a multiple of 8, then the
raw little-endian tensor bytes. Tensors are laid out by element size (largest first), then by name, so every
tensor starts at a multiple of its element size, as the reference implementation does.
"""
import argparse
import inspect
import json
import os
import struct
import sys
import tempfile

import torch

# torch dtype -> (safetensors dtype name, element size in bytes)
DTYPES = {
    torch.float64: ("F64", 8),
    torch.float32: ("F32", 4),
    torch.float16: ("F16", 2),
    torch.bfloat16: ("BF16", 2),
    torch.int64: ("I64", 8),
    torch.int32: ("I32", 4),
    torch.int16: ("I16", 2),
    torch.int8: ("I8", 1),
    torch.uint8: ("U8", 1),
    torch.bool: ("BOOL", 1),
}


def tensor_bytes(t):
    """Raw little-endian bytes of a tensor, row-major."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the same 2 bytes as int16
        t = t.view(torch.int16)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    array = t.numpy()
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} to `path` atomically (temp file in the same folder, fsync, rename)."""
    entries = []
    for name, t in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"bad tensor name {name!r}")
        if t.dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {t.dtype} has no safetensors equivalent msmix reads")
        entries.append((name, t))
    entries.sort(key=lambda e: (-DTYPES[e[1].dtype][1], e[0]))  # aligned: largest elements first

    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in entries:
        data = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # the data buffer starts 8-byte aligned

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder {folder} does not exist")
    fd, temp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".tmp.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for data in blobs:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def load_pth(path, unsafe):
    """torch.load on the CPU, weights-only whenever this torch can."""
    kwargs = {"map_location": "cpu"}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = not unsafe
    elif not unsafe:
        sys.exit(f"error: torch {torch.__version__} cannot load weights-only; update torch (>= 1.13) or pass "
                 "--unsafe-full-load for a file you trust")
    try:
        return torch.load(path, **kwargs)
    except Exception as e:  # a pickle error message is the most useful thing to show
        hint = "" if unsafe else " (a file holding more than tensors and plain values needs --unsafe-full-load)"
        sys.exit(f"error: cannot load {path}: {type(e).__name__}: {e}{hint}")


def find_state_dict(obj, path):
    """The name -> tensor mapping inside what torch.load returned, or a clear exit."""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if not isinstance(obj, dict):
        sys.exit(f"error: {path} holds a {type(obj).__name__}, not a state_dict or a checkpoint dict")
    for key in ("state_dict", "model_state_dict", "model"):
        inner = obj.get(key)
        if isinstance(inner, torch.nn.Module):
            return inner.state_dict()
        if isinstance(inner, dict) and inner and all(torch.is_tensor(v) for v in inner.values()):
            print(f"using the state_dict under '{key}'")
            return inner
    if not obj:
        sys.exit(f"error: {path} holds an empty dict")
    others = [f"{k!r} ({type(v).__name__})" for k, v in obj.items() if not torch.is_tensor(v)]
    if others:
        sys.exit(f"error: {path} is not a state_dict: entries that are not tensors: {', '.join(others[:10])}"
                 f"{' ...' if len(others) > 10 else ''} (and no 'state_dict' / 'model_state_dict' / 'model' entry)")
    return obj


# Wrapper prefixes removed when every name carries one, outermost first: DataParallel wraps MMSA's AMIO.
WRAPPERS = ("module.", "Model.")


def strip_wrappers(state):
    """Removes 'module.' and then 'Model.' when every name starts with it (the wrappers hold nothing else)."""
    for prefix in WRAPPERS:
        names = [n for n in state if isinstance(n, str)]
        if names and len(names) == len(state) and all(n.startswith(prefix) for n in names):
            print(f"note: removed the prefix '{prefix}' that every name carries "
                  f"({'DataParallel' if prefix == 'module.' else 'MMSA AMIO wrapper'})")
            state = {n[len(prefix):]: t for n, t in state.items()}
    return state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a .pth / .pt file written by torch.save")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--strip-prefix", action="append", default=[], metavar="PREFIX",
                        help="remove PREFIX from the names that start with it (repeatable), e.g. 'Model.' for "
                             "MMSA's AMIO wrapper or 'module.' for DataParallel")
    parser.add_argument("--keep-prefix", action="store_true",
                        help="keep a 'module.' / 'Model.' prefix that every name carries (removed by default)")
    parser.add_argument("--skip-counters", action="store_true",
                        help="leave out num_batches_tracked buffers (msmix keeps its own count)")
    parser.add_argument("--unsafe-full-load", action="store_true",
                        help="torch.load with weights_only=False: runs any code in the pickle; trusted files only")
    args = parser.parse_args(argv)

    state = find_state_dict(load_pth(args.input, args.unsafe_full_load), args.input)
    if not args.keep_prefix:
        state = strip_wrappers(state)
    tensors, skipped = {}, []
    for name, t in state.items():
        if not isinstance(name, str):
            sys.exit(f"error: {args.input}: name {name!r} is not a string")
        if not torch.is_tensor(t):
            sys.exit(f"error: {args.input}: '{name}' is a {type(t).__name__}, not a tensor")
        for prefix in args.strip_prefix:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        if name in tensors:
            sys.exit(f"error: two tensors are named '{name}' after stripping {args.strip_prefix}")
        if args.skip_counters and name.endswith("num_batches_tracked"):
            skipped.append(name)
            continue
        if t.dtype not in DTYPES:
            sys.exit(f"error: '{name}' has dtype {t.dtype}; msmix reads {', '.join(n for n, _ in DTYPES.values())}")
        tensors[name] = t

    width = max([len(n) for n in tensors] + [4])
    print(f"{'name':<{width}}  dtype  shape")
    for name in sorted(tensors):
        t = tensors[name]
        print(f"{name:<{width}}  {DTYPES[t.dtype][0]:<5}  {list(t.shape)}")
    total = sum(t.numel() for t in tensors.values())
    print(f"{len(tensors)} tensors, {total} values")
    if skipped:
        print(f"note: left out {len(skipped)} counter buffer(s) (--skip-counters): {', '.join(skipped)}")
    ints = [n for n in sorted(tensors) if not tensors[n].is_floating_point()]
    if ints:
        print(f"note: {len(ints)} integer tensor(s) kept as integers (msmix converts them to float32 on load): "
              f"{', '.join(ints[:6])}{' ...' if len(ints) > 6 else ''}")
    firsts = {n.split(".", 1)[0] + "." for n in tensors if "." in n}
    if len(firsts) == 1 and not args.strip_prefix and firsts & set(WRAPPERS):
        print(f"note: every name starts with '{firsts.pop()}' (kept: --keep-prefix); msmix modules do not carry "
              "MMSA's AMIO ('Model.') or DataParallel ('module.') wrapper")

    metadata = {"format": "pt", "source": os.path.basename(args.input), "converted_by": "msmix pth_to_safetensors.py",
                "torch_version": torch.__version__}
    try:
        write_safetensors(args.output, tensors, metadata)
    except OSError as e:
        sys.exit(f"error: cannot write {args.output}: {e}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
