"""``mlc run``: run a model (.mlc or .onnx) on inputs from files or random ones."""
from __future__ import annotations

import argparse

import numpy as np

from .common import (add_compile_options, add_debug, add_input_options, add_threads, fixed_model,
                     load_feed_files, load_or_compile, read_feeds)


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run a model on inputs (.npy/.npz files, or random)",
        description="Run a model once.  Inputs come from --input NAME=FILE.npy (repeatable) or "
                    "--inputs FEEDS.npz, else seeded random data of the right shapes and dtypes.  "
                    "Outputs go to --output OUT.npz, or a summary is printed.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mlc run model.mlc --input x=x.npy --output out.npz\n"
               "  mlc run model.onnx --input-shape x:1,3,224,224")
    p.add_argument("model", help="an .mlc artifact or an ONNX model (compiled first)")
    add_input_options(p)
    p.add_argument("-o", "--output", metavar="OUT.npz", help="write the outputs to an .npz archive")
    add_threads(p)
    add_compile_options(p)
    add_debug(p)
    p.set_defaults(func=run)


def summarize(outputs: dict) -> str:
    from .common import table
    rows = []
    for name, v in outputs.items():
        if v.size and v.dtype.kind in "fiub":
            a = v.astype(np.float64) if v.dtype.kind != "b" else v.astype(np.int8)
            stats = [f"{a.min():.6g}", f"{a.max():.6g}", f"{a.mean():.6g}"]
        else:
            stats = ["-", "-", "-"]
        rows.append([name, "x".join(map(str, v.shape)) or "scalar", str(v.dtype)] + stats)
    return table(["output", "shape", "dtype", "min", "max", "mean"], rows, right={3, 4, 5})


def run(args) -> int:
    given = load_feed_files(args)
    mod, seconds, how = load_or_compile(args.model, args)
    mod = fixed_model(mod, given)
    feeds, where = read_feeds(mod, args, given)
    outputs = mod.run(feeds)
    if args.output:
        try:
            np.savez(args.output, **outputs)
        except OSError as exc:
            from ..errors import MlcError
            raise MlcError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"{args.model} ({how} in {seconds:.2f} s) on {where}: wrote {len(outputs)} output(s) "
              f"to {args.output}")
    else:
        print(f"{args.model} ({how} in {seconds:.2f} s) on {where}:")
        print(summarize(outputs))
    return 0
