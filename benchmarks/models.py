"""Zoo models: mlc vs onnxruntime latency, same run, 1 and 2 threads, GFLOP/s, % of peak.

``--logs none`` measures mlc's untuned default schedules; by default the shipped tuning
logs apply (as a plain ``mlc.compile`` does).
"""
from __future__ import annotations

import argparse
import os

from .harness import alternating, ort_session, table

MODELS = ("resnet18", "mobilenetv2", "bert", "mlp")


def run(models=MODELS, threads=(1, 2), repeat: int = 30, rounds: int = 3, logs: str | None = None,
        peak_gflops: float | None = None, quiet: bool = False) -> list:
    import mlc
    from mlc import zoo
    if logs is not None:
        os.environ["MLC_TUNING_LOGS"] = logs
    rows = []
    for name in models:
        model = zoo.build(name)
        feeds = zoo.example_inputs(name)
        flops = zoo.model_flops(name)
        mod = mlc.compile(model)
        tuned = mod.stats.get("tuning", {}).get("tuned", 0)
        for n in threads:
            mod.set_num_threads(n)

            def ort_factory(n=n):
                sess = ort_session(model, n)
                return lambda: sess.run(None, feeds)
            t = alternating(lambda: mod.run(feeds), ort_factory, repeat=repeat, rounds=rounds)
            g = flops / t["mlc"] / 1e9
            row = {"model": name, "threads": n, "mlc_ms": t["mlc"] * 1e3, "ort_ms": t["ort"] * 1e3,
                   "ratio": t["mlc"] / t["ort"], "mlc_gflops": g, "ort_gflops": flops / t["ort"] / 1e9,
                   "kernels": mod.stats["kernels"], "tuned": tuned}
            if peak_gflops:
                row["mlc_pct_peak"] = 100 * g / (peak_gflops * n)
                row["ort_pct_peak"] = 100 * row["ort_gflops"] / (peak_gflops * n)
            rows.append(row)
            if not quiet:
                print(f"  {name} x{n}: mlc {row['mlc_ms']:.3f} ms, ort {row['ort_ms']:.3f} ms, "
                      f"ratio {row['ratio']:.2f}", flush=True)
        mod.close()
    return rows


def format_rows(rows: list) -> str:
    headers = ["model", "thr", "mlc ms", "ort ms", "mlc/ort", "mlc GFLOP/s", "ort GFLOP/s", "mlc %peak",
               "ort %peak", "kernels", "tuned"]
    out = []
    for r in rows:
        out.append([r["model"], r["threads"], f"{r['mlc_ms']:.3f}", f"{r['ort_ms']:.3f}", f"{r['ratio']:.2f}",
                    f"{r['mlc_gflops']:.1f}", f"{r['ort_gflops']:.1f}",
                    f"{r.get('mlc_pct_peak', float('nan')):.0f}", f"{r.get('ort_pct_peak', float('nan')):.0f}",
                    r["kernels"], r["tuned"]])
    return table(out, headers)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks models")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--logs", default=None, help="MLC_TUNING_LOGS for mlc: 'none' = untuned defaults")
    args = ap.parse_args(argv)
    from .peak import measure_peak_gflops
    peak = measure_peak_gflops()
    print(f"FMA peak (one core, measured now): {peak:.1f} GFLOP/s")
    rows = run(args.models, args.threads, args.repeat, args.rounds, args.logs, peak)
    print(format_rows(rows))
    return rows
