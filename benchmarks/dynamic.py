"""Dynamic shapes: a model with symbolic dims, called with shapes it has not seen.

For each (model, shape): the first call's time (it compiles the specialisation), then the
latency of later calls against the same model compiled statically for that shape with
``input_shapes=`` and against onnxruntime -- all at one thread, interleaved in one run.
The bar: a later call of the dynamic model is as fast as the static model's call (the
ratio dynamic/static is ~1: the only extra work is a dict lookup on the input shapes).
"""
from __future__ import annotations

import argparse
import time

from .harness import interleaved, ort_session, table

CASES = (("yolo", "images", [(1, 3, 128, 128), (1, 3, 96, 160), (1, 3, 192, 192)]),
         ("crnn", "input", [(1, 3, 32, 100), (1, 3, 32, 160), (1, 3, 32, 320)]))


def run(repeat: int = 30, rounds: int = 3) -> list:
    import numpy as np

    import mlc
    from mlc import zoo
    rows = []
    for name, input_name, shapes in CASES:
        model = zoo.build(name)
        dyn = mlc.compile(model, num_threads=1)
        sess = ort_session(model, 1)
        for shape in shapes:
            feeds = {input_name: np.random.default_rng(0).random(shape, dtype=np.float32)}
            t0 = time.perf_counter()
            dyn.run(feeds)
            first = time.perf_counter() - t0
            static = mlc.compile(model, input_shapes={input_name: shape}, num_threads=1)
            t = interleaved({"dynamic": lambda: dyn.run(feeds), "static": lambda: static.run(feeds),
                             "ort": lambda: sess.run(None, feeds)}, repeat=repeat, rounds=rounds)
            rows.append({"model": name, "shape": "x".join(map(str, shape)), "first_s": first,
                         "dynamic_ms": t["dynamic"] * 1e3, "static_ms": t["static"] * 1e3,
                         "ort_ms": t["ort"] * 1e3, "dyn_over_static": t["dynamic"] / t["static"],
                         "compiled": dyn.specializations_compiled})
            static.close()
        dyn.close()
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks dynamic")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    rows = run(args.repeat, args.rounds)
    print(table([[r["model"], r["shape"], f"{r['first_s']:.2f}", f"{r['dynamic_ms']:.3f}",
                  f"{r['static_ms']:.3f}", f"{r['dyn_over_static']:.3f}", f"{r['ort_ms']:.3f}",
                  r["compiled"]] for r in rows],
                ["model", "input shape", "1st call s", "dynamic ms", "static ms", "dyn/static",
                 "ort ms", "specialisations"]))
    return rows
