"""Tuning efficiency: model-guided search vs random search on one task, same machine, one run.

The bar: the model-guided search reaches the best latency that random search finds in
N trials with at most N/4 trials.

Each search logs its latencies as it goes, but the two runs are minutes apart and this
machine's clock wanders (4.1-4.5 GHz): one schedule measured in both runs can differ by
10%.  So the verdict does not compare logged numbers across runs.  After both searches,
the schedules that matter -- random search's best of all N trials, and the model-guided
search's best-so-far after k trials for several k -- are built again and timed side by
side, interleaved, in this process; the smallest k whose schedule is at least as fast as
random search's best is the answer.  The logged curves are printed (and plotted) too.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from .harness import table

CHECKPOINTS = (1, 32, 64, 128, 250, 500, 1000, 2000)


def _task_filter(pattern: str):
    return lambda t: pattern in t.desc


def _run(model, strategy: str, trials: int, log: str, task: str, seed: int):
    import mlc
    return mlc.tune(model, trials=trials, log=log, strategy=strategy, batch=32, resume=False,
                    progress=False, seed=seed, tasks_filter=_task_filter(task), patience=10 ** 9)


def _best_so_far(log: str, k: int):
    """The fastest valid record among a log's first ``k`` measurements."""
    from mlc.tuning.records import read_records
    recs = [r for r in read_records(log)[:k] if r.ok]
    return min(recs, key=lambda r: r.cost) if recs else None


def _side_by_side(model, task: str, scheds: dict, rounds: int = 7) -> dict:
    """Fastest time of each schedule (name -> schedule trace) of the task, interleaved."""
    import mlc.api  # noqa: F401  (registers the operator library)
    from mlc.frontend import import_model
    from mlc.target import Target
    from mlc.tuning.measure import build_candidate, run_in_process
    from mlc.tuning.tasks import extract_tasks
    target = Target.host()
    td = target.to_dict()
    t = next(t for t in extract_tasks(import_model(model, expand_control_flow=True), target)
             if task in t.desc)
    built = {name: build_candidate(t.kernel, s, td, features=False) for name, s in scheds.items()}
    best = {name: float("inf") for name in built}
    for _ in range(rounds):
        for name, b in built.items():
            res = run_in_process(b, td, seed=1, repeat=3, want_outputs=False, cold=t.cold)
            if res.error:
                raise RuntimeError(f"{name}: {res.error}")
            best[name] = min(best[name], res.cost)
    return best


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
    n_random, n_guided = args.random_trials, args.random_trials // 4
    with tempfile.TemporaryDirectory() as d:
        r_log, g_log = os.path.join(d, "random.jsonl"), os.path.join(d, "model.jsonl")
        rnd = _run(model, "random", n_random, r_log, args.task, args.seed)
        guided = _run(model, "model", n_guided, g_log, args.task, args.seed)
        r_best = _best_so_far(r_log, n_random)
        ks = [k for k in CHECKPOINTS if k <= n_guided]
        g_best = {k: _best_so_far(g_log, k) for k in ks}
    scheds = {"random": r_best.sched}
    scheds.update({f"guided@{k}": r.sched for k, r in g_best.items()})
    timed = _side_by_side(model, args.task, scheds)

    r_hist, g_hist = rnd.tasks[0]["history"], guided.tasks[0]["history"]
    flops = rnd.tasks[0]["flops"]
    print(f"task {rnd.tasks[0]['desc']} ({flops / 1e6:.0f} MFLOP); default schedule = trial 1 of both")
    rows = []
    for k in CHECKPOINTS:
        r = [c for t, c in r_hist if t <= k]
        g = [c for t, c in g_hist if t <= k]
        rows.append([k, f"{min(r) * 1e3:.4f}" if r else "-", f"{min(g) * 1e3:.4f}" if g else "-"])
    print("as logged by each run (different minutes: the clock may differ between columns)")
    print(table(rows, ["trials", "random best ms", "model-guided best ms"]))
    t_random = timed["random"]
    print("\nre-timed side by side (fastest of 7 interleaved rounds):")
    rows = [[f"random, best of {n_random}", f"{t_random * 1e3:.4f}", f"{flops / t_random / 1e9:.1f}", "1.000"]]
    for k in ks:
        t = timed[f"guided@{k}"]
        rows.append([f"model-guided, best of {k}", f"{t * 1e3:.4f}", f"{flops / t / 1e9:.1f}",
                     f"{t / t_random:.3f}"])
    print(table(rows, ["schedule", "ms", "GFLOP/s", "vs random"]))
    reached = next((k for k in ks if timed[f"guided@{k}"] <= t_random), None)
    within = next((k for k in ks if timed[f"guided@{k}"] <= t_random * 1.02), None)
    print(f"model-guided search reached random search's {n_random}-trial best after "
          f"{reached if reached else 'more than ' + str(n_guided)} trials "
          f"(within 2%: {within if within else 'more than ' + str(n_guided)}); bar: <= {n_guided}")
    from mlc.errors import TuningError
    try:
        import types

        from mlc.cli.tune import plot_curve
        curve = lambda hist: types.SimpleNamespace(curve=[(k, c) for k, c in hist])
        plot_curve(curve(g_hist), args.plot, label="model-guided", other=curve(r_hist))
        print(f"wrote {args.plot}")
    except TuningError as exc:  # matplotlib is optional
        print(f"(no plot: {exc})")
    return {"random_ms": t_random * 1e3, "reached_at": reached, "within_2pct_at": within,
            "timed": timed}
