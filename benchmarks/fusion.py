"""Fusion and memory: kernels before/after fusion, speedup of fused over unfused, peak RSS.

Peak memory is measured in fresh processes (peak RSS, ``VmHWM``, after loading the model
and one run): onnxruntime creating a session from the .onnx file, mlc loading a saved ``.mlc``
artifact (the deployment path), and mlc compiling the .onnx in-process (which also holds
LLVM's compile-time memory).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile

from .harness import interleaved, table

MODELS = ("resnet18", "mobilenetv2", "bert", "mlp")


def _compile(model, fusion: bool, threads: int = 1):
    from mlc.compiler.pipeline import CompileOptions, compile_graph
    from mlc.frontend import import_model
    from mlc.graph.passes import default_passes
    from mlc.runtime.compiled_model import CompiledModel
    from mlc.target import Target
    import mlc.api  # noqa: F401
    exe = compile_graph(import_model(model), CompileOptions(
        target=Target.host(), passes=functools.partial(default_passes, fusion=fusion)))
    return CompiledModel(exe, num_threads=threads)


def fusion_rows(models=MODELS, repeat: int = 30) -> list:
    from mlc import zoo
    os.environ["MLC_TUNING_LOGS"] = "none"
    rows = []
    for name in models:
        model = zoo.build(name)
        feeds = zoo.example_inputs(name)
        fused, unfused = _compile(model, True), _compile(model, False)
        t = interleaved({"fused": lambda: fused.run(feeds), "unfused": lambda: unfused.run(feeds)},
                        repeat=repeat, rounds=3)
        rows.append({"model": name, "kernels_unfused": unfused.stats["kernels"],
                     "kernels_fused": fused.stats["kernels"], "unfused_ms": t["unfused"] * 1e3,
                     "fused_ms": t["fused"] * 1e3, "speedup": t["unfused"] / t["fused"],
                     "arena_fused_mb": fused.stats["arena_bytes"] / 1e6})
        print(f"  {name}: {rows[-1]['kernels_unfused']} -> {rows[-1]['kernels_fused']} kernels, "
              f"{rows[-1]['speedup']:.2f}x", flush=True)
    return rows


_CHILD = r"""
import json, sys
import numpy as np
kind, path, feeds_path = sys.argv[1:4]
feeds = dict(np.load(feeds_path))
if kind == "ort":
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    s.run(None, feeds)
elif kind == "mlc-load":
    import mlc
    m = mlc.load(path, num_threads=1); m.run(feeds)
else:
    import mlc
    m = mlc.compile(path, num_threads=1); m.run(feeds)
# VmHWM: this address space's peak RSS (ru_maxrss would include the parent's, kept over exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"maxrss_mb": hwm / 1024}))
"""


def memory_rows(models=MODELS) -> list:
    import numpy as np
    import mlc
    from mlc import zoo
    rows = []
    env = dict(os.environ, MLC_TUNING_LOGS=os.environ.get("MLC_TUNING_LOGS", ""))
    with tempfile.TemporaryDirectory() as d:
        for name in models:
            onnx_path = os.path.join(d, f"{name}.onnx")
            mlc_path = os.path.join(d, f"{name}.mlc")
            feeds_path = os.path.join(d, f"{name}.npz")
            model = zoo.build(name)
            with open(onnx_path, "wb") as f:
                f.write(model.SerializeToString())
            np.savez(feeds_path, **zoo.example_inputs(name))
            mod = mlc.compile(model, num_threads=1)
            mod.save(mlc_path)
            arena = mod.stats["arena_bytes"] / 1e6
            mod.close()
            res = {}
            for kind, path in (("ort", onnx_path), ("mlc-load", mlc_path), ("mlc-compile", onnx_path)):
                out = subprocess.run([sys.executable, "-c", _CHILD, kind, path, feeds_path], env=env,
                                     capture_output=True, text=True, check=True)
                res[kind] = json.loads(out.stdout.strip().splitlines()[-1])["maxrss_mb"]
            rows.append({"model": name, "ort_mb": res["ort"], "mlc_load_mb": res["mlc-load"],
                         "mlc_compile_mb": res["mlc-compile"], "arena_mb": arena})
            print(f"  {name}: ort {res['ort']:.0f} MB, mlc (load) {res['mlc-load']:.0f} MB, "
                  f"mlc (compile) {res['mlc-compile']:.0f} MB", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks fusion")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args(argv)
    rows = fusion_rows(args.models, args.repeat)
    print(table([[r["model"], r["kernels_unfused"], r["kernels_fused"], f"{r['unfused_ms']:.3f}",
                  f"{r['fused_ms']:.3f}", f"{r['speedup']:.2f}", f"{r['arena_fused_mb']:.1f}"] for r in rows],
                ["model", "kernels unfused", "kernels fused", "unfused ms", "fused ms", "speedup", "arena MB"]))
    return rows


def memory_main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks memory")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args(argv)
    rows = memory_rows(args.models)
    print(table([[r["model"], f"{r['ort_mb']:.0f}", f"{r['mlc_load_mb']:.0f}", f"{r['mlc_compile_mb']:.0f}",
                  f"{r['arena_mb']:.1f}"] for r in rows],
                ["model", "ort peak MB", "mlc load peak MB", "mlc compile peak MB", "mlc arena MB"]))
    return rows
