"""TopK: the k largest (or smallest) elements along an axis, with their int64 indices.

An imperative kernel (ExternStage).  Each row (every position of the other axes; rows run
in parallel) keeps a binary heap of its k best elements *in its own output row*, worst
element at the root:

1. the first k elements are pushed (sift up);
2. each further element is compared with the root -- one comparison for most elements of
   typical data -- and, when better, replaces it (sift down).  Elements go by blocks of
   64: a vectorised max (min) of the block is compared with the root first, so blocks
   holding nothing better are skipped at SIMD speed;
3. a heap sort then moves the worst element to the end k - 1 times, leaving the row sorted
   best first.

O(n + m log k) per row for m replacements (O(n log k) worst case), k up to the axis length.
Order: larger (smaller with ``largest=0``) value first, ties by lower index -- onnxruntime's
order, and a strict total order, so the result is deterministic.  ``sorted=0`` leaves the
order unspecified in ONNX; it gets the sorted order too.
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import (INDEX, Buffer, Var, binary, const, eq, identity_of, logical_and, minimum,
                           select)
from mlc.loop.stmt import Allocate, Break, If, Let, loop, seq, store
from mlc.loop.tensor import ExternStage
from mlc.registry import register

from .reduce import PAR_MIN_WORK, as_buffer, unflatten

BLOCK = 64        # elements per block of the vector pre-filter
_DTYPES = ("float32", "float64", "int32", "int64", "int8", "uint8", "int16", "uint16", "uint32", "uint64")


@register("TopK", pattern="opaque")
def topk(ctx):
    x = as_buffer(ctx.input(0))
    shape = tuple(ctx.in_shape(0))
    dt = ctx.in_dtype(0)
    if dt not in _DTYPES:
        raise ctx.unsupported(f"TopK on {dt}")
    rank = len(shape)
    if rank == 0:
        raise ctx.unsupported("TopK of a scalar")
    axis = ctx.axis(-1, rank)
    n = shape[axis]
    if ctx.opset < 10:
        k = int(ctx.attr("k"))
    else:
        kv = np.asarray(ctx.require_const(1, "K")).reshape(-1)
        if kv.size != 1:
            raise ctx.unsupported("K must hold one value")
        k = int(kv[0])
    if not 1 <= k <= n:
        raise ctx.unsupported(f"k={k} for an axis of length {n} (mlc needs 1 <= k <= axis length)")
    if any(d == 0 for d in shape):
        raise ctx.unsupported(f"empty tensors (shape {list(shape)})")
    largest = bool(int(ctx.attr("largest", 1)))
    out_shape = shape[:axis] + (k,) + shape[axis + 1:]
    if tuple(ctx.out_shape(0)) != out_shape:
        raise ctx.unsupported(f"output shape {list(ctx.out_shape(0))}, expected {list(out_shape)}")

    vals = Buffer(ctx.unique("topk_values"), out_shape, dt)
    idxs = Buffer(ctx.unique("topk_indices"), out_shape, "int64")
    before, after = shape[:axis], shape[axis + 1:]
    rows = int(np.prod(before + after, dtype=np.int64)) if before + after else 1
    row = Var("row")
    multi = unflatten(row, list(before + after)) if before + after else []
    pre, post = tuple(multi[:len(before)]), tuple(multi[len(before):])

    def at(p):
        return pre + (p,) + post

    def hv(p):
        return vals[at(p)]

    def hi(p):
        return idxs[at(p)]

    def better(av, ai, bv, bi):
        """(av, ai) ranks before (bv, bi)."""
        first = binary("gt" if largest else "lt", av, bv)
        return first | logical_and(eq(av, bv), binary("lt", ai, bi))

    pos = Buffer("topk_pos", (1,), "int64", "local")
    depth = max(2, int(k).bit_length() + 1)     # sift loops never need more iterations
    counter = [0]

    def fresh(name, dtype=INDEX):
        counter[0] += 1
        return Var(f"{name}{counter[0]}", dtype)

    def place(v, i):
        return seq(store(vals, at(pos[0]), v), store(idxs, at(pos[0]), i))

    def sift_down(v, i, size):
        """Put (v, i) at the root of the heap of ``size`` elements and sift it down."""
        t, p, c, c2 = fresh("t"), fresh("p"), fresh("c"), fresh("c")
        c_alt = minimum(c + 1, size - 1)
        pick = logical_and(binary("lt", c + 1, size), better(hv(c), hi(c), hv(c_alt), hi(c_alt)))
        step = Let(p, pos[0], Let(c, p * 2 + 1, seq(
            If(binary("ge", c, size), Break()),
            Let(c2, select(pick, c_alt, c), If(
                better(v, i, hv(c2), hi(c2)),
                seq(store(vals, at(p), hv(c2)), store(idxs, at(p), hi(c2)), store(pos, (0,), c2)),
                Break())))))
        return seq(store(pos, (0,), 0), loop(t, depth, step), place(v, i))

    # 1. push the first k elements
    j, t, p, par, v = Var("j"), fresh("t"), fresh("p"), fresh("par"), fresh("v", dt)
    up_step = Let(p, pos[0], seq(
        If(binary("le", p, 0), Break()),
        Let(par, binary("floordiv", p - 1, 2), If(
            better(hv(par), hi(par), v, j),
            seq(store(vals, at(p), hv(par)), store(idxs, at(p), hi(par)), store(pos, (0,), par)),
            Break()))))
    fill = loop(j, k, Let(v, x[at(j)], seq(store(pos, (0,), j), loop(t, depth, up_step), place(v, j))))
    # 2. the rest replace the root when better (a later index never wins a tie, so
    # "better" is a strict comparison); blocks whose vector max (min) cannot beat the
    # root are skipped
    cmp = "gt" if largest else "lt"
    bmax = Buffer("topk_block", (1,), dt, "local")

    def block(start, size):
        jr, js, v2 = fresh("jr"), fresh("js"), fresh("v", dt)
        jj = js + start
        scan = loop(js, size, Let(v2, x[at(jj)], If(binary(cmp, v2, hv(0)), sift_down(v2, jj, k))))
        if size < 8:
            return scan
        ext = binary("max" if largest else "min", bmax[0], x[at(jr + start)])
        return seq(store(bmax, (0,), identity_of("max" if largest else "min", dt)),
                   loop(jr, size, store(bmax, (0,), ext), "vector"),
                   If(binary(cmp, bmax[0], hv(0)), scan))

    scan = None
    if n > k:
        nb, rem = divmod(n - k, BLOCK)
        b = Var("b")
        scan = seq(loop(b, nb, block(b * BLOCK + k, BLOCK)) if nb else None,
                   block(const(nb * BLOCK + k, INDEX), rem) if rem else None)
    # 3. heap sort: the worst goes to the end
    sort = None
    if k > 1:
        e, tv, ti = Var("e"), fresh("tv", dt), fresh("ti")
        end = const(k - 1, INDEX) - e
        sort = loop(e, k - 1, Let(tv, hv(end), Let(ti, hi(end), seq(
            store(vals, at(end), hv(0)), store(idxs, at(end), hi(0)), sift_down(tv, ti, end)))))
    body = Allocate(pos, Allocate(bmax, seq(fill, scan, sort)))
    par_ok = ctx.target.num_cores > 1 and rows > 1 and rows * n >= PAR_MIN_WORK
    stmt = loop(row, rows, body, "parallel" if par_ok else "serial")
    ctx.extern(ExternStage((vals, idxs), (x,), stmt, tag="TopK"))
    return [vals, idxs]
