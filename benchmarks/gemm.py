"""sgemm: mlc's MatMul kernel vs numpy (OpenBLAS) at 256..2048, one thread."""
from __future__ import annotations

import argparse
import os

from .harness import interleaved, table


def main(argv=None):
    # OpenBLAS reads its environment once, when numpy loads it: run in a fresh process
    # with one thread and without the variables that force its slower kernel
    if os.environ.get("MLC_GEMM_BENCH_CHILD") != "1":
        import subprocess
        import sys
        env = dict(os.environ, MLC_GEMM_BENCH_CHILD="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            env.pop(var, None)
        return subprocess.run([sys.executable, "-m", "benchmarks", "gemm"] + list(argv or []), env=env).returncode
    ap = argparse.ArgumentParser(prog="python -m benchmarks gemm")
    ap.add_argument("--sizes", nargs="*", type=int, default=[256, 512, 1024, 2048])
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args(argv)
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    import mlc
    rows = []
    for n in args.sizes:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "mm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
                              [numpy_helper.from_array(b, "b")])
        mod = mlc.compile(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), num_threads=1)
        t = interleaved({"mlc": lambda: mod(a), "numpy": lambda: a @ b}, repeat=args.repeat, rounds=3)
        fl = 2 * n ** 3
        rows.append([n, f"{fl / t['mlc'] / 1e9:.1f}", f"{fl / t['numpy'] / 1e9:.1f}", f"{t['numpy'] / t['mlc']:.2f}"])
        print(f"  n={n}: mlc {fl / t['mlc'] / 1e9:.1f} GFLOP/s, numpy {fl / t['numpy'] / 1e9:.1f}", flush=True)
    print(table(rows, ["n", "mlc GFLOP/s", "numpy GFLOP/s", "mlc/numpy"]))
    return rows
