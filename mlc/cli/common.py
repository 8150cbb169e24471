"""Helpers shared by the CLI commands: options, model loading, inputs, tables."""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ..errors import InputError, MlcError
from ..runtime.artifact import is_artifact  # noqa: F401  (used here and by the commands)


def add_debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors")


def add_compile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="x86",
                   help="x86 (this machine, default), x86-avx2, x86-avx512, or 'x86 -mcpu=NAME'")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME:D1,D2,...",
                   help="bind an input's shape (symbolic dims), e.g. x:1,3,224,224; repeatable")


def add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array from a .npy file; repeatable")
    p.add_argument("--inputs", metavar="FEEDS.npz", help="all inputs from one .npz (keys = input names)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random inputs used when none are given (default 0)")


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="worker threads (default: $MLC_NUM_THREADS or all cores)")


def parse_input_shapes(specs: list) -> dict | None:
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.rpartition(":")
        if not sep or not name:
            raise InputError(f"--input-shape {spec!r}: expected NAME:D1,D2,... (e.g. x:1,3,224,224)")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            raise InputError(f"--input-shape {spec!r}: dimensions must be integers") from None
        if any(d < 0 for d in shape):
            raise InputError(f"--input-shape {spec!r}: dimensions must be >= 0")
        shapes[name] = shape
    return shapes or None


def check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise MlcError(f"no such file: {path}")
    if os.path.isdir(path):
        raise MlcError(f"{path} is a directory, not a model file")


def load_or_compile(path: str, args, quiet: bool = False):
    """A CompiledModel from an .mlc artifact or an ONNX file (compiled with the command's
    --target / --input-shape).  Returns (model, seconds, how)."""
    import mlc
    check_exists(path)
    threads = getattr(args, "threads", None)
    t0 = time.perf_counter()
    if is_artifact(path):
        mod = mlc.load(path, num_threads=threads)
        how = "loaded"
    else:
        mod = mlc.compile(path, target=getattr(args, "target", "x86"),
                          input_shapes=parse_input_shapes(getattr(args, "input_shape", [])),
                          num_threads=threads)
        how = "compiled"
    return mod, time.perf_counter() - t0, how


def fixed_model(mod, feeds: dict | None = None):
    """A CompiledModel: ``mod`` itself, or for a model with symbolic input dims (a
    DynamicModel) its specialisation for the shapes of ``feeds``."""
    from ..runtime.compiled_model import CompiledModel
    if isinstance(mod, CompiledModel):
        return mod
    if feeds:
        checked = {n: mod._check(n, feeds[n]) for n in mod.input_names if n in feeds}
        if len(checked) == len(mod.input_names):
            return mod.specialize(checked)
    raise InputError(f"the model has symbolic input dimensions ({symbolic_dims(mod)}): bind them with "
                     "--input-shape NAME:D1,D2,... (or give input files)")


def symbolic_dims(mod) -> str:
    sig = getattr(mod, "signature", [])
    return ", ".join(f"{s.name}: {['?' if d is None else d for d in (s.dims or ())]}" for s in sig
                     if s.dims is None or None in s.dims) or "unknown"


def load_feed_files(args) -> dict:
    """The arrays named by --inputs / --input (read before any compiling, so a typo fails fast)."""
    feeds: dict = {}
    if getattr(args, "inputs", None):
        check_exists(args.inputs)
        try:
            with np.load(args.inputs, allow_pickle=False) as z:
                feeds.update({k: z[k] for k in z.files})
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {args.inputs} as an .npz archive: {exc}") from None
    for spec in getattr(args, "input", []) or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--input {spec!r}: expected NAME=FILE.npy")
        check_exists(path)
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path} as a .npy array: {exc}") from None
    return feeds


def read_feeds(mod, args, feeds: dict | None = None) -> tuple[dict, str]:
    """Inputs from --input/--inputs (``feeds`` if already read), else seeded random ones.
    Returns (feeds, description)."""
    from ..runtime.profile import random_inputs
    if feeds is None:
        feeds = load_feed_files(args)
    if not feeds:
        return random_inputs(mod.inputs, seed=getattr(args, "seed", 0)), \
            f"random inputs (seed {getattr(args, 'seed', 0)})"
    unknown = [k for k in feeds if k not in mod.input_names]
    missing = [k for k in mod.input_names if k not in feeds]
    if unknown or missing:
        parts = ([f"missing input(s) {missing}"] if missing else []) + \
                ([f"unknown input(s) {unknown}"] if unknown else [])
        raise InputError(f"{'; '.join(parts)}; the model's inputs are "
                         + ", ".join(f"{t.name}: {t.dtype}{list(t.shape)}" for t in mod.inputs))
    return feeds, "given inputs"


def table(head: list, rows: list, right: set | None = None) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(head)]
    right = right if right is not None else set(range(1, len(head)))

    def fmt(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])


def median_ms(fn, repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def positive(name: str, minimum: int = 1):
    """argparse type: an integer >= ``minimum`` (1 unless a count may be zero)."""
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {v}")
        return v
    return conv
