"""`make run`: compile a bundled ResNet-18, check it against onnxruntime, compare speed.

The model is built in-process (mlc.zoo, random weights with a fixed seed): nothing is
downloaded.  Prints the compile summary, the largest difference from onnxruntime, and
both latencies (median of repeated runs, 1 thread and all threads).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from .api import tuning_summary
from .cli.common import median_ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18", help="zoo model (resnet18, mobilenetv2, bert, mlp)")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args(argv)

    import onnxruntime as ort

    import mlc
    from mlc import zoo

    print(f"building {args.model} (random weights, fixed seed) ...")
    model = zoo.build(args.model)
    feeds = zoo.example_inputs(args.model)
    t0 = time.perf_counter()
    mod = mlc.compile(model, target="x86")
    t_compile = time.perf_counter() - t0
    st = mod.stats
    print(f"compiled in {t_compile:.2f} s: {st['kernels']} kernels, arena {st['arena_bytes'] / 1e6:.1f} MB, "
          f"target {mod.target.cpu}; {tuning_summary(st)}")

    threads_all = os.cpu_count() or 1
    ref_sessions = {}
    for n in sorted({1, threads_all}):
        so = ort.SessionOptions()
        so.intra_op_num_threads = n
        so.log_severity_level = 3
        ref_sessions[n] = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ref = ref_sessions[1].run(None, feeds)
    out = mod.run(feeds)
    worst = 0.0
    ok = True
    for r, (name, v) in zip(ref, out.items()):
        diff = float(np.max(np.abs(v - r)))
        worst = max(worst, diff)
        ok &= bool(np.allclose(v, r, rtol=1e-4, atol=1e-5))
    print(f"matches onnxruntime: {'yes' if ok else 'NO'} (max abs difference {worst:.2e}, rtol 1e-4 / atol 1e-5)")

    flops = zoo.model_flops(args.model)
    print(f"\n{'threads':>8} {'mlc ms':>9} {'ort ms':>9} {'ratio':>7} {'mlc GFLOP/s':>12}")
    for n, sess in ref_sessions.items():
        mod.set_num_threads(n)
        t_mlc = median_ms(lambda: mod.run(feeds), args.repeat, warmup=1)
        t_ort = median_ms(lambda: sess.run(None, feeds), args.repeat, warmup=1)
        print(f"{n:>8} {t_mlc:>9.3f} {t_ort:>9.3f} {t_mlc / t_ort:>7.2f} {flops / t_mlc / 1e6:>12.1f}")
    print("\nratio = mlc / onnxruntime latency (below 1 means mlc is faster)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
