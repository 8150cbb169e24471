"""Per-kernel timing of a compiled model, measured natively.

    prof = mod.profile(feeds, repeat=50)
    print(prof)                  # table, slowest kernel first
    prof.to_json("prof.json")

Every compiled module has a second entry point, ``mlc_run_profiled`` (emitted by
``ModuleBuilder.add_entry``), that runs the same kernel calls as ``mlc_run`` and reads
``CLOCK_MONOTONIC`` (a vDSO call, ~20 ns) before the first kernel and after each one,
into a ``uint64`` array.  A profiled inference is still one native call, so the numbers
contain no Python or ctypes time and the kernels' shares add up to the measured total.

What is measured, per repeat (after ``warmup`` unmeasured runs of each entry):

* kernel ``k``: ``ticks[k+1] - ticks[k]``; a row shows its median over the repeats.
* ``total_ms``: median of ``ticks[-1] - ticks[0]``, the native time of a profiled run.
  Every nanosecond of a run falls in exactly one kernel's interval, so in each run the
  kernels add up to the total exactly; the rows' sum ``kernel_sum_ms`` (sum of medians)
  matches ``total_ms`` to within a few % (``coverage``) unless runs are interrupted: on a
  machine where other processes compete for the cores, a preempted run gains a whole
  scheduler slice (~4 ms) in one random kernel, which the per-kernel medians leave out
  and the median total does not.  The table then says so.
* ``plain_ms`` / ``profiled_ms``: medians of the wall time of one ``mlc_run`` /
  ``mlc_run_profiled`` native call timed identically from Python (``perf_counter_ns``
  around the ctypes call), the two interleaved run by run;
  ``overhead_ms = profiled_ms - plain_ms`` is what the clock reads cost (it can come out
  slightly negative: it is below the run-to-run noise).  ``extra["overhead_min_ms"]``,
  the difference of the fastest runs, is the steadier estimate on a busy machine.

Outputs that are plain copies (``copy_outputs``) are not kernels and are not timed.
"""
from __future__ import annotations

import ctypes
import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..codegen.module import PROFILED_ENTRY
from ..errors import InputError, MlcError


