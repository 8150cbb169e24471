"""Features of a schedule candidate, read off its *lowered* loop nest.

One fixed-length vector per candidate, whatever the operator, so a single cost model
learns across tasks and shapes (as Ansor's features do): the work (flops, iterations,
vector share), the instruction mix of the innermost statements (contiguous / broadcast /
gathered loads, FMAs, stores), register pressure (accumulator size), the loop structure
(depth, unrolling, parallel extent and balance) and, for the three largest buffers, the
bytes touched within one iteration of each of the five innermost loop levels — the data
each cache level must hold — plus arithmetic intensity, software prefetches (how many,
how far ahead) and whether the candidate was measured with its weights flushed.

Features are only ever appended, each with 0 meaning "absent", so a shorter vector from
an older log is that vector padded with zeros (:func:`padded`).
"""
from __future__ import annotations

import math

import numpy as np

from ..loop.expr import Binary, Call, Const, coefficient, depends_on, dtype_bytes, flat_offset, loads_of
from ..loop.stmt import Allocate, For, If, Let, Prefetch, Seq, Store

LEVELS = 5
TOP_BUFFERS = 3
NAMES = (["log_flops", "log_iters", "vector_share", "lanes", "log_contig_loads", "log_bcast_loads",
          "log_gathers", "log_vec_stores", "log_scalar_stores", "fma_share", "log_acc_elems",
          "acc_regs_ratio", "log_unrolled", "log_parallel", "parallel_balance", "depth",
          "log_inner_serial", "log_reduce_inner", "log_regions", "log_intensity", "log_total_bytes"]
         + [f"buf{b}_l{l}" for b in range(TOP_BUFFERS) for l in range(LEVELS)]
         + [f"buf{b}_l1fit" for b in range(TOP_BUFFERS)] + [f"buf{b}_l2fit" for b in range(TOP_BUFFERS)]
         + ["log_prefetches_per_flop", "log_prefetch_ahead", "cold_weights"])
LENGTH = len(NAMES)


def _log(x: float) -> float:
    return math.log2(1.0 + max(0.0, float(x)))


class _Collector:
    def __init__(self, lanes: int, threads: int):
        self.lanes = lanes
        self.threads = threads
        self.flops = 0.0
        self.iters = 0.0
        self.vector_flops = 0.0
        self.contig = self.bcast = self.gathers = 0.0
        self.vstores = self.sstores = 0.0
        self.fmas = 0.0
        self.acc_elems = 0
        self.unrolled = 1
        self.parallel = 0
        self.depth = 0
        self.inner_serial = 0
        self.reduce_inner = 0
        self.prefetches = 0.0
        self.prefetch_ahead = 0
        self.footprint: dict = {}     # buffer -> [bytes at level 0..LEVELS-1] (0 = innermost)
        self.total_bytes: dict = {}

    def visit(self, s, loops: list):
        if isinstance(s, Seq):
            for x in s.stmts:
                self.visit(x, loops)
        elif isinstance(s, For):
            ext = int(s.extent.value) if isinstance(s.extent, Const) else 16
            if s.kind == "parallel":
                self.parallel = max(self.parallel, ext)
            self.visit(s.body, loops + [(s.var, ext, s.kind)])
        elif isinstance(s, (If, )):
            self.visit(s.then, loops)
            if s.orelse is not None:
                self.visit(s.orelse, loops)
        elif isinstance(s, Allocate):
            if s.buffer.scope == "local":
                self.acc_elems = max(self.acc_elems, s.buffer.size)
            self.visit(s.body, loops)
        elif isinstance(s, Let):
            self.visit(s.body, loops)
        elif isinstance(s, Store):
            self.store(s, loops)
        elif isinstance(s, Prefetch):
            self.prefetches += math.prod(ext for _, ext, _ in loops)
            self.prefetch_ahead = max(self.prefetch_ahead, s.ahead)

    def store(self, s: Store, loops: list):
        trips = 1.0
        for _, ext, _ in loops:
            trips *= ext
        vec = loops and loops[-1][2] == "vector"
        vvar = loops[-1][0] if vec else None
        ops = sum(1 for x in _walk(s.value) if isinstance(x, (Binary, Call)) and x.dtype != "bool")
        fmas = sum(1 for x in _walk(s.value) if isinstance(x, Binary) and x.op == "add"
                   and any(isinstance(c, Binary) and c.op == "mul" for c in (x.a, x.b)))
        self.flops += ops * trips
        self.fmas += fmas * trips
        self.iters += trips
        if vec:
            self.vector_flops += ops * trips
        self.depth = max(self.depth, len(loops))
        serial = [ext for _, ext, k in loops if k == "serial"]
        if serial:
            self.inner_serial = max(self.inner_serial, serial[-1])
        unrolled = 1
        for _, ext, k in loops:
            if k == "unroll":
                unrolled *= ext
        self.unrolled = max(self.unrolled, unrolled)
        if s.buffer.scope == "local" and loops:
            red = 1
            for _, ext, k in loops:
                if k == "serial":
                    red *= ext
            self.reduce_inner = max(self.reduce_inner, red)
        scale = trips / (self.lanes if vec else 1)
        for ld in loads_of(s.value):
            if ld.buffer.scope == "local":
                continue
            self._access(ld.buffer, ld.indices, loops, vvar, scale, is_load=True)
        if s.buffer.scope != "local":
            self._access(s.buffer, s.indices, loops, vvar, scale, is_load=False)

    def _access(self, buf, indices, loops, vvar, scale, is_load):
        if vvar is not None:
            c = coefficient(flat_offset(buf, indices), vvar)
            kind = "contig" if c == 1 else "bcast" if c == 0 else "gather"
        else:
            kind = "bcast"
        if is_load:
            if kind == "contig":
                self.contig += scale
            elif kind == "bcast":
                self.bcast += scale
            else:
                self.gathers += scale
        else:
            if kind == "contig":
                self.vstores += scale
            else:
                self.sstores += scale
        # bytes touched inside one iteration of each of the innermost LEVELS loops
        esize = dtype_bytes(buf.dtype)
        fp = self.footprint.setdefault(buf, [0.0] * LEVELS)
        elems = 1.0
        inner = list(reversed(loops))
        for level in range(LEVELS):
            if level < len(inner):
                var, ext, _ = inner[level]
                if any(depends_on(i, var) for i in indices):
                    elems *= ext
            fp[level] = max(fp[level], min(elems, buf.size) * esize)
        total = 1.0
        for var, ext, _ in loops:
            if any(depends_on(i, var) for i in indices):
                total *= ext
        self.total_bytes[buf] = max(self.total_bytes.get(buf, 0.0), min(total, buf.size) * esize)


