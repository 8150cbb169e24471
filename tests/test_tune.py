"""The autotuner: records, isolation of bad candidates, resuming, applying logs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import mlc
from mlc.tuning.measure import Built, ParamSpec, Runner, outputs_match
from mlc.tuning.records import Record, RecordWriter, load_best, pick_best, read_records

from conftest import ort_run, single_op_model

TARGET_KEY = mlc.Target.host().key


def _rec(key="k", cost=1.0, target=TARGET_KEY, sched=None, **kw):
    """A record; its schedule differs per cost unless ``sched`` names one."""
    sched = [["split", "s", "i", sched if sched is not None else int((cost or 0) * 1000)]]
    return Record(key=key, target=target, sched=sched, config=[1], cost=cost, costs=[cost], **kw)


def _matmul_model(n=64, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    return single_op_model("MatMul", {"a": a}, {"y": ("float32", (n, n))}, initializers={"b": b}), {"a": a}


def _trials(recs):
    """The search's own measurements (not the finalists' re-timings)."""
    return [r for r in recs if not r.retimed]


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------

def test_records_round_trip_and_best(tmp_path):
    path = tmp_path / "log.jsonl"
    with RecordWriter(str(path)) as w:
        w.write(_rec("a", 3.0))
        w.write(_rec("a", 1.0))
        w.write(_rec("a", None, error="crashed"))
        w.write(_rec("b", 2.0, target="othercpu:avx2"))
        w.write(_rec("c", 5.0, mlc="0.0.1"))
    recs = read_records(str(path))
    assert len(recs) == 5
    best = load_best([str(path)], TARGET_KEY)
    assert set(best.best) == {"a"} and best.best["a"].cost == 1.0
    assert best.other_target == 1 and best.incompatible == 1



def test_pick_best_keeps_the_fastest_valid_records_per_task_and_target(tmp_path):
    log = tmp_path / "full.jsonl"
    with RecordWriter(str(log)) as w:
        for cost in (5.0, 1.0, 4.0, 2.0, 3.0):
            w.write(_rec("a", cost, features=[cost] * 3))
        w.write(_rec("a", None, error="wrong result"))
        w.write(_rec("a", 0.5, target="othercpu:avx2"))
        w.write(_rec("b", 7.0))
        w.write(_rec("c", 0.1, mlc="0.0.1"))          # an incompatible version is dropped
    out = tmp_path / "best.jsonl"
    assert pick_best([str(log)], str(out), per_task=2) == 4
    recs = read_records(str(out))
    assert sorted((r.target == TARGET_KEY, r.key, r.cost) for r in recs) == [
        (False, "a", 0.5), (True, "a", 1.0), (True, "a", 2.0), (True, "b", 7.0)]
    assert next(r for r in recs if r.cost == 2.0).features == [2.0] * 3
    assert load_best([str(out)], TARGET_KEY).best["a"].cost == load_best([str(log)], TARGET_KEY).best["a"].cost

def test_retimed_finalists_rank_first_by_their_median(tmp_path):
    """One lucky measurement (a fast spell of the host) does not make a schedule the best:
    the finalists re-timed side by side rank first, by their medians; compile applies,
    and distilling keeps, what is fastest typically."""
    log = tmp_path / "log.jsonl"
    with RecordWriter(str(log)) as w:
        for cost in (1.0, 1.3, 1.28, 1.32):          # lucky first draw, then re-timed slower
            w.write(_rec("a", cost, sched=1, retimed=cost != 1.0))
        for cost in (1.2, 1.25, 1.22):
            w.write(_rec("a", cost, sched=2, retimed=cost != 1.2))
        # measured once, in another minute, never beside the finalists: not comparable
        w.write(_rec("a", 1.1, sched=3))
    best = load_best([str(log)], TARGET_KEY).best["a"]
    assert (best.sched[0][-1], best.cost) == (2, 1.22)
    out = tmp_path / "best.jsonl"
    assert pick_best([str(log)], str(out), per_task=1) == 3
    assert sorted(r.cost for r in read_records(str(out))) == [1.2, 1.22, 1.25]
    assert load_best([str(out)], TARGET_KEY).best["a"].cost == 1.22


def test_tuning_retimes_each_tasks_finalists_side_by_side(tmp_path):
    model, feeds = _matmul_model(96)
    log = str(tmp_path / "mm.jsonl")
    res = mlc.tune(model, trials=8, log=log, batch=8, progress=False, resume=False, confirm=3)
    recs = read_records(log)
    trials, retimed = _trials(recs), [r for r in recs if r.retimed]
    assert len(trials) == res.trials == 8 and all(r.ok for r in recs)
    # the three fastest and the default (the baseline of the speedup), three rounds, interleaved
    finalists = [r.config for r in sorted(trials, key=lambda r: r.cost)[:3]]
    if trials[0].config not in finalists:
        finalists.append(trials[0].config)
    assert [r.config for r in retimed] == finalists * 3
    medians = {tuple(c): float(np.median([r.cost for r in recs if r.config == c])) for c in finalists}
    assert res.tasks[0]["best_ms"] == pytest.approx(min(medians.values()) * 1e3)
    assert res.tasks[0]["default_ms"] == pytest.approx(medians[tuple(trials[0].config)] * 1e3)
    assert load_best([log], TARGET_KEY).best[trials[0].key].cost == pytest.approx(min(medians.values()))
    np.testing.assert_allclose(mlc.compile(model, tuning_log=log).run(feeds)["y"], ort_run(model, feeds)[0],
                               rtol=1e-4, atol=1e-4)
    log0 = str(tmp_path / "none.jsonl")
    mlc.tune(model, trials=4, log=log0, batch=4, progress=False, resume=False, confirm=0)
    assert not any(r.retimed for r in read_records(log0))
    with pytest.raises(mlc.errors.TuningError, match="confirm must be >= 0"):
        mlc.tune(model, trials=4, log=log0, progress=False, confirm=-1)


def test_cold_costs_replace_warm_ones_of_the_same_task(tmp_path):
    """A task measured with flushed weights (cold) has slower costs than it had warm:
    once it has cold records, only they compete, in compiles and in distilled logs."""
    log = tmp_path / "log.jsonl"
    with RecordWriter(str(log)) as w:
        w.write(_rec("a", 1.0))
        w.write(_rec("a", 3.0, cold=True))
        w.write(_rec("a", 2.0, cold=True))
        w.write(_rec("b", 1.0))
    best = load_best([str(log)], TARGET_KEY).best
    assert (best["a"].cost, best["a"].cold, best["b"].cold) == (2.0, True, False)
    out = tmp_path / "best.jsonl"
    pick_best([str(log)], str(out), per_task=2)
    assert sorted((r.key, r.cost, r.cold) for r in read_records(str(out))) == [
        ("a", 2.0, True), ("a", 3.0, True), ("b", 1.0, False)]


def test_kernels_with_megabytes_of_weights_are_tuned_cold(tmp_path):
    """A MatMul with 1 MB of weights is measured with them flushed from the caches
    (records say so); a small one warm.  Either log applies and matches onnxruntime."""
    for n, cold in ((512, True), (64, False)):
        model, feeds = _matmul_model(n)
        log = str(tmp_path / f"mm{n}.jsonl")
        res = mlc.tune(model, trials=3, log=log, batch=3, progress=False, resume=False)
        recs = read_records(log)
        assert res.trials == len(_trials(recs)) >= 2 and all(r.ok and r.cold == cold for r in recs), recs
        mod = mlc.compile(model, tuning_log=log, num_threads=1)
        assert mod.stats["tuning"]["tuned"] == 1
        np.testing.assert_allclose(mod.run(feeds)["y"], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-4)


def test_flushing_the_weights_leaves_them_intact():
    from mlc.codegen.jit import LoadedCode, compile_ir
    from mlc.codegen.module import ModuleBuilder
    import ctypes
    target = mlc.Target.host()
    mb = ModuleBuilder(target)
    mb.add_flush_entry()
    code = LoadedCode(compile_ir(mb.ir_text(), target), target)
    try:
        w = np.random.default_rng(0).standard_normal(300_001).astype(np.float32)
        before = w.copy()
        flush = code.function("mlc_flush", None, ctypes.c_void_p, ctypes.c_int64)
        flush(w.ctypes.data, w.nbytes)
        flush(w.ctypes.data, 0)
        np.testing.assert_array_equal(w, before)
    finally:
        code.close()


def test_corrupt_and_torn_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "log.jsonl"
    with RecordWriter(str(path)) as w:
        w.write(_rec("a", 1.0))
    with open(path, "ab") as f:
        f.write(b"{not json\n")
        f.write(b'{"v": 1, "key": "torn", "targ')      # a writer killed mid-line
    with RecordWriter(str(path)) as w:                  # the next record starts a new line
        w.write(_rec("b", 2.0))
    with pytest.warns(UserWarning, match="skipped 2 malformed"):
        recs = read_records(str(path))
    assert [r.key for r in recs] == ["a", "b"]


def test_concurrent_writers_never_interleave(tmp_path):
    path = str(tmp_path / "log.jsonl")

    def writer(k):
        with RecordWriter(path) as w:
            for i in range(50):
                w.write(_rec(f"t{k}", float(i + 1), features=[0.5] * 40))
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = open(path).read().splitlines()
    assert len(lines) == 200
    for line in lines:
        json.loads(line)


# --------------------------------------------------------------------------------------
# isolation of bad candidates
# --------------------------------------------------------------------------------------

def _object_with_bench(body: str) -> bytes:
    from mlc.codegen.jit import compile_ir
    text = textwrap.dedent(f"""
        define void @mlc_set_num_threads(i32 %n) {{ ret void }}
        define void @mlc_shutdown() {{ ret void }}
        define void @mlc_bench(ptr %b, i64 %n) {{
        {body}
        }}""")
    return compile_ir(text, mlc.Target.host(), opt_level=0)


def test_segfaulting_candidate_becomes_an_error_and_the_runner_recovers():
    runner = Runner(timeout=20)
    try:
        bad = Built(_object_with_bench("store i32 1, ptr null\n ret void"), [])
        res = runner.run(bad, mlc.Target.host().to_dict(), seed=0)
        assert res.cost is None and "crashed" in res.error
        good = Built(_object_with_bench("ret void"), [ParamSpec("out", (4,), "float32")])
        res = runner.run(good, mlc.Target.host().to_dict(), seed=0)
        assert res.error is None and res.cost is not None
    finally:
        runner.close()


def test_hanging_candidate_times_out():
    runner = Runner(timeout=2)
    try:
        hang = Built(_object_with_bench("br label %l\nl:\n br label %l"), [])
        t0 = time.time()
        res = runner.run(hang, mlc.Target.host().to_dict(), seed=0)
        assert "timed out" in res.error and time.time() - t0 < 15
    finally:
        runner.close()


def test_wrong_outputs_are_detected():
    ref = [np.ones((3, 3), np.float32)]
    assert outputs_match([np.ones((3, 3), np.float32)], ref) is None
    assert "differs" in outputs_match([np.full((3, 3), 1.1, np.float32)], ref)
    assert "differs" in outputs_match([np.full((3, 3), np.nan, np.float32)], ref)


# --------------------------------------------------------------------------------------
# tuning end to end
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["random", "model"])
def test_tune_then_compile_with_the_log(tmp_path, strategy):
    model, feeds = _matmul_model(96)
    log = str(tmp_path / "mm.jsonl")
    res = mlc.tune(model, trials=24, log=log, batch=8, strategy=strategy, progress=False, resume=False)
    recs = read_records(log)
    assert len(_trials(recs)) == res.trials >= 9
    (task,) = res.tasks
    assert task["best_ms"] <= task["default_ms"]
    assert all(r.ok for r in recs), [r.error for r in recs if not r.ok]
    mod = mlc.compile(model, tuning_log=log, num_threads=1)
    assert mod.stats["tuning"]["tuned"] == 1
    np.testing.assert_allclose(mod.run(feeds)["y"], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-4)



def test_records_of_another_cpu_are_never_applied_and_compile_says_so(tmp_path, capsys):
    """A log tuned on another CPU (or by an incompatible mlc) applies nothing; the compile
    summary, which `mlc compile` and `make run` print, names what was set aside."""
    from mlc.api import tuning_summary
    model, feeds = _matmul_model(64)
    log = str(tmp_path / "mm.jsonl")
    mlc.tune(model, trials=4, log=log, batch=4, progress=False, resume=False)
    recs = read_records(log)
    moved = str(tmp_path / "moved.jsonl")
    with RecordWriter(moved) as w:
        for r in recs:
            r.target = "znver5:avx512f,avx512bw"
            w.write(r)
        w.write(Record(recs[0].key, TARGET_KEY, recs[0].sched, recs[0].config, 1e-9, [1e-9], mlc="0.0.1"))
    mod = mlc.compile(model, tuning_log=moved, num_threads=1, verbose=True)
    assert mod.stats["tuning"]["tuned"] == 0
    line = tuning_summary(mod.stats)
    assert line == (f"0 of {mod.stats['kernels']} kernels use tuned schedules; ignored {len(recs)} record(s) "
                    "made on another CPU and 1 from an incompatible mlc version")
    assert line in capsys.readouterr().out
    np.testing.assert_allclose(mod.run(feeds)["y"], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-4)

def test_logs_are_ignored_when_turned_off(tmp_path, monkeypatch):
    model, _ = _matmul_model(32)
    log = str(tmp_path / "mm.jsonl")
    mlc.tune(model, trials=4, log=log, batch=4, progress=False, resume=False)
    monkeypatch.setenv("MLC_TUNING_LOGS", "none")
    assert mlc.compile(model).stats["tuning"]["tuned"] == 0
    monkeypatch.setenv("MLC_TUNING_LOGS", log)
    assert mlc.compile(model).stats["tuning"]["tuned"] == 1


def test_sigkill_loses_no_record_and_resume_continues(tmp_path):
    model, _ = _matmul_model(128)
    mpath = tmp_path / "mm.onnx"
    mpath.write_bytes(model.SerializeToString())
    log = tmp_path / "mm.jsonl"
    script = textwrap.dedent(f"""
        import mlc
        mlc.tune({str(mpath)!r}, trials=400, log={str(log)!r}, batch=4, progress=False, resume=False,
                 strategy="random")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=os.path.dirname(__file__))
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and len(log.read_bytes().splitlines()) >= 6:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_records(str(log))
    assert len(before) >= 6                               # every completed line parses
    measured = {tuple(r.config) for r in before}
    res = mlc.tune(str(mpath), trials=len(before) + 6, log=str(log), batch=4, progress=False,
                   resume=True, strategy="random")
    after = read_records(str(log))
    new = _trials(after[len(before):])
    # the default is re-measured (it is every candidate's reference); nothing else repeats
    default_cfg = tuple(before[0].config)
    assert all(tuple(r.config) not in measured or tuple(r.config) == default_cfg for r in new)
    assert res.trials >= 1


