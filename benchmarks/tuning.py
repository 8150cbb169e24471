"""Tuning efficiency: model-guided search vs random search on one task, same machine, one run.

The bar: the model-guided search reaches the best latency that random search finds in
N trials with at most N/4 trials.  Prints both curves (best latency after k trials) and
the first trial at which the model-guided search matched random search's final best
(exactly, and within a 2% measurement-noise band), and writes a PNG of the curves.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from .harness import table


def _task_filter(pattern: str):
    return lambda t: pattern in t.desc


def _run(model, strategy: str, trials: int, log: str, task: str, seed: int):
    import mlc
    return mlc.tune(model, trials=trials, log=log, strategy=strategy, batch=32, resume=False,
                    progress=False, seed=seed, tasks_filter=_task_filter(task), patience=10 ** 9)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks tuning")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--task", default="Conv+Relu [1x8x28x28x16]",
                    help="substring of the task description to tune (see mlc tune's summary)")
    ap.add_argument("--random-trials", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default="tuning_curve.png")
    args = ap.parse_args(argv)
    from mlc import zoo
    model = zoo.build(args.model)
    with tempfile.TemporaryDirectory() as d:
        rnd = _run(model, "random", args.random_trials, os.path.join(d, "random.jsonl"), args.task, args.seed)
        guided = _run(model, "model", args.random_trials // 4, os.path.join(d, "model.jsonl"), args.task,
                      args.seed)
    r_hist = rnd.tasks[0]["history"]
    g_hist = guided.tasks[0]["history"]
    best_random = min(c for _, c in r_hist)
    first = lambda hist, bound: next((k for k, c in hist if c <= bound), None)
    exact = first(g_hist, best_random)
    noisy = first(g_hist, best_random * 1.02)
    flops = rnd.tasks[0]["flops"]
    rows = []
    for k in (1, 10, 32, 64, 128, 250, 500, 1000, 2000):
        r = [c for t, c in r_hist if t <= k]
        g = [c for t, c in g_hist if t <= k]
        rows.append([k, f"{min(r) * 1e3:.4f}" if r else "-", f"{min(g) * 1e3:.4f}" if g else "-"])
    print(f"task {rnd.tasks[0]['desc']} ({flops / 1e6:.0f} MFLOP)")
    print(table(rows, ["trials", "random best ms", "model-guided best ms"]))
    print(f"random search, {args.random_trials} trials: best {best_random * 1e3:.4f} ms "
          f"({flops / best_random / 1e9:.1f} GFLOP/s)")
    print(f"model-guided search reached it at trial {exact} (exactly) / {noisy} (within 2%), "
          f"budget {args.random_trials // 4}")
    try:
        from mlc.cli.tune import plot_curve
        import types
        curve = lambda hist: types.SimpleNamespace(curve=[(k, c) for k, c in hist])
        plot_curve(curve(g_hist), args.plot, label="model-guided", other=curve(r_hist))
        print(f"wrote {args.plot}")
    except Exception as exc:  # plotting is optional
        print(f"(no plot: {exc})")
    return {"best_random": best_random, "model_trials_exact": exact, "model_trials_2pct": noisy}
