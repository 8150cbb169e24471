"""Measuring schedule candidates: parallel builds, isolated runs, checked outputs.

Building (lowering + LLVM) happens in worker processes, several at a time.  Running
happens in one separate *runner* process, one candidate after another, so that

* a candidate that segfaults kills only the runner (restarted; the candidate becomes an
  error record);
* a candidate that hangs is killed after ``timeout`` seconds;
* timings are not disturbed by builds (those run before the batch is measured).

Each candidate kernel sits in a module with ``mlc_bench(buffers, n)`` calling it n times:
one native call per measurement, repeated until ``min_seconds`` of work, ``repeat``
times; the cost is the fastest repeat.  Inputs are seeded random data of the kernel's
input shapes (packed per candidate), and the outputs are compared with the default
schedule's.

A kernel with megabytes of weights is measured *cold* (:func:`weights_cold`): its
constant inputs are flushed from every cache level before each call, as TVM's
``enable_cpu_cache_flush`` does, because inside a model whose weights exceed the caches
that is where they come from; measured warm, the tuner would rank schedules by a speed
they never reach in the model.

Executors: :class:`LocalExecutor` (processes on this machine) and, when dask.distributed
is installed, :class:`DaskExecutor` (builds and runs on a cluster's workers).
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import TuningError


@dataclass
class ParamSpec:
    role: str            # "in" | "out" | "scratch"
    shape: tuple         # as the kernel reads it (packed for packed constants)
    dtype: str
    orig_shape: tuple = ()
    packs: list = field(default_factory=list)
    index: int = -1      # input position (data seed) for "in"
    constant: bool = False   # an input known at compile time (weights)


@dataclass
class Built:
    obj: bytes | None
    params: list
    error: str | None = None
    build_seconds: float = 0.0
    features: list | None = None


@dataclass
class RunResult:
    costs: list
    error: str | None = None
    outputs: list | None = None

    @property
    def cost(self) -> float | None:
        """The fastest repeat: interference (another process, a frequency dip) only ever
        adds time, so the minimum ranks candidates most reliably on a shared machine."""
        return float(np.min(self.costs)) if self.costs and self.error is None else None


COLD_WEIGHT_BYTES = 1 << 20


def weights_cold(kernel) -> bool:
    """Is ``kernel`` measured with its weights flushed?  Those of a megabyte or more:
    enough that a model holding several such layers reads them from memory each inference,
    and that the flush and a call per measurement cost little next to the kernel."""
    return sum(b.nbytes for b in kernel.const_inputs()) >= COLD_WEIGHT_BYTES


# --------------------------------------------------------------------------------------
# building (runs in worker processes; must be importable at module level)
# --------------------------------------------------------------------------------------

def build_candidate(kernel, sched_json: list, target_dict: dict, features: bool = True, threads: int = 1,
                    cold: bool = False) -> Built:
    """Lower and compile one candidate; with its cost features (for ``threads`` threads,
    weights flushed if ``cold``) unless ``features`` is False."""
    t0 = time.perf_counter()
    try:
        from ..codegen.jit import compile_ir
        from ..codegen.module import ModuleBuilder
        from ..loop.lower import lower
        from ..loop.schedule import Schedule
        from ..target import Target
        target = Target.from_dict(target_dict) if not target_dict.get("is_host") else Target.host()
        lk = lower(kernel, Schedule.from_json(sched_json), target.lanes_f32)
        params = []
        for k, (orig, buf) in enumerate(zip(kernel.inputs, lk.inputs)):
            params.append(ParamSpec("in", tuple(buf.shape), buf.dtype, tuple(orig.shape),
                                    list(lk.packs.get(orig.name, [])), k, orig in kernel.constant))
        params += [ParamSpec("out", tuple(b.shape), b.dtype) for b in lk.outputs]
        params += [ParamSpec("scratch", (max(b.nbytes, 1),), "uint8") for b in lk.scratch]
        mb = ModuleBuilder(target, name="candidate")
        fn = mb.add_kernel(lk)
        mb.add_bench_entry(fn, len(params))
        mb.add_flush_entry()
        obj = compile_ir(mb.ir_text(), target)
        feats = None
        if features:
            from .features import extract_features
            feats = list(extract_features(lk, target, threads, cold))
        return Built(obj, params, None, time.perf_counter() - t0, feats)
    except Exception as exc:  # an illegal schedule or a compiler bug: an error record
        return Built(None, [], f"build failed: {type(exc).__name__}: {exc}", time.perf_counter() - t0)


def _input_data(spec: ParamSpec, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed * 1000 + spec.index)
    shape = spec.orig_shape or spec.shape
    dt = np.dtype(spec.dtype) if spec.dtype not in ("bool", "bfloat16") else None
    if spec.dtype == "bool":
        arr = rng.integers(0, 2, shape).astype(np.bool_)
    elif spec.dtype == "bfloat16":
        arr = rng.integers(0x3F00, 0x3F80, shape).astype(np.uint16)
    elif dt.kind == "f":
        arr = rng.standard_normal(shape).astype(dt)
    else:
        arr = rng.integers(0, 3, shape).astype(dt)   # small, valid as indices too
    if spec.packs:
        from ..loop.lower import pack_array
        arr = pack_array(arr, spec.packs)
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------------------
# the runner process
# --------------------------------------------------------------------------------------

def run_in_process(built: Built, target_dict: dict, seed: int, threads: int = 1, repeat: int = 5,
                   min_seconds: float = 0.01, want_outputs: bool = True, cold: bool = False) -> RunResult:
    """Load and time one built candidate in this process (the worker's side).  ``cold``:
    flush the constant inputs from the caches before every call, and time calls one by one."""
    from ..codegen.jit import LoadedCode
    from ..target import Target
    try:
        target = Target.host() if target_dict.get("is_host") else Target.from_dict(target_dict)
        arrays = []
        for spec in built.params:
            if spec.role == "in":
                arrays.append(_input_data(spec, seed))
            else:
                dt = np.uint8 if spec.dtype == "bool" else (np.uint16 if spec.dtype == "bfloat16" else spec.dtype)
                arrays.append(np.zeros(spec.shape, dtype=dt))
        code = LoadedCode(built.obj, target)
        try:
            code.function("mlc_set_num_threads", None, ctypes.c_int32)(threads)
            bench = code.function("mlc_bench", None, ctypes.c_void_p, ctypes.c_int64)
            ptrs = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
            bench(ptrs, 1)                                     # warm up, fault in pages
            t0 = time.perf_counter()
            bench(ptrs, 1)
            one = max(time.perf_counter() - t0, 1e-7)
            n = max(1, int(min_seconds / one))
            costs = []
            if cold:
                flush = code.function("mlc_flush", None, ctypes.c_void_p, ctypes.c_int64)
                weights = [(a.ctypes.data, a.nbytes) for a, s in zip(arrays, built.params)
                           if s.role == "in" and s.constant]
                for _ in range(repeat):
                    spent = 0.0
                    for _ in range(n):
                        for p, nbytes in weights:
                            flush(p, nbytes)
                        t0 = time.perf_counter()
                        bench(ptrs, 1)
                        spent += time.perf_counter() - t0
                    costs.append(spent / n)
            else:
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    bench(ptrs, n)
                    costs.append((time.perf_counter() - t0) / n)
            outs = [a for a, s in zip(arrays, built.params) if s.role == "out"] if want_outputs else None
            code.function("mlc_shutdown", None)()
        finally:
            code.close()
        return RunResult(costs, None, outs)
    except Exception as exc:
        return RunResult([], f"run failed: {type(exc).__name__}: {exc}")


class WorkerProcess:
    """One ``python -m mlc.tuning.worker`` subprocess; restarted after a crash or timeout."""

    def __init__(self):
        self._proc = None

    def _start(self):
        import subprocess
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen([sys.executable, "-m", "mlc.tuning.worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env)

    def call(self, name: str, args: tuple, timeout: float | None):
        """(True, result) or (False, reason) when the worker crashed or timed out."""
        import select
        from .worker import _read, _write
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        try:
            _write(self._proc.stdin, (name, args))
            ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
            if not ready:
                self.kill()
                return False, f"timed out after {timeout:.0f} s"
            result = _read(self._proc.stdout)
            if result is None:
                raise EOFError
            return True, result
        except (EOFError, BrokenPipeError, OSError):
            code = self._proc.wait(5) if self._proc is not None else None
            self._proc = None
            return False, f"the candidate crashed its worker process (exit code {code})"

    def kill(self):
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def close(self):
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(2)
            except Exception:
                pass
        self.kill()


class Runner:
    """Runs candidates one at a time in an isolated worker process."""

    def __init__(self, timeout: float = 20.0):
        self.timeout = timeout
        self._worker = WorkerProcess()

    def run(self, built: Built, target_dict: dict, seed: int, threads: int = 1, repeat: int = 5,
            min_seconds: float = 0.01, want_outputs: bool = True, cold: bool = False) -> RunResult:
        if built.obj is None:
            return RunResult([], built.error or "not built")
        ok, res = self._worker.call("run", (built, target_dict, seed, threads, repeat, min_seconds, want_outputs,
                                            cold), self.timeout)
        return res if ok else RunResult([], res)

    def close(self):
        self._worker.close()


# --------------------------------------------------------------------------------------
# executors
# --------------------------------------------------------------------------------------

class LocalExecutor:
    """Builds in ``build_workers`` worker processes, runs in one isolated runner process."""

    def __init__(self, build_workers: int | None = None, timeout: float = 20.0):
        self.build_workers = build_workers or max(1, os.cpu_count() or 1)
        self._builders = [WorkerProcess() for _ in range(self.build_workers)]
        self.runner = Runner(timeout)
        self.build_timeout = 300.0

    def build(self, jobs: list) -> list:
        """``jobs``: [build_candidate arguments (kernel, sched_json, target_dict, ...)] -> [Built] in order."""
        from concurrent.futures import ThreadPoolExecutor
        if not jobs:
            return []
        results: list = [None] * len(jobs)

        def serve(w: int):
            for i in range(w, len(jobs), self.build_workers):
                ok, res = self._builders[w].call("build", jobs[i], self.build_timeout)
                results[i] = res if ok else Built(None, [], f"build {res}")
        with ThreadPoolExecutor(self.build_workers) as pool:
            list(pool.map(serve, range(min(self.build_workers, len(jobs)))))
        return results

    def run(self, built: Built, target_dict: dict, seed: int, **kw) -> RunResult:
        return self.runner.run(built, target_dict, seed, **kw)

    def close(self):
        for w in self._builders:
            w.close()
        self.runner.close()


class DaskExecutor:
    """Builds and runs on a dask.distributed cluster (``mlc tune --cluster ADDRESS``).

    Each build is a task; each run is a task executed in a fresh subprocess on a worker
    (so a crashing candidate does not take the worker down), one at a time per worker.
    """

    def __init__(self, address, timeout: float = 20.0):
        try:
            from dask.distributed import Client
        except ImportError:
            raise TuningError("--cluster needs dask.distributed: pip install 'mlc[cluster]'") from None
        self.client = address if hasattr(address, "submit") else Client(address)
        self.timeout = timeout

    def build(self, jobs: list) -> list:
        futures = [self.client.submit(build_candidate, *j, pure=False) for j in jobs]
        out = []
        for f in futures:
            try:
                out.append(f.result())
            except Exception as exc:
                out.append(Built(None, [], f"build failed on the cluster: {exc}"))
        return out

    def run(self, built: Built, target_dict: dict, seed: int, **kw) -> RunResult:
        f = self.client.submit(_run_isolated, built, target_dict, seed, self.timeout, kw, pure=False,
                               resources=None)
        try:
            return f.result()
        except Exception as exc:
            return RunResult([], f"run failed on the cluster: {exc}")

    def close(self):
        pass


def _run_isolated(built, target_dict, seed, timeout, kw):
    runner = Runner(timeout)
    try:
        return runner.run(built, target_dict, seed, **kw)
    finally:
        runner.close()


def outputs_match(got: list, ref: list, rtol: float = 1e-3) -> str | None:
    """None if ``got`` matches the reference outputs, else a message."""
    for k, (g, r) in enumerate(zip(got, ref)):
        if g.shape != r.shape:
            return f"output {k}: shape {g.shape} != {r.shape}"
        if r.dtype.kind == "f":
            scale = float(np.max(np.abs(r))) if r.size else 0.0
            err = float(np.max(np.abs(g.astype(np.float64) - r))) if r.size else 0.0
            if not np.isfinite(err) or err > rtol * max(scale, 1e-6) + 1e-5:
                return f"output {k} differs from the default schedule's (max error {err:.3g}, scale {scale:.3g})"
        elif not np.array_equal(g, r):
            return f"output {k} differs from the default schedule's"
    return None