def test_cost_model_learns_a_ranking():
    from mlc.tuning.cost_model import CostModel
    from mlc.tuning.features import LENGTH
    rng = np.random.default_rng(0)
    model = CostModel(seed=0)
    for task in range(3):
        for _ in range(80):
            f = rng.random(LENGTH).astype(np.float32)
            model.add(f"t{task}", f, 1.0 + 5 * f[0] - 2 * f[3])   # throughput depends on two features
    q = model.quality()
    assert q["spearman"] > 0.6 and q["top8_recall"] > 0.3


def test_older_shorter_feature_vectors_still_warm_start_the_cost_model():
    """Features are only appended, 0 meaning absent (no prefetch, warm weights): a vector
    logged before they existed is used zero-padded; a longer one (newer mlc) is not."""
    from mlc.tuning.cost_model import CostModel
    from mlc.tuning.features import LENGTH, NAMES, padded
    assert NAMES[-3:] == ["log_prefetches_per_flop", "log_prefetch_ahead", "cold_weights"]
    old = [0.5] * (LENGTH - 3)
    assert list(padded(old)) == old + [0.0, 0.0, 0.0]
    assert padded([0.5] * (LENGTH + 1)) is None
    model = CostModel(seed=0)
    assert model.warm_start([_rec("a", 1e-3, features=old), _rec("a", 2e-3, features=[0.1] * (LENGTH + 1))]) == 1


