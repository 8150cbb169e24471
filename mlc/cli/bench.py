"""``mlc bench``: mlc and onnxruntime side by side, 1 thread and all threads."""
from __future__ import annotations

import argparse
import os

import numpy as np

from ..errors import MlcError
from .common import (add_compile_options, add_debug, add_input_options, check_exists, fixed_model, is_artifact,
                     load_feed_files, median_ms, parse_input_shapes, positive, read_feeds, table)


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="latency of mlc vs onnxruntime, 1 thread and all threads",
        description="Compile an ONNX model with mlc, run it and onnxruntime on the same inputs "
                    "with 1 thread and with all threads, and print median latencies, their ratio "
                    "and GFLOP/s.  FLOPs are the model's Conv/Gemm/MatMul multiply-adds x 2 "
                    "(mlc.zoo.count_flops), or mlc's kernel count when shapes are symbolic.  An "
                    ".mlc artifact is timed alone.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mlc bench model.onnx --repeat 100")
    p.add_argument("model", help="an ONNX model (or an .mlc artifact: mlc only)")
    p.add_argument("--repeat", type=positive("--repeat"), default=50, help="timed runs per setting (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--threads", metavar="N[,N...]", default=None,
                   help="thread counts to compare (default: 1 and all cores)")
    add_input_options(p)
    add_compile_options(p)
    add_debug(p)
    p.set_defaults(func=run)


def _thread_counts(spec) -> list:
    if spec is None:
        return sorted({1, os.cpu_count() or 1})
    try:
        counts = [int(x) for x in str(spec).split(",") if x.strip()]
    except ValueError:
        raise MlcError(f"--threads {spec!r}: expected integers, e.g. 1,2") from None
    if not counts or any(c < 1 for c in counts):
        raise MlcError(f"--threads {spec!r}: thread counts must be >= 1")
    return counts


def _flops(path: str, mod, args) -> tuple:
    import onnx
    try:
        from ..zoo.flops import count_flops
        proto = onnx.load(path)
        shapes = parse_input_shapes(args.input_shape) or {}
        for inp in proto.graph.input:
            if inp.name in shapes:
                dims = inp.type.tensor_type.shape.dim
                for d, v in zip(dims, shapes[inp.name]):
                    d.dim_value = v
        n = count_flops(proto)
        if n > 0:
            return n, "Conv/Gemm/MatMul FLOPs"
    except Exception:        # symbolic shapes etc.: fall back to mlc's own count
        pass
    return sum(int(k.flops or 0) for k in mod.kernels), "mlc kernel FLOPs"


def run(args) -> int:
    import mlc
    check_exists(args.model)
    counts = _thread_counts(args.threads)
    given = load_feed_files(args)
    artifact = is_artifact(args.model)
    if artifact:
        mod = mlc.load(args.model)
        ort = None
    else:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MlcError("mlc bench compares against onnxruntime, which is not installed "
                           "(pip install onnxruntime)") from None
        mod = mlc.compile(args.model, target=args.target, input_shapes=parse_input_shapes(args.input_shape))
    mod = fixed_model(mod, given)
    feeds, where = read_feeds(mod, args, given)
    flops, flop_kind = _flops(args.model, mod, args) if not artifact else \
        (sum(int(k.flops or 0) for k in mod.kernels), "mlc kernel FLOPs")
    ref = None
    rows = []
    for n in counts:
        mod.set_num_threads(n)
        t_mlc = median_ms(lambda: mod.run(feeds), args.repeat, args.warmup)
        row = [str(n), f"{t_mlc:.3f}"]
        if ort is not None:
            so = ort.SessionOptions()
            so.intra_op_num_threads = n
            so.inter_op_num_threads = 1
            so.log_severity_level = 3
            sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
            ort_feeds = {k: v for k, v in feeds.items()}
            if ref is None:
                ref = sess.run(None, ort_feeds)
            t_ort = median_ms(lambda: sess.run(None, ort_feeds), args.repeat, args.warmup)
            row += [f"{t_ort:.3f}", f"{t_ort / t_mlc:.2f}x"]
        row.append(f"{flops / (t_mlc * 1e6):.1f}" if flops else "-")
        if ort is not None:
            row.append(f"{flops / (t_ort * 1e6):.1f}" if flops else "-")
        rows.append(row)
    head = ["threads", "mlc ms"] + (["ort ms", "ort/mlc"] if ort is not None else []) + ["mlc GFLOP/s"] + \
        (["ort GFLOP/s"] if ort is not None else [])
    print(f"{args.model}: {len(mod.kernels)} kernels, {flops / 1e9:.3f} GFLOP per inference ({flop_kind}), "
          f"{where}, median of {args.repeat} runs (latency of mod.run / session.run, Python call included)")
    print(table(head, rows))
    if ref is not None:
        got = mod.run(feeds)
        diffs = []
        for t, r in zip(mod.outputs, ref):
            g = got[t.name]
            if g.shape == r.shape and g.dtype.kind in "fc":
                diffs.append(float(np.max(np.abs(g.astype(np.float64) - r))) if g.size else 0.0)
            elif g.shape == r.shape:
                diffs.append(float(np.count_nonzero(g != r)))
        if diffs:
            print(f"max |mlc - onnxruntime| over outputs: {max(diffs):.3g}")
    mod.close()
    return 0
