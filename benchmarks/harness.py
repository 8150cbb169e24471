"""Timing helpers shared by the benchmark tables."""
from __future__ import annotations

import os
import time

import numpy as np

from mlc.cli.common import median_ms


def median_seconds(fn, repeat: int = 30, warmup: int = 3) -> float:
    return median_ms(fn, repeat, warmup) / 1e3


def interleaved(fns: dict, repeat: int = 30, rounds: int = 3, warmup: int = 3, block: int = 6) -> dict:
    """Median time of each function, the sides alternating in blocks of ``block`` calls;
    best of ``rounds`` medians (a slow spell of the shared host then hits every side
    alike, or none).

    Blocks rather than single calls: a thread pool keeps spinning for a while after a
    run (onnxruntime's by default, mlc's for ~100 us), and a run started right after the
    other side's would compete with those spinners for the cores.  The first call of
    each block is not timed."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        times = {k: [] for k in fns}
        while min(len(v) for v in times.values()) < repeat:
            for k, fn in fns.items():
                fn()
                for _ in range(block):
                    t0 = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t0)
        for k in fns:
            best[k] = min(best[k], float(np.median(times[k])))
    return best


def alternating(mlc_fn, ort_factory, repeat: int = 30, rounds: int = 3, warmup: int = 3) -> dict:
    """Median latency of mlc and onnxruntime, in alternating rounds; best of ``rounds``.

    onnxruntime's worker threads keep spinning long after a run (its default, which is
    what makes it fast): anything else running meanwhile loses its second core.  So each
    round times mlc, then creates an onnxruntime session, times it and destroys it
    (stopping its threads) before mlc's next turn: each side runs on a machine without the
    other's spinners, as it would in production."""
    best = {"mlc": float("inf"), "ort": float("inf")}
    for _ in range(rounds):
        best["mlc"] = min(best["mlc"], median_seconds(mlc_fn, repeat, warmup))
        sess_run = ort_factory()
        best["ort"] = min(best["ort"], median_seconds(sess_run, repeat, warmup))
        del sess_run
        import gc
        gc.collect()
    return best


def ort_session(model, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def unset_openblas_overrides():
    """numpy's OpenBLAS runs its slow 256-bit kernel while these are set: unset them, for
    the comparison against numpy only (must happen before numpy is first imported)."""
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(var, None)


def table(rows: list, headers: list) -> str:
    cols = list(zip(*([headers] + [[str(c) for c in r] for r in rows])))
    widths = [max(len(c) for c in col) for col in cols]
    line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])