def random_inputs(infos, seed: int = 0) -> dict:
    """Seeded random arrays for the given TensorInfos: floats ~ N(0, 1); integers in
    {0, 1} (valid as indices into any table, as masks and as token type ids); bools
    random.  Used when no inputs are given (profile, the CLI's run/bench/profile)."""
    rng = np.random.default_rng(seed)
    out = {}
    for t in infos:
        shape = tuple(int(d) for d in t.shape)
        if t.dtype == "bool":
            out[t.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif t.dtype == "bfloat16":
            out[t.name] = (rng.standard_normal(shape).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        elif np.dtype(t.dtype).kind in "iu":
            out[t.name] = rng.integers(0, 2, size=shape).astype(t.dtype)
        else:
            out[t.name] = rng.standard_normal(shape).astype(t.dtype)
    return out


@dataclass
class KernelProfile:
    index: int               # position in execution order
    name: str
    symbol: str
    ops: list                # the ONNX ops fused into it
    out_shapes: list
    flops: int
    ms: float                # median over repeats
    gflops: float            # flops / ms
    percent: float           # of total_ms
    tuned: bool = False


@dataclass
class ProfileResult:
    rows: list                       # KernelProfile, slowest first
    total_ms: float
    kernel_sum_ms: float
    plain_ms: float
    profiled_ms: float
    repeat: int
    warmup: int
    num_threads: int
    clock: str = "CLOCK_MONOTONIC read between kernels inside one native call (mlc_run_profiled)"
    extra: dict = field(default_factory=dict)
    # raw data: per run, ns per kernel in execution order, and the run's total (not in JSON)
    samples_ns: object = field(default=None, repr=False)
    totals_ns: object = field(default=None, repr=False)

    @property
    def overhead_ms(self) -> float:
        return self.profiled_ms - self.plain_ms

    @property
    def overhead_percent(self) -> float:
        return 100.0 * self.overhead_ms / self.plain_ms if self.plain_ms > 0 else 0.0

    @property
    def coverage(self) -> float:
        """Sum of the per-kernel medians / the median total (1.0 = the rows add up)."""
        return self.kernel_sum_ms / self.total_ms if self.total_ms > 0 else 1.0

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.rows)

    def to_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "total_ms": self.total_ms,
                "kernel_sum_ms": self.kernel_sum_ms, "coverage": self.coverage,
                "plain_ms": self.plain_ms, "profiled_ms": self.profiled_ms,
                "overhead_ms": self.overhead_ms, "overhead_percent": self.overhead_percent,
                "total_flops": self.total_flops, "repeat": self.repeat, "warmup": self.warmup,
                "num_threads": self.num_threads, "clock": self.clock, **self.extra}

    def to_json(self, path=None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    def table(self, top: int | None = None) -> str:
        rows = self.rows if top is None else self.rows[:top]

        def shapes(r):
            return " ".join("x".join(map(str, s)) if s else "scalar" for s in r.out_shapes)

        def ops(r):
            text = "+".join(r.ops)
            return text if len(text) <= 38 else text[:35] + "..."

        head = ["#", "kernel", "fused ops", "output shape", "time ms", "GFLOP/s", "%"]
        body = [[str(r.index), r.name, ops(r), shapes(r), f"{r.ms:.4f}",
                 f"{r.gflops:.1f}" if r.flops else "-", f"{r.percent:.1f}"] for r in rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
        right = {0, 4, 5, 6}

        def fmt(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        gf = self.total_flops / (self.total_ms * 1e6) if self.total_ms > 0 else 0.0
        lines = [f"profile: {len(self.rows)} kernels, {self.num_threads} thread(s), median of "
                 f"{self.repeat} runs ({self.warmup} warm-up)", fmt(head), fmt(["-" * w for w in widths])]
        lines += [fmt(b) for b in body]
        if top is not None and top < len(self.rows):
            lines.append(f"... {len(self.rows) - top} more kernels")
        lines += [
            "",
            f"total (native, profiled run)  {self.total_ms:.4f} ms   {gf:.1f} GFLOP/s",
            f"sum of kernel medians         {self.kernel_sum_ms:.4f} ms   "
            f"({100 * self.coverage:.1f}% of total)",
            f"plain run (mlc_run call)      {self.plain_ms:.4f} ms",
            f"profiler overhead             {self.overhead_ms * 1e3:+.1f} us "
            f"({self.overhead_percent:+.2f}%): profiled minus plain call, medians"
            + (f"; {self.extra['overhead_min_ms'] * 1e3:+.1f} us between the fastest runs"
               if "overhead_min_ms" in self.extra else ""),
        ]
        if abs(self.coverage - 1.0) > 0.05:
            lines.append(f"note: the kernel medians cover {100 * self.coverage:.0f}% of the median "
                         "total: runs were interrupted (other processes competing for the cores?)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def profile(model, feeds: dict | None = None, repeat: int = 20, warmup: int = 3) -> ProfileResult:
    """Time every kernel of ``model`` (a CompiledModel) on ``feeds`` (default: seeded
    random inputs); medians over ``repeat`` runs.  See the module docstring."""
    if int(repeat) < 1:
        raise InputError(f"repeat must be >= 1, got {repeat}")
    repeat, warmup = int(repeat), max(0, int(warmup))
    if feeds is None:
        feeds = random_inputs(model.inputs)
    if not isinstance(feeds, dict):
        raise InputError(f"profile() takes a dict of input name -> array, got {type(feeds).__name__}")
    missing = [n for n in model.input_names if n not in feeds]
    unknown = [n for n in feeds if n not in model.input_names]
    if missing or unknown:
        raise InputError(f"profile(): missing input(s) {missing}, unknown input(s) {unknown}; "
                         f"the model's inputs are {model.input_names}")
    arrays = [model._check_input(k, feeds[n]) for k, n in enumerate(model.input_names)]
    outs = [np.empty(t.shape, dtype=dt) for t, dt in zip(model._all_outputs, model._out_dtypes)]
    records = model.kernels
    vp = ctypes.c_void_p
    try:
        prof = model._code.function(PROFILED_ENTRY, None, vp, vp, vp, vp, vp)
    except MlcError:
        raise MlcError("this model's code has no profiling entry (mlc_run_profiled): it was compiled "
                       "by an older mlc; recompile it") from None
    plain = model._run
    ticks = np.zeros(len(records) + 1, dtype=np.uint64)
    per = np.empty((repeat, len(records)), dtype=np.int64)
    totals = np.empty(repeat, dtype=np.int64)
    wall_plain = np.empty(repeat, dtype=np.int64)
    wall_prof = np.empty(repeat, dtype=np.int64)
    clock = time.perf_counter_ns
    with model._lock:
        for k, a in enumerate(arrays):
            model._in_ptrs[k] = a.ctypes.data
        for k, o in enumerate(outs):
            model._out_ptrs[k] = o.ctypes.data
        args = (model._in_ptrs, model._out_ptrs, model._arena_ptr, model._weights_ptr)
        targs = args + (ticks.ctypes.data,)
        for _ in range(warmup):
            plain(*args)
            prof(*targs)
        for r in range(repeat):
            # alternate which entry goes first, so neither always runs on warmer caches
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for which in order:
                if which == 0:
                    t0 = clock()
                    plain(*args)
                    wall_plain[r] = clock() - t0
                else:
                    t0 = clock()
                    prof(*targs)
                    wall_prof[r] = clock() - t0
            t = ticks.astype(np.int64)
            per[r] = np.diff(t)
            totals[r] = t[-1] - t[0]
    med = np.median(per, axis=0) / 1e6 if len(records) else np.zeros(0)
    total_ms = float(np.median(totals)) / 1e6
    rows = []
    for k, rec in enumerate(records):
        ms = float(med[k])
        flops = int(rec.flops or 0)
        rows.append(KernelProfile(k, rec.name, rec.symbol, list(rec.ops), [list(s) for s in rec.out_shapes],
                                  flops, ms, flops / (ms * 1e6) if ms > 0 else 0.0,
                                  100.0 * ms / total_ms if total_ms > 0 else 0.0, bool(rec.tuned)))
    rows.sort(key=lambda r: -r.ms)
    return ProfileResult(rows, total_ms, float(med.sum()), float(np.median(wall_plain)) / 1e6,
                         float(np.median(wall_prof)) / 1e6, repeat, warmup, model.num_threads,
                         extra={"min_total_ms": float(totals.min()) / 1e6,
                                "overhead_min_ms": float(wall_prof.min() - wall_plain.min()) / 1e6},
                         samples_ns=per, totals_ns=totals)
