"""``mlc.tune``: measure schedules of every task of a model and log the results.

The loop, per round:

1. the task scheduler picks the task where one more batch is expected to save the most
   end-to-end time: weight x current best latency x an estimate of the room left (high
   while the task keeps improving, decaying when batches stop helping).  A task whose
   last ``patience`` batches brought no gain >= 1% is converged and left alone.
2. the task's search proposes a batch of unmeasured candidates (model-guided simulated
   annealing, or random);
3. candidates are built in parallel, run one by one in the isolated runner, checked
   against the default schedule's outputs, and written to the log as they complete;
4. the cost model is refit on everything measured.

When the budget is spent, each task's finalists (its ``confirm`` fastest schedules) are
re-timed side by side, interleaved, for a few rounds, and every re-timing is logged: one
measurement is off by up to ~10% on a shared host, so the single fastest one is mostly
the luckiest.  The best is then the fastest finalist by median, wherever logs are read
(:func:`~mlc.tuning.records.by_schedule`).

Every task's default schedule is measured first: the baseline, and the reference output
every candidate is checked against.  ``resume=True`` reads the log first: measured
candidates are not measured again and the cost model starts from them.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import TuningError
from ..target import Target
from .cost_model import CostModel
from .measure import DaskExecutor, LocalExecutor, outputs_match
from .records import Record, RecordWriter, read_records
from .search import ModelGuidedSearch, RandomSearch
from .tasks import Task, extract_tasks


@dataclass
class TaskState:
    task: Task
    search: object
    measured: dict = field(default_factory=dict)      # config -> median cost (None = error)
    samples: dict = field(default_factory=dict)       # config -> every valid cost measured
    retimed: set = field(default_factory=set)         # finalists timed side by side
    reference: list | None = None
    default_cost: float | None = None
    best_cost: float = math.inf
    best_config: tuple | None = None
    trials: int = 0
    errors: int = 0
    stale_batches: int = 0
    history: list = field(default_factory=list)       # (global trial index, best cost so far)
    converged: bool = False

    def note(self, cfg: tuple, cost: float | None) -> None:
        """One more measurement of ``cfg`` (None: it failed)."""
        if cost is None:
            self.measured.setdefault(cfg, None)
            return
        self.samples.setdefault(cfg, []).append(cost)
        self.measured[cfg] = float(np.median(self.samples[cfg]))

    def rebest(self) -> None:
        """Best config and cost after re-timing the finalists: the fastest of them by
        median (a single measurement from another minute is not comparable; the same
        rule as :func:`~mlc.tuning.records.by_schedule` applies to logs)."""
        ok = [(v, c) for c, v in self.measured.items() if v is not None
              and (not self.retimed or c in self.retimed)]
        if ok:
            self.best_cost, self.best_config = min(ok, key=lambda vc: vc[0])

    def best_first(self) -> list:
        ok = [(c, v) for c, v in self.measured.items() if v is not None]
        return [c for c, _ in sorted(ok, key=lambda cv: cv[1])]


@dataclass
class TuneResult:
    log: str
    trials: int
    seconds: float
    tasks: list                       # per task summary dicts
    model_quality: dict
    curve: list                       # (trial, estimated model latency) across the run

    def summary(self) -> str:
        lines = [f"tuned {len(self.tasks)} tasks with {self.trials} trials in {self.seconds:.0f} s -> {self.log}"]
        lines.append(f"{'task':50} {'w':>3} {'trials':>6} {'default ms':>11} {'best ms':>9} {'speedup':>8}")
        for t in self.tasks:
            d, b = t["default_ms"], t["best_ms"]
            sp = f"{d / b:.2f}x" if d and b else "-"
            lines.append(f"{t['desc'][:50]:50} {t['weight']:>3} {t['trials']:>6} "
                         f"{(d or float('nan')):>11.4f} {(b or float('nan')):>9.4f} {sp:>8}")
        q = self.model_quality
        if q.get("tasks"):
            lines.append(f"cost model on held-out measurements: Spearman {q['spearman']:.2f}, "
                         f"top-8 recall {q['top8_recall']:.2f} ({q['test_rows']} rows, {q['tasks']} tasks)")
        return "\n".join(lines)


class _Progress:
    def __init__(self, enabled: bool, total: int, budget_s: float | None):
        self.enabled = enabled and sys.stderr.isatty() or enabled == "always"
        self.total = total
        self.budget = budget_s
        self.t0 = time.time()

    def update(self, st: TaskState, done: int):
        if not self.enabled:
            return
        el = time.time() - self.t0
        frac = done / self.total if self.total else 0
        if self.budget:
            frac = max(frac, el / self.budget)
        eta = el / frac - el if frac > 0 else float("nan")
        gflops = st.task.flops / st.best_cost / 1e9 if st.best_cost < math.inf else 0.0
        msg = (f"\r[{done:5d}/{self.total}] {st.task.desc[:42]:42} trials {st.trials:4d} "
               f"best {gflops:7.1f} GFLOP/s  ETA {eta:5.0f}s ")
        sys.stderr.write(msg)
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")


def tune(model, target: "str | Target" = "x86", trials: int = 2000, log: str | None = None,
         time_budget: float | None = None, input_shapes: dict | None = None, cluster=None,
         strategy: str = "model", batch: int = 32, resume: bool = True, threads: int = 1,
         seed: int = 0, patience: int = 4, progress=True, warm_start_logs: list | None = None,
         tasks_filter=None, executor=None, confirm: int = 5) -> TuneResult:
    """Tune every task of ``model`` (path, bytes or ModelProto); records go to ``log``.

    ``trials``: measurement budget over all tasks; ``time_budget``: seconds (either limit
    stops the run).  ``strategy``: "model" (cost-model-guided) or "random".  ``cluster``:
    a dask.distributed scheduler address (or Client) to measure on.  ``threads``: the
    thread count to tune for (1 = single-thread latency).  ``confirm``: finalists per task
    re-timed side by side at the end (0: none).
    """
    from .. import api  # noqa: F401  (registers the operator library)
    from ..frontend import import_model
    t0 = time.time()
    tgt = Target.from_string(target)
    if log is None:
        from .records import user_cache_dir
        log = os.path.join(user_cache_dir(), "tune.jsonl")
    graph = import_model(model, input_shapes=input_shapes, expand_control_flow=True)
    tasks = extract_tasks(graph, tgt, threads)
    if tasks_filter is not None:
        tasks = [t for t in tasks if tasks_filter(t)]
    if not tasks:
        raise TuningError("the model has no kernels to tune")
    if confirm < 0:
        raise TuningError(f"confirm must be >= 0 finalists per task, got {confirm}")
    writer = RecordWriter(log)
    cost_model = CostModel(seed)
    previous = read_records(log) if resume and os.path.exists(log) else []
    for path in warm_start_logs or []:
        if os.path.abspath(path) != os.path.abspath(log):
            previous.extend(r for r in read_records(path) if r.target == tgt.key)
    cost_model.warm_start(r for r in previous if r.target == tgt.key)
    if executor is None:
        executor = DaskExecutor(cluster) if cluster is not None else LocalExecutor()
    target_dict = tgt.to_dict()
    rng = random.Random(seed)

    states: dict = {}
    for t in tasks:
        feature_fn = _feature_fn(t, tgt, threads)
        search = ModelGuidedSearch(t.space, cost_model, feature_fn, seed=rng.randrange(1 << 30)) \
            if strategy == "model" else RandomSearch(t.space, seed=rng.randrange(1 << 30))
        st = TaskState(t, search)
        for r in previous:
            # a cost measured in the other mode (warm before the task was measured cold)
            # is not comparable: that configuration is measured again
            if r.key == t.key and r.target == tgt.key and r.config is not None and r.cold == t.cold:
                cfg = t.space.upgrade(r.config)
                if cfg is None:
                    continue
                st.note(cfg, r.cost if r.ok else None)
                if r.ok and r.retimed:
                    st.retimed.add(cfg)
        st.rebest()
        states[t.key] = st

    total_trials = 0
    curve: list = []
    prog = _Progress(progress, trials, time_budget)

    def confirm_finalists(st: TaskState, top: int, rounds: int = 3) -> None:
        """Re-time the task's ``top`` fastest configs and its default side by side,
        ``rounds`` times each, interleaved (a slow or fast spell of the host then touches
        them all alike): the speedup over the default is then judged fairly too."""
        t = st.task
        default = t.space.default()
        finalists = st.best_first()[:top]
        if st.measured.get(default) is not None and default not in finalists:
            finalists.append(default)
        if len(finalists) < 2:
            return
        scheds = [t.space.schedule(c).to_json() for c in finalists]
        built = executor.build([(t.kernel, sj, target_dict, False, threads, t.cold) for sj in scheds])
        for _ in range(rounds):
            for c, sj, b in zip(finalists, scheds, built):
                if b.error:
                    continue
                res = executor.run(b, target_dict, seed=int(t.key[:6], 16), threads=threads, cold=t.cold,
                                   want_outputs=False)
                writer.write(Record(t.key, tgt.key, sj, list(c), res.cost if not res.error else None,
                                    res.costs, res.error, t.flops, None, str(t), cold=t.cold, retimed=True))
                if not res.error:
                    st.note(c, res.cost)
                    st.retimed.add(c)
        st.rebest()
        st.default_cost = st.measured.get(default)

    def out_of_budget() -> bool:
        return total_trials >= trials or (time_budget is not None and time.time() - t0 >= time_budget)

    def measure(st: TaskState, cfgs: list) -> int:
        nonlocal total_trials
        t = st.task
        jobs = []
        scheds = []
        for c in cfgs:
            try:
                sj = t.space.schedule(c).to_json()
            except Exception as exc:
                sj = None
                scheds.append((c, None, f"invalid schedule: {exc}"))
                continue
            scheds.append((c, sj, None))
            jobs.append((t.kernel, sj, target_dict, True, threads, t.cold))
        built_iter = iter(executor.build(jobs)) if jobs else iter(())
        improved = 0
        for c, sj, err in scheds:
            if out_of_budget() and st.reference is not None:
                break
            built = next(built_iter) if sj is not None else None
            cost, costs, feats = None, [], None
            if err is None:
                feats = built.features
                res = executor.run(built, target_dict, seed=int(t.key[:6], 16), threads=threads, cold=t.cold)
                err = res.error
                if err is None:
                    if st.reference is None:
                        st.reference = res.outputs
                    else:
                        err = outputs_match(res.outputs, st.reference)
                    if err is None:
                        cost, costs = res.cost, res.costs
            writer.write(Record(t.key, tgt.key, sj or [], list(c), cost, costs, err, t.flops, feats, str(t),
                                cold=t.cold))
            st.note(c, cost)
            st.trials += 1
            total_trials += 1
            if cost is None:
                st.errors += 1
            else:
                cost_model.add(t.key, feats, 1.0 / cost)
                if cost < st.best_cost * 0.99:
                    improved += 1
                if cost < st.best_cost:
                    st.best_cost, st.best_config = cost, c
            st.history.append((total_trials, st.best_cost))
            curve.append((total_trials, _model_estimate(states)))
            prog.update(st, total_trials)
        return improved

    try:
        # baselines first: the default schedule of every task
        for st in states.values():
            d = st.task.space.default()
            # measured even when resuming: its outputs are the reference for the task
            measure(st, [d])
            st.default_cost = st.measured.get(d)
            if st.reference is None:
                st.converged = True       # even the default failed to run: nothing to compare with
        cost_model.fit()
        while not out_of_budget():
            live = [s for s in states.values() if not s.converged]
            if not live:
                break
            st = max(live, key=_expected_gain)
            n = min(batch, max(1, trials - total_trials))
            cfgs = st.search.propose(n, set(st.measured), st.best_first())
            if not cfgs:
                st.converged = True
                continue
            improved = measure(st, cfgs)
            st.stale_batches = 0 if improved else st.stale_batches + 1
            if st.stale_batches >= patience or len(st.measured) >= st.task.space.size:
                st.converged = True
            cost_model.fit()
        if confirm > 0:
            for st in states.values():
                confirm_finalists(st, confirm)
    finally:
        prog.close()
        executor.close()
        writer.close()

    quality = cost_model.quality() if cost_model.size >= 16 else {}
    summaries = []
    for st in states.values():
        summaries.append({"key": st.task.key, "desc": st.task.desc, "weight": st.task.weight,
                          "flops": st.task.flops, "trials": st.trials, "errors": st.errors,
                          "default_ms": st.default_cost * 1e3 if st.default_cost else None,
                          "best_ms": st.best_cost * 1e3 if st.best_cost < math.inf else None,
                          "history": st.history})
    return TuneResult(log, total_trials, time.time() - t0, summaries, quality, curve)


def _expected_gain(st: TaskState) -> float:
    """Time one more batch is expected to save across the model (seconds per inference)."""
    if st.best_cost == math.inf:
        return 0.0
    base = st.task.weight * st.best_cost
    room = 0.5 if st.trials < 64 else 0.25
    room *= 0.5 ** st.stale_batches
    return base * room


def _model_estimate(states: dict) -> float:
    total = 0.0
    for st in states.values():
        c = st.best_cost if st.best_cost < math.inf else (st.default_cost or 0.0)
        total += st.task.weight * c
    return total


def _feature_fn(task: Task, target: Target, threads: int):
    from ..loop.lower import lower
    from .features import LENGTH, extract_features

    def fn(cfg):
        try:
            lk = lower(task.kernel, task.space.schedule(cfg), target.lanes_f32)
            return extract_features(lk, target, threads, task.cold)
        except Exception:
            return np.zeros(LENGTH, dtype=np.float32)
    return fn