def test_space_default_is_the_compile_default():
    from mlc.compiler.pipeline import choose_default_schedule
    from mlc.frontend import import_model
    from mlc.graph.passes import default_passes
    from mlc.compiler.pipeline import partition, _used_after
    from mlc.compiler.kernel_builder import build_kernel
    from mlc.tuning.tasks import extract_tasks
    from mlc import zoo
    import mlc.api  # noqa: F401
    target = mlc.Target.host()
    graph = import_model(zoo.build("resnet18", image=32))
    tasks = {t.key: t for t in extract_tasks(graph, target)}
    g = default_passes(graph, target)
    groups = partition(g)
    used = _used_after(g, groups)
    for k, (kind, payload, _) in enumerate(groups):
        if kind != "kernel":
            continue
        bk = build_kernel(f"k{k}", payload, g, target, used[k])
        t = tasks[bk.kernel.key()]
        assert t.space.schedule(t.space.default()) == choose_default_schedule(bk, target)



def test_configs_logged_before_a_knob_was_added_still_resume():
    """Knobs are only ever appended, with a value that changes nothing as the default: a
    shorter configuration from an older log takes the default's trailing values and
    schedules exactly as it did; one that does not fit the space is dropped."""
    from mlc.frontend import import_model
    from mlc.tuning.tasks import extract_tasks
    from mlc import zoo
    import mlc.api  # noqa: F401
    target = mlc.Target.host()
    tasks = extract_tasks(import_model(zoo.build("resnet18", image=32)), target)
    space = next(t.space for t in tasks if t.desc.startswith("Conv+Relu") and
                 [n for n, _ in t.space.knobs][-2:] == ["oht", "pf"])
    d = space.default()
    new = tuple(v[1] if len(v) > 1 else v[0] for _, v in space.knobs[:-1]) + (0,)
    # megabyte weights: prefetched by default, but a config logged before the knob had none
    assert space.default()[-1] == 32 and space.neutral() == d[:-1] + (0,)
    assert space.upgrade(d[:-1]) == space.neutral()
    assert space.upgrade(new[:-1]) == new
    assert space.schedule(space.upgrade(new[:-1])) == space.schedule(new)
    assert space.upgrade(d + (1,)) is None                     # longer: another space
    assert space.upgrade((10 ** 6,) + d[1:]) is None           # a value no longer offered
    prefetched = space.as_dict(d) | {"oht": 2, "owt": 1, "pad_at_row": 0, "pf": 32}
    cfg = tuple(prefetched[n] for n, _ in space.knobs)
    assert space.valid(cfg) and space.schedule(cfg) != space.schedule(space.upgrade(cfg[:-1]))