def _walk(e):
    from ..loop.expr import walk
    return walk(e)


def padded(features) -> np.ndarray | None:
    """A logged feature vector at :data:`LENGTH` (older, shorter ones padded with the
    zeros their absent features mean); None if it is longer (from a newer mlc)."""
    if features is None or len(features) > LENGTH:
        return None
    out = np.zeros(LENGTH, dtype=np.float32)
    out[:len(features)] = features
    return out


def extract_features(lowered, target, threads: int = 1, cold: bool = False) -> np.ndarray:
    """The feature vector (length :data:`LENGTH`) of a lowered kernel; ``cold``: it is
    measured with its weights flushed from the caches."""
    col = _Collector(target.lanes_f32, threads)
    for region in lowered.regions:
        col.visit(region.stmt, [])
    bufs = sorted(col.footprint, key=lambda b: -col.total_bytes.get(b, 0.0))[:TOP_BUFFERS]
    total_bytes = sum(col.total_bytes.values())
    f = [
        _log(col.flops), _log(col.iters),
        col.vector_flops / col.flops if col.flops else 0.0,
        target.lanes_f32 / 16.0,
        _log(col.contig), _log(col.bcast), _log(col.gathers), _log(col.vstores), _log(col.sstores),
        col.fmas / col.flops if col.flops else 0.0,
        _log(col.acc_elems),
        col.acc_elems / (target.lanes_f32 * target.num_vector_registers),
        _log(col.unrolled), _log(col.parallel),
        ((col.parallel % threads) / col.parallel) if col.parallel and threads > 1 else 0.0,
        float(col.depth), _log(col.inner_serial), _log(col.reduce_inner), float(len(lowered.regions)),
        _log(col.flops / total_bytes) if total_bytes else 0.0, _log(total_bytes),
    ]
    for k in range(TOP_BUFFERS):
        if k < len(bufs):
            f.extend(_log(x) for x in col.footprint[bufs[k]])
        else:
            f.extend([0.0] * LEVELS)
    for cache in (target.l1d_bytes, target.l2_bytes):
        for k in range(TOP_BUFFERS):
            if k < len(bufs):
                fp = col.footprint[bufs[k]]
                # the deepest level at which this buffer still fits the cache
                f.append(float(sum(1 for x in fp if x <= cache)))
            else:
                f.append(0.0)
    f += [_log(1e3 * col.prefetches / col.flops) if col.flops else 0.0, _log(col.prefetch_ahead), float(cold)]
    out = np.asarray(f, dtype=np.float32)
    assert out.shape == (LENGTH,), (out.shape, LENGTH)
    return out
