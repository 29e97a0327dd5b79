#!/usr/bin/python3
"""Writes the pickle fixtures for tests/data/test_pickle.cpp into tests/golden/pickle/.

Run with Debian's Python (it has numpy): /usr/bin/python3 tests/data/make_pickle_fixtures.py
The test suite only reads the committed files; it never needs Python.

Files:
  <case>_p<protocol>.pkl   valid pickles (protocols 2, 4, 5) of numpy arrays, strings and Python values
  evil_*.pkl               pickles that would run code if Python loaded them (never loaded here)
  truncated_*.pkl          valid pickles cut short
  expected.json            {"values": {case: tagged value}, "files": {file: {"value": case} or {"error": [parts]}}}

Tagged values (what the C++ Value must equal):
  {"t": "none"} | {"t": "bool"|"int"|"str", "v": ...} | {"t": "float", "v": x or "nan"/"inf"/"-inf"}
  {"t": "bytes", "hex": "..."} | {"t": "list"|"tuple"|"set", "items": [...]}
  {"t": "dict", "items": [[key, value], ...]}
  {"t": "ndarray", "dtype": "float32"|"<U5"|"object"|..., "shape": [...], "data": [row-major elements]}
Error offsets are found with pickletools, independently of the C++ reader.
"""
import collections
import json
import math
import os
import pickle
import pickletools
import subprocess

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "pickle")