@pytest.mark.parametrize("oh,ow,stride", [(7, 9, 1), (13, 5, 2)])
def test_multi_row_conv_tiles_with_row_tails_match_onnxruntime(tmp_path, oh, ow, stride):
    """Register tiles of oht rows x owt pixels x nb channel blocks, where neither the rows
    nor the row length divide: every tail is computed, applied through a tuning log.  With
    weight prefetching too (1.2 MB of weights: a cold kernel, whose space has the knob;
    hints past the weights' end must be harmless)."""
    from mlc.frontend import import_model
    from mlc.tuning.tasks import extract_tasks
    import mlc.api  # noqa: F401
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 704, (oh - 1) * stride + 1, (ow - 1) * stride + 1)).astype(np.float32)
    w = (rng.standard_normal((48, 704, 3, 3)) / 80).astype(np.float32)   # outputs ~1
    model = single_op_model("Conv", {"x": x}, {"y": ("float32", (1, 48, oh, ow))},
                            {"pads": [1, 1, 1, 1], "strides": [stride, stride]}, {"w": w})
    target = mlc.Target.host()
    (task,) = [t for t in extract_tasks(import_model(model), target) if "Conv" in t.desc]
    assert task.cold and "pf" in task.space.as_dict(task.space.default())
    ref = ort_run(model, {"x": x})[0]
    for oht, owt, nb, pf in [(2, 4, 3, 0), (3, 2, 1, 8), (4, 3, 1, 64), (2, ow, 1, 16)]:
        cfg = tuple({**task.space.as_dict(task.space.default()), "oht": oht, "owt": owt, "nb": nb,
                     "pad_at_row": 0, "pf": pf}[n] for n, _ in task.space.knobs)
        assert task.space.valid(cfg), cfg
        log = str(tmp_path / f"conv{oht}{owt}{nb}{pf}.jsonl")
        with RecordWriter(log) as wr:
            wr.write(Record(task.key, target.key, task.space.schedule(cfg).to_json(), list(cfg), 1e-3, [1e-3]))
        mod = mlc.compile(model, tuning_log=log, num_threads=2)
        assert mod.stats["tuning"]["tuned"] == 1
        np.testing.assert_allclose(mod.run({"x": x})["y"], ref, rtol=1e-4, atol=1e-4, err_msg=str(cfg))

