"""Tuning efficiency: model-guided search vs random search, per task, same machine, one run.

The bar: the model-guided search reaches the best latency that random search finds in
N trials with at most N/4 trials.

Each search logs its latencies as it goes, but one measurement on this host is off by up
to ~10% (the clock wanders 4.1-4.5 GHz, neighbours come and go), so the verdict does not
compare logged numbers.  After both searches, the schedules that matter -- the one random
search's log selects after all N trials (its finalists re-timed, see ``mlc tune
--confirm``), and the one the model-guided log selects after its first k trials for
several k -- are built again and timed side by side, interleaved, in this process, over
many rounds; the median of each decides.  Random search's schedule is built twice and
timed as two entries: how far apart the two copies land is the resolution of the
verdict.  The smallest k whose schedule is random search's pick itself or at least as
fast as it (and the smallest within that resolution) is the answer.  The logged curves
are printed (and plotted) too.

Two tasks of ResNet-18 by default: the 7x7 stem convolution (the most room between the
default schedule and the best) and a 3x3 convolution of layer 1 with its residual add.
"""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from .harness import table

CHECKPOINTS = (1, 32, 64, 128, 250, 500, 1000, 2000)
TASKS = ("Conv+Relu [1x4x112x112x16]", "Conv+Add+Relu [1x4x56x56x16]")


def _task_filter(pattern: str):
    return lambda t: pattern in t.desc


def _run(model, strategy: str, trials: int, log: str, task: str, seed: int):
    import mlc
    return mlc.tune(model, trials=trials, log=log, strategy=strategy, batch=32, resume=False,
                    progress=False, seed=seed, tasks_filter=_task_filter(task), patience=10 ** 9)


def _selected(log: str, k: int | None = None):
    """The record a compile would apply from a log's first ``k`` lines (all: None)."""
    from mlc.tuning.records import by_schedule, read_records
    groups = list(by_schedule(read_records(log)[:k]).values())
    return groups[0][0][0] if groups else None


def _side_by_side(model, task: str, scheds: dict, rounds: int = 25) -> dict:
    """Median time of each schedule (name -> schedule trace) of the task, interleaved."""
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
    times = {name: [] for name in built}
    for _ in range(rounds):
        for name, b in built.items():
            res = run_in_process(b, td, seed=1, repeat=3, want_outputs=False, cold=t.cold)
            if res.error:
                raise RuntimeError(f"{name}: {res.error}")
            times[name].append(res.cost)
    return {name: float(np.median(v)) for name, v in times.items()}


def compare(model, task: str, n_random: int, seed: int, logdir: str, plot: str | None) -> dict:
    """Tune ``task`` both ways and re-time what each search selected; prints the tables."""
    n_guided = n_random // 4
    r_log, g_log = os.path.join(logdir, "random.jsonl"), os.path.join(logdir, "model.jsonl")
    rnd = _run(model, "random", n_random, r_log, task, seed)
    guided = _run(model, "model", n_guided, g_log, task, seed)
    ks = [k for k in CHECKPOINTS if k < n_guided] + [n_guided]
    # the last checkpoint is the whole guided log, its finalists' re-timings included
    g_sel = {k: _selected(g_log, None if k == n_guided else k) for k in ks}
    r_sel = _selected(r_log)
    scheds = {"random": r_sel.sched, "random (copy)": r_sel.sched}
    scheds.update({f"guided@{k}": r.sched for k, r in g_sel.items()})
    timed = _side_by_side(model, task, scheds)

    r_hist, g_hist = rnd.tasks[0]["history"], guided.tasks[0]["history"]
    flops = rnd.tasks[0]["flops"]
    print(f"\ntask {rnd.tasks[0]['desc']} ({flops / 1e6:.0f} MFLOP); default schedule = trial 1 of both; "
          f"random search measured {rnd.trials} candidates (its space may be smaller than {n_random})")
    rows = []
    for k in CHECKPOINTS:
        r = [c for t, c in r_hist if t <= k]
        g = [c for t, c in g_hist if t <= k]
        rows.append([k, f"{min(r) * 1e3:.4f}" if r else "-", f"{min(g) * 1e3:.4f}" if g else "-"])
    print("fastest single measurement as logged by each run (minutes apart; the luckiest draw, not the typical)")
    print(table(rows, ["trials", "random best ms", "model-guided best ms"]))
    t_random = timed["random"]
    # the same schedule as random search's pick has reached it, whatever the timer says
    same = {k for k in ks if g_sel[k].sched == r_sel.sched}
    resolution = abs(timed["random (copy)"] / t_random - 1.0)
    print(f"\nre-timed side by side (median of 25 interleaved rounds; the two copies of random search's "
          f"pick differ by {resolution * 100:.1f}%):")
    rows = [[f"random, selected after {rnd.trials}", f"{t_random * 1e3:.4f}", f"{flops / t_random / 1e9:.1f}",
             "1.000", ""],
            ["  same schedule, second copy", f"{timed['random (copy)'] * 1e3:.4f}",
             f"{flops / timed['random (copy)'] / 1e9:.1f}", f"{timed['random (copy)'] / t_random:.3f}", "yes"]]
    for k in ks:
        t = timed[f"guided@{k}"]
        rows.append([f"model-guided, selected after {k}", f"{t * 1e3:.4f}", f"{flops / t / 1e9:.1f}",
                     f"{t / t_random:.3f}", "yes" if k in same else ""])
    print(table(rows, ["schedule", "ms", "GFLOP/s", "vs random", "same schedule as random's"]))
    reached = next((k for k in ks if k in same or timed[f"guided@{k}"] <= t_random), None)
    within = next((k for k in ks if k in same or timed[f"guided@{k}"] <= t_random * (1 + resolution)), None)
    more = f"more than {n_guided}"
    print(f"model-guided search reached random search's pick after {reached or more} trials "
          f"(within the {resolution * 100:.1f}% resolution: {within or more}); bar: <= {n_guided}")
    if plot:
        from mlc.errors import TuningError
        try:
            import types

            from mlc.cli.tune import plot_curve
            curve = lambda hist: types.SimpleNamespace(curve=[(k, c) for k, c in hist])
            plot_curve(curve(g_hist), plot, label="model-guided", other=curve(r_hist))
            print(f"wrote {plot}")
        except TuningError as exc:  # matplotlib is optional
            print(f"(no plot: {exc})")
    return {"task": task, "random_ms": t_random * 1e3, "reached_at": reached, "within_resolution_at": within,
            "resolution": resolution, "timed": timed}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks tuning")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--task", action="append", default=None,
                    help="substring of a task description to tune (see mlc tune's summary); repeatable; "
                         f"default: {' and '.join(TASKS)}")
    ap.add_argument("--random-trials", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default="tuning_curve.png", help="curve PNG (task i > 0 adds -i to the name)")
    ap.add_argument("--keep", default=None, help="directory to keep the tuning logs in")
    args = ap.parse_args(argv)
    from mlc import zoo
    model = zoo.build(args.model)
    results = []
    for i, task in enumerate(args.task or TASKS):
        root, ext = os.path.splitext(args.plot)
        plot = args.plot if i == 0 else f"{root}-{i}{ext}"
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(args.keep, str(i)) if args.keep else tmp
            os.makedirs(d, exist_ok=True)
            results.append(compare(model, task, args.random_trials, args.seed, d, plot))
    return results