def enc_float(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def dtype_name(dt):
    if dt.kind == "U":
        return "<U%d" % (dt.itemsize // 4)
    if dt.kind == "O":
        return "object"
    return dt.newbyteorder("=").name


def tag(v):
    if v is None:
        return {"t": "none"}
    if isinstance(v, (bool, np.bool_)):
        return {"t": "bool", "v": bool(v)}
    if isinstance(v, (int, np.integer)):
        return {"t": "int", "v": int(v)}
    if isinstance(v, (float, np.floating)):
        return {"t": "float", "v": enc_float(v)}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, (bytes, bytearray)):
        return {"t": "bytes", "hex": bytes(v).hex()}
    if isinstance(v, np.ndarray):
        flat = v.ravel(order="C").tolist()
        if v.dtype.kind == "f":
            flat = [enc_float(x) for x in flat]
        elif v.dtype.kind == "b":
            flat = [int(x) for x in flat]
        return {"t": "ndarray", "dtype": dtype_name(v.dtype), "shape": list(v.shape), "data": flat}
    if isinstance(v, dict):
        return {"t": "dict", "items": [[tag(k), tag(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"t": "tuple", "items": [tag(x) for x in v]}
    if isinstance(v, list):
        return {"t": "list", "items": [tag(x) for x in v]}
    if isinstance(v, (set, frozenset)):
        return {"t": "set", "items": [tag(x) for x in v]}
    raise TypeError(type(v))


def arrays_case():
    f4 = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    f4[1, 2] = -np.inf  # MMSA audio has -inf
    f4[0, 1] = np.nan
    return {
        "f4": f4,
        "f4_fortran": np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.5 - 3),
        "f8": np.array([[0.1, -2.5], [1e-300, 3.25], [1e300, -0.0]]),
        "f8_fortran": np.asfortranarray(np.linspace(-1, 1, 6).reshape(3, 2)),
        "i8": np.array([-(2**40), 0, 7, 2**62, -1], dtype=np.int64),
        "i4_fortran": np.asfortranarray(np.array([[1, -2, 3], [-4, 5, -6]], dtype=np.int32)),
        "i2": np.array([-300, 300], dtype=np.int16),
        "i1": np.array([-128, 127], dtype=np.int8),
        "u1": np.array([0, 255, 7], dtype=np.uint8),
        "u2": np.array([65535, 1], dtype=np.uint16),
        "u8": np.array([2**63 - 1, 3], dtype=np.uint64),
        "b1": np.array([[True, False, True], [False, False, True]]),
        "f8_big": np.array([1.5, -2.25, 1e10], dtype=">f8"),
        "i4_big": np.array([[1, -2], [300000, -400000]], dtype=">i4"),
        "zero_d": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "audio": np.array([[[1, -np.inf, 2], [0, 0, 0]], [[-1, 4, -np.inf], [5, 6, 7]]], dtype=np.float32),
    }


def strings_case():
    return {
        "ids": np.array(["03bSnISJMiM$_$1", "héllo", "日本語", "smile 😀", ""]),
        "u_fortran": np.asfortranarray(np.array([["a", "bb", "ccc"], ["dddd", "e", "ff"]])),
        "u_big": np.array(["xy", "z"], dtype=">U2"),
        "obj": np.array(["Positive", "Negative", "Neutral", "ünïcode"], dtype=object),
        "obj_fortran": np.asfortranarray(np.array([["a", "b"], ["c", "d"], ["e", "f"]], dtype=object)),
        "list_of_str": ["one", "two", "drei"],
        "U0": np.array(["", ""], dtype="U"),
    }


def python_case():
    shared = [1, 2, 3]
    return {
        "none": None,
        "true": True,
        "false": False,
        "ints": [0, 1, -1, 255, 256, 65535, 65536, -(2**31), 2**31 - 1, 2**31, 2**40, -(2**63), 2**63 - 1],
        "floats": [0.0, -0.0, 1.5, -2.75, 1e-310, 1e308, float("inf"), float("nan")],
        "str": "plain ascii",
        "unicode": "ümlaut ✓ 😀",
        "bytes": b"\x00\x01\xffraw",
        "empty_bytes": b"",
        "bytearray": bytearray(b"ba\x80"),
        "tuple": (1, "two", 3.0),
        "empty_tuple": (),
        "nested": {"a": {"b": {"c": [1, [2, [3, {"d": None}]]]}}},
        "int_keys": {1: "one", -5: "minus five", 2**40: "big"},
        "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
        "shared_twice": [shared, shared],
        "set": {7},
        "frozenset": frozenset(["only"]),
        "np_float32": np.float32(1.25),
        "np_float64": np.float64(-0.1),
        "np_int64": np.int64(-123456789012),
        "np_int32": np.int32(42),
        "np_bool": np.bool_(True),
        "long_str": "x" * 260,  # needs BINUNICODE, not SHORT_BINUNICODE
    }


def mmsa_case():
    rng = np.random.default_rng(7)

    def features(*shape):  # multiples of 1/8: exact in float32 and short in JSON
        return rng.integers(-24, 24, shape) / 8

    def split(n, offset):
        return {
            "raw_text": np.array(["text %d" % (offset + i) for i in range(n)]),
            "id": np.array(["vid%d$_$%d" % (offset + i, i) for i in range(n)]),
            "text": features(n, 1, 4).astype(np.float32),
            "audio": features(n, 2, 3),  # float64, as MMSA's feature tool writes
            "vision": features(n, 2, 2).astype(np.float32),
            "audio_lengths": [2] * n,
            "vision_lengths": np.array([1] * n, dtype=np.int64),
            "regression_labels": np.round(rng.uniform(-3, 3, n), 1).astype(np.float32),
            "annotations": np.array(["Positive"] * n, dtype=object),
        }

    return {"train": split(3, 0), "valid": split(1, 10), "test": split(1, 20)}


class Call:
    """A pickle of fn(*args), built without calling it: what a hostile file does."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


# What the C++ reader allows (data/pickle.cpp); the first other global is the one it must refuse.
ALLOWED = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
           "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
           "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer", "_codecs.encode",
           "__builtin__.bytes", "builtins.bytes", "__builtin__.bytearray", "builtins.bytearray",
           "__builtin__.set", "builtins.set", "__builtin__.frozenset", "builtins.frozenset",
           "collections.OrderedDict"}


class Reduced:
    """Pickles as fn(*args) followed by BUILD(state), exactly as numpy's own __reduce__ output does, but with
    any state: how a broken or hostile array looks."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def bad_array(shape, dtype, data, fortran=False):
    from numpy.core.multiarray import _reconstruct
    return Reduced(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, fortran, data))


def malformed_cases():
    from numpy.core.multiarray import scalar
    bad_order_f4 = Reduced(np.dtype, ("f4", False, True), (3, "x", None, None, None, -1, -1, 0))
    return {
        "bad_size_p2.pkl": (bad_array((1000, 1000), np.dtype("f4"), b"\0" * 8), ["1000000 x 4 bytes", "holds 8"]),
        "bad_huge_shape_p4.pkl": (bad_array((2**40, 2**40), np.dtype("f4"), b""), ["shape", "too large"]),
        "bad_negative_dim_p4.pkl": (bad_array((-1, 2), np.dtype("f8"), b""), ["negative dim"]),
        "bad_unicode_size_p4.pkl": (bad_array((2,), np.dtype("U3"), b"a\0\0\0" * 5), ["2 x 12 bytes", "holds 20"]),
        "bad_code_point_p4.pkl": (bad_array((1,), np.dtype("U1"), b"\x00\x00\x11\x00"), ["invalid code point 0x110000"]),
        "bad_byte_order_p4.pkl": (bad_array((1,), bad_order_f4, b"\0" * 4), ["byte order 'x'"]),
        "bad_object_element_p4.pkl": (np.array(["a", 1], dtype=object), ["object ndarray element 1 is int 1"]),
        "bad_object_count_p4.pkl": (bad_array((3,), np.dtype("O"), ["a", "b"]), ["needs 3 elements", "holds 2"]),
        "bad_datetime_p4.pkl": (np.array(["2020-01-01"], dtype="M8[D]"), ["unsupported numpy dtype 'M8'"]),
        "bad_complex_p4.pkl": (np.array([1j]), ["unsupported numpy dtype 'c16'"]),
        "bad_structured_p4.pkl": (np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), ["unsupported numpy dtype 'V8'"]),
        "bad_scalar_size_p2.pkl": (Reduced(scalar, (np.dtype("f8"), b"\0\0")), ["1 x 8 bytes", "holds 2"]),
        "bad_reconstruct_target_p4.pkl": (Reduced(np.core.multiarray._reconstruct, (np.dtype, (0,), b"b")),
                                          ["_reconstruct only rebuilds numpy.ndarray"]),
        # allocation bombs: zero-width elements, and one long string listed many times (memo references)
        "bomb_u0_p4.pkl": (bad_array((2**40,), np.dtype("U0"), b""), ["would take", "more than the pickle's size"]),
        "bomb_object_p4.pkl": (bad_array((1000,), np.dtype("O"), ["x" * 2000] * 1000), ["would take"]),
        "bad_rank_p4.pkl": (bad_array((1,) * 65, np.dtype("u1"), b"\1"), ["65 dims"]),
        "bad_ndarray_call_p4.pkl": (Reduced(np.ndarray, ((2,),)), ["numpy.ndarray may only be passed to _reconstruct"]),
    }


def first_refused_global(data):
    """(dotted name, offset) of the first GLOBAL, STACK_GLOBAL or INST outside ALLOWED. STACK_GLOBAL takes its
    names from the stack: the last two values pushed, strings or memo gets of strings, are tracked."""
    pushed, memo = [], {}
    for op, arg, pos in pickletools.genops(data):
        name = None
        if op.name in ("GLOBAL", "INST"):
            name = arg.replace(" ", ".")
        elif op.name == "STACK_GLOBAL":
            name = "%s.%s" % (pushed[-2], pushed[-1])
        if name is not None and name not in ALLOWED:
            return name, pos
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"):
            pushed.append(arg)
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushed[-1]
        elif op.name not in ("FRAME", "PROTO"):
            pushed.append(None)
    raise ValueError("no refused global")


def truncation_offset(data, cut):
    """Offset of the opcode a reader of data[:cut] fails at: a FRAME whose declared bytes pass the cut, else
    the opcode the cut lands in, or the cut itself when it falls between opcodes."""
    last = 0
    for op, arg, pos in pickletools.genops(data):
        if op.name == "FRAME" and pos < cut < pos + 9 + arg:
            return pos
        if pos >= cut:
            return pos if pos == cut else last
        last = pos
    return last


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}

    def write(name, data, exp):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        expected[name] = exp

    values = {}
    for case, make in (("arrays", arrays_case), ("strings", strings_case), ("python", python_case)):
        value = make()
        values[case] = tag(value)
        for protocol in (2, 4, 5):
            write("%s_p%d.pkl" % (case, protocol), pickle.dumps(value, protocol=protocol), {"value": case})
    mmsa = mmsa_case()
    values["mmsa_like"] = tag(mmsa)
    write("mmsa_like_p4.pkl", pickle.dumps(mmsa, protocol=4), {"value": "mmsa_like"})

    # Hostile pickles: each would run a command or code under pickle.load. Written, never loaded.
    evil = {
        "evil_os_system_p2.pkl": pickle.dumps(Call(os.system, ("echo pwned",)), protocol=2),
        "evil_eval_p4.pkl": pickle.dumps(Call(eval, ("__import__('os').system('echo pwned')",)), protocol=4),
        "evil_popen_p5.pkl": pickle.dumps(Call(subprocess.Popen, (["echo", "pwned"],)), protocol=5),
        # hidden after valid arrays, inside a nested dict
        "evil_nested_p4.pkl": pickle.dumps(
            {"train": {"text": np.zeros((2, 2), np.float32), "x": [Call(os.system, ("echo pwned",))]}}, protocol=4),
        # numpy is not allowlisted wholesale: numpy.load would open a file
        "evil_numpy_load_p4.pkl": pickle.dumps(Call(np.load, ("/etc/passwd",)), protocol=4),
        # hand-written: GLOBAL 'os system' (the name os.system really pickles to is posix.system)
        "evil_os_literal_p2.pkl": b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R.",
        # hand-written protocol 0 INST: calls os.system('echo pwned') on creation
        "evil_inst_p0.pkl": b"(X\x0a\x00\x00\x00echo pwnedios\nsystem\n.",
    }
    for name, data in evil.items():
        glob, pos = first_refused_global(data)
        write(name, data, {"error": ["refused global '%s'" % glob, "byte offset %d" % pos]})

    # Malformed arrays and dtypes: refused with a message naming the problem.
    for name, (value, parts) in malformed_cases().items():
        write(name, pickle.dumps(value, protocol=int(name[-5])), {"error": parts})

    # Truncated pickles: inside a string payload, one byte into an opcode, inside a protocol 4 FRAME (the
    # FRAME's declared length is what fails), and just before STOP.
    def truncate(name, full, cut):
        write(name, full[:cut], {"error": ["truncated", "byte offset %d" % truncation_offset(full, cut)]})

    full2 = pickle.dumps(arrays_case(), protocol=2)
    ops = list(pickletools.genops(full2))
    _, arg, pos = max((o for o in ops if o[0].name == "BINUNICODE"), key=lambda o: len(o[1]))
    truncate("truncated_payload_p2.pkl", full2, pos + 5 + len(arg.encode("utf-8")) // 2)
    truncate("truncated_opcode_p2.pkl", full2, ops[len(ops) // 2][2] + 1)
    full4 = pickle.dumps(mmsa, protocol=4)
    truncate("truncated_frame_p4.pkl", full4, len(full4) // 2)
    truncate("truncated_stop_p2.pkl", full2, len(full2) - 1)

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"values": values, "files": expected}, f, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        f.write("\n")
    for name in sorted(expected):
        print("%-28s %6d bytes" % (name, os.path.getsize(os.path.join(OUT, name))))


if __name__ == "__main__":
    main()