def test_second_compile_reuses_the_code_cache(tmp_path, monkeypatch):
    """A recompile of the same program (same kernels, schedules and buffer locations)
    takes the object and kernel symbols from the cache, emitting no IR and running no
    LLVM; another schedule is another program; MLC_CACHE=none turns the cache off."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("MLC_TUNING_LOGS", "none")
    model, feeds = _matmul_model(48)
    first = mlc.compile(model)
    second = mlc.compile(model)
    assert (first.stats["code_cache"], second.stats["code_cache"]) == ("miss", "hit")
    assert [r.symbol for r in first._exe.kernels] == [r.symbol for r in second._exe.kernels]
    np.testing.assert_array_equal(first.run(feeds)["y"], second.run(feeds)["y"])
    prof = second.profile(feeds, repeat=3)
    assert [k.symbol for k in prof.rows] == [r.symbol for r in first._exe.kernels]
    import random

    from mlc import api  # noqa: F401  (registers the operator library)
    from mlc.frontend import import_model
    from mlc.tuning.tasks import extract_tasks
    target = mlc.Target.host()
    (task,) = extract_tasks(import_model(model), target)
    cfg = next(c for c in (task.space.sample(random.Random(i)) for i in range(100)) if c != task.space.default())
    log = str(tmp_path / "other.jsonl")
    with RecordWriter(log) as w:
        w.write(Record(task.key, target.key, task.space.schedule(cfg).to_json(), list(cfg), 1e-3, [1e-3]))
    other = mlc.compile(model, tuning_log=log)
    assert other.stats["tuning"]["tuned"] == 1 and other.stats["code_cache"] == "miss"
    np.testing.assert_allclose(other.run(feeds)["y"], first.run(feeds)["y"], rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("MLC_CACHE", "none")
    assert mlc.compile(model).stats["code_cache"] == "off"


def test_tuning_on_a_dask_cluster(tmp_path):
    """--cluster: builds and runs go to dask workers (each run in a subprocess of its own)."""
    distributed = pytest.importorskip("distributed")
    model, feeds = _matmul_model(48)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        log = str(tmp_path / "dask.jsonl")
        res = mlc.tune(model, trials=6, log=log, batch=3, progress=False, resume=False, cluster=client)
    recs = read_records(log)
    assert len(_trials(recs)) == res.trials >= 3 and all(r.ok for r in recs), [r.error for r in recs]
    mod = mlc.compile(model, tuning_log=log)
    np.testing.assert_allclose(mod.run(feeds)["y"], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-4)
