"""Lowering: a kernel plus a schedule becomes loop nests (statements) ready for codegen.

What lowering guarantees, whatever the schedule:

* every loop has a constant extent.  A split whose factor does not divide the axis is
  handled by *partitioning*: the loop that owns the outer part branches once on "is this
  the last, partial tile?" and each branch is generated with constant inner extents (the
  tail branch with the remainder).  Where partitioning is impossible (the inner part was
  split or fused again) a guard ``if parent < extent`` protects the body instead.
* a reduction accumulates in a local buffer (``cache_write``) that LLVM keeps in registers
  when it is small and fully unrolled; reduce loops outside the accumulator (K-blocking)
  carry partial results through a scratch buffer, and the epilogue runs once per element
  after the last partial.
* a stage attached with ``compute_at`` computes exactly the region its consumer reads in
  the loops inside the attach point (found by interval analysis of the affine indices);
  its buffer is kernel scratch in the arena.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ScheduleError
from .expr import (INDEX, Buffer, Const, Expr, Load, Var, binary, coefficient, combine, const, depends_on,
                   dtype_bytes, flat_offset, free_vars,
                   identity_of, int_range, linear_form, loads_of, logical_and, simplify,
                   substitute, transform)
from .kernel import Kernel, inline_into
from .schedule import Fuse, Schedule, Split, StageState, apply_schedule
from .stmt import Allocate, For, If, Prefetch, Stmt, Store, if_then, seq
from .tensor import ExternStage, Stage

MAX_LOCAL_ACC = 4096          # elements; larger accumulators live in arena scratch
REGION_LOCAL_MAX_BYTES = 64 << 10   # attached regions up to this size get a per-thread buffer
MAX_PARTITIONS = 4            # tail splits handled by partitioning per stage


@dataclass
class Region:
    """One top-level loop nest of a kernel.  ``parallel``: its outer loop is a For(parallel)."""

    stmt: Stmt
    parallel: bool
    stage: str


@dataclass
class LoweredKernel:
    name: str
    inputs: list            # Buffers as the kernel reads them (packed constants replaced)
    outputs: list
    scratch: list           # global scratch buffers (materialised intermediates, partials)
    regions: list           # list[Region], run in order
    packs: dict             # original input name -> [(axis, factor)]
    packed_inputs: dict     # original input Buffer -> packed Buffer

    def params(self) -> list:
        return list(self.inputs) + list(self.outputs) + list(self.scratch)

    def __str__(self) -> str:
        from .stmt import format_stmt
        out = [f"kernel {self.name}"]
        for b in self.scratch:
            out.append(f"  scratch {b.name}: {b.dtype}{list(b.shape)}")
        for r in self.regions:
            out.append(format_stmt(r.stmt, 1))
        return "\n".join(out)


# --------------------------------------------------------------------------------------
# packing constants
# --------------------------------------------------------------------------------------

def packed_shape(shape: tuple, packs: list) -> tuple:
    """Shape after pack steps: each splits ``axis`` by ``factor``, block index first, lanes last.

    ``B[K, N]`` packed with (1, 32) becomes ``[ceil(N/32), K, 32]``: one contiguous panel per
    block of 32 columns, the layout a register-tiled GEMM streams through.
    """
    shape = list(shape)
    for axis, f in packs:
        if not 0 <= axis < len(shape):
            raise ScheduleError(f"pack: axis {axis} out of range for shape {shape}")
        n = shape.pop(axis)
        shape = [-(-n // f)] + shape + [f]
    return tuple(shape)


def packed_index(indices: tuple, packs: list) -> tuple:
    idx = list(indices)
    for axis, f in packs:
        i = idx.pop(axis)
        idx = [binary("floordiv", i, f)] + idx + [binary("mod", i, f)]
    return tuple(idx)


def pack_array(arr: np.ndarray, packs: list) -> np.ndarray:
    """Apply pack steps to constant data (zero-padding partial blocks)."""
    for axis, f in packs:
        n = arr.shape[axis]
        pad = (-n) % f
        if pad:
            widths = [(0, 0)] * arr.ndim
            widths[axis] = (0, pad)
            arr = np.pad(arr, widths)
        shape = list(arr.shape)
        shape[axis:axis + 1] = [shape[axis] // f, f]
        arr = arr.reshape(shape)
        arr = np.moveaxis(arr, [axis, axis + 1], [0, arr.ndim - 1])
    return np.ascontiguousarray(arr)


def _rewrite_loads(stage, mapping: dict):
    """Replace loads of buffers in ``mapping`` (buffer -> (new buffer, index fn))."""
    def rw(x):
        if isinstance(x, Load) and x.buffer in mapping:
            nb, fn = mapping[x.buffer]
            return Load(nb, fn(x.indices))
        return None
    body = transform(stage.body, rw)
    epi = transform(stage.epilogue, rw) if stage.epilogue is not None else None
    return Stage(stage.buffer, stage.axes, body, stage.reduce_axes, stage.combiner, stage.acc, epi, stage.tag)


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------

def lower(kernel: Kernel, schedule: Schedule | None, lanes: int = 16) -> LoweredKernel:
    """Apply ``schedule`` to ``kernel`` and produce its loop nests."""
    schedule = schedule or Schedule()
    states = apply_schedule(kernel, schedule)
    packs: dict = states.pop("__packs__")

    # 1. inline the stages the schedule inlines
    stages = list(kernel.stages)
    for name, st in states.items():
        if st.attach[0] == "inline":
            prod = next(s for s in stages if s.name == name)
            stages = [inline_into(u, prod) if isinstance(u, Stage) and prod.buffer in u.reads() else u
                      for u in stages if u is not prod]
            for u in stages:
                if isinstance(u, ExternStage) and prod.buffer in u.reads():
                    raise ScheduleError(f"inline: {name} is read by extern stage {u.name}")
    # 2. constant re-layouts
    packed_inputs = {}
    mapping = {}
    for b in kernel.inputs:
        if b.name in packs:
            nb = Buffer(b.name, packed_shape(b.shape, packs[b.name]), b.dtype)
            packed_inputs[b] = nb
            mapping[b] = (nb, lambda idx, p=packs[b.name]: packed_index(idx, p))
    if mapping:
        stages = [_rewrite_loads(s, mapping) if isinstance(s, Stage) else s for s in stages]
    # refresh states with the rewritten stage objects
    for s in stages:
        if isinstance(s, Stage):
            states[s.name].stage = s

    # 3. scratch buffers for every materialised intermediate
    outputs = set(kernel.outputs)
    scratch: list = []
    for s in stages:
        if isinstance(s, Stage) and s.buffer not in outputs:
            scratch.append(s.buffer)
        elif isinstance(s, ExternStage):
            scratch.extend(b for b in s.outputs if b not in outputs)
            scratch.extend(s.scratch)

    # 4. loop nests of root stages, with attached stages inside
    attached: dict = {}
    for s in stages:
        if isinstance(s, Stage) and states[s.name].attach[0] == "at":
            _, consumer, axis = states[s.name].attach
            attached.setdefault((consumer, axis), []).append(s)
    regions: list = []
    for s in stages:
        if isinstance(s, ExternStage):
            body = s.body
            regions.append(Region(body, isinstance(body, For) and body.kind == "parallel", s.name))
            continue
        st = states[s.name]
        if st.attach[0] != "root":
            continue
        builder = NestBuilder(st, states, attached, lanes, scratch)
        stmt = builder.build()
        regions.append(Region(stmt, isinstance(stmt, For) and stmt.kind == "parallel", s.name))
    inputs = [packed_inputs.get(b, b) for b in kernel.inputs]
    # a stage computed into region-local buffers never touches its full-size scratch
    from .stmt import buffers_used
    used = set()
    for r in regions:
        used.update(buffers_used(r.stmt))
    scratch = [b for b in scratch if b in used]
    return LoweredKernel(kernel.name, inputs, list(kernel.outputs), scratch, regions, packs, packed_inputs)


# --------------------------------------------------------------------------------------
# nest construction for one stage
# --------------------------------------------------------------------------------------

def _vector_row(n: int, lanes: int) -> int:
    """Elements a vector loop of ``n`` iterations touches: whole vectors, then the
    power-of-two tail codegen uses for the remainder."""
    full, rem = divmod(n, lanes)
    tail = 1
    while tail < rem:
        tail *= 2
    return full * lanes + (tail if rem else 0)


class NestBuilder:
    """Builds the loop nest of one stage from its schedule state.

    ``override`` (for compute_at): axis name -> (lo expression, extent): the stage computes
    only ``[lo, lo + extent)`` along that axis.
    """

    def __init__(self, st: StageState, states: dict, attached: dict, lanes: int, scratch: list,
                 override: dict | None = None, bound_axes: tuple = (), out_buffer: Buffer | None = None):
        self.st = st
        self.stage: Stage = st.stage
        self.states = states
        self.attached = attached
        self.lanes = lanes
        self.scratch = scratch
        self.override = override or {}
        self.bound_axes = bound_axes    # axes whose computed window may leave the shape
        # an attached stage computing its region into a region-sized local buffer stores
        # at indices relative to the region's start
        self.out_buffer = out_buffer or self.stage.buffer
        self.load_remap: dict = {}      # producer buffer -> (region buffer, start indices)
        self.leaves = list(st.leaves)
        self.lv = {l: Var(l.replace("@", "_").replace(".", "_")) for l in self.leaves}
        self.position = {l: i for i, l in enumerate(self.leaves)}
        if self.override:
            for rel in st.relations:
                parts = [rel.parent] if isinstance(rel, Split) else rel.parts
                if any(p in self.override for p in parts):
                    raise ScheduleError(f"stage {self.stage.name} is attached with compute_at; "
                                        f"its axes {sorted(self.override)} cannot be split or fused")
        self._plan_tails()
        self._plan_accumulator()

    # -- axis extents and values under a partition mode -------------------------------
    # A *mode* maps split index -> "full" | "tail": which branch of a partition we are in.
    def extents(self, mode: dict) -> dict:
        key = tuple(sorted(mode.items()))
        hit = self._ext_cache.get(key)
        if hit is not None:
            return hit
        ext = {ax.name: ax.extent for ax in list(self.stage.axes) + list(self.stage.reduce_axes)}
        for name, (_, e) in self.override.items():
            ext[name] = int(e)
        for k, rel in enumerate(self.st.relations):
            if isinstance(rel, Split):
                e_p, f = ext[rel.parent], rel.factor
                ext[rel.outer] = -(-e_p // f)
                if mode.get(k) == "tail":
                    ext[rel.inner] = e_p - (ext[rel.outer] - 1) * f
                else:
                    ext[rel.inner] = min(f, e_p)
            else:
                n = 1
                for p in rel.parts:
                    n *= ext[p]
                ext[rel.fused] = n
        self._ext_cache[key] = ext
        return ext

    def is_tail(self, k: int, mode: dict) -> bool:
        rel = self.st.relations[k]
        e_p = self.extents(mode)[rel.parent]
        return e_p > rel.factor and e_p % rel.factor != 0

    def full_tiles(self, k: int, mode: dict) -> int:
        rel = self.st.relations[k]
        return self.extents(mode)[rel.parent] // rel.factor

    def values(self, mode: dict) -> dict:
        """Expression of every axis (original and derived) in terms of leaf variables."""
        ext = self.extents(mode)
        val = {l: self.lv[l] for l in self.leaves}
        for k in reversed(range(len(self.st.relations))):
            rel = self.st.relations[k]
            if isinstance(rel, Fuse):
                rest = 1
                for p in reversed(rel.parts):
                    v = binary("floordiv", val[rel.fused], rest) if rest != 1 else val[rel.fused]
                    val[p] = binary("mod", v, ext[p]) if p != rel.parts[0] else v
                    rest *= ext[p]
            else:
                if mode.get(k) == "tail":
                    val[rel.outer] = const(self.full_tiles(k, mode), INDEX)
                val[rel.parent] = binary("add", binary("mul", val[rel.outer], rel.factor), val[rel.inner])
        for name, (lo, _) in self.override.items():
            val[name] = binary("add", lo, val[name])
        return val

    def extent_of(self, leaf: str, mode: dict) -> int:
        return self.extents(mode)[leaf]

    def ranges(self, mode: dict, leaves=None) -> dict:
        leaves = self.leaves if leaves is None else leaves
        return {self.lv[l]: (0, self.extent_of(l, mode) - 1) for l in leaves}

    # -- planning ---------------------------------------------------------------------
    def _plan_tails(self):
        """Where each split could be partitioned: just inside the loops its outer part comes from.

        A split can be partitioned when every leaf derived from its inner part lies inside
        that point (so all loops whose extent changes are in the branches).  Whether a split
        actually has a tail is decided while building, per mode (a tail can shrink a later
        split of the same axis).  Splits that cannot be partitioned get guards.
        """
        self._ext_cache: dict = {}
        self.partition_at: dict = {}     # level -> [split indices]
        self.unpartitioned: set = set()
        derived: dict = {}               # axis -> leaves derived from it
        for l in self.leaves:
            derived[l] = {l}
        for rel in reversed(self.st.relations):
            if isinstance(rel, Split):
                derived[rel.parent] = derived.get(rel.outer, set()) | derived.get(rel.inner, set())
            else:
                for p in rel.parts:
                    derived[p] = derived.get(rel.fused, set())
        val0 = self.values({})
        count = 0
        for k, rel in enumerate(self.st.relations):
            if not isinstance(rel, Split):
                continue
            if self.st.extent[rel.parent] % rel.factor == 0 and not self._may_shrink(rel.parent):
                continue
            deps = [l for l in self.leaves if depends_on(val0[rel.outer], self.lv[l])]
            inner_leaves = derived.get(rel.inner, set())
            level = max((self.position[l] for l in deps), default=-1) + 1
            ok = bool(deps) and inner_leaves and count < MAX_PARTITIONS and \
                all(self.position[l] >= level for l in inner_leaves)
            if ok:
                self.partition_at.setdefault(level, []).append(k)
                count += 1
            else:
                self.unpartitioned.add(k)

    def _may_shrink(self, axis: str) -> bool:
        """Is ``axis`` the inner part of a split that may have a tail (so its extent varies)?"""
        for rel in self.st.relations:
            if isinstance(rel, Split) and rel.inner == axis:
                return self.st.extent[rel.parent] % rel.factor != 0 or self._may_shrink(rel.parent)
        return False

    def _plan_accumulator(self):
        st = self.st
        self.acc_level = None
        if not self.stage.is_reduction:
            return
        if st.cache_at == "default":
            red = [i for i, l in enumerate(self.leaves) if st.kind[l] == "reduce"]
            self.acc_level = red[0] if red else len(self.leaves)
        elif st.cache_at is None:
            self.acc_level = 0
        else:
            self.acc_level = self.position[st.cache_at] + 1
        # a partitioned spatial split placed inside the accumulator would change its shape
        for level, keys in list(self.partition_at.items()):
            if level > self.acc_level:
                for k in list(keys):
                    if st.kind[self.st.relations[k].inner] == "spatial":
                        keys.remove(k)
                        self.unpartitioned.add(k)
        if self.leaves and st.annotations.get(self.leaves[0]) == "parallel" and self.acc_level == 0:
            raise ScheduleError(f"stage {self.stage.name}: the accumulator cannot enclose the parallel loop")

    # -- building ---------------------------------------------------------------------
    def build(self) -> Stmt:
        return self._build(0, {}, in_acc=False)

    def _build(self, level: int, mode: dict, in_acc: bool) -> Stmt:
        for k in self.partition_at.get(level, []):
            if k not in mode and self.is_tail(k, mode):
                split = self.st.relations[k]
                cond = binary("lt", self.values(mode)[split.outer], self.full_tiles(k, mode))
                full = self._build(level, {**mode, k: "full"}, in_acc)
                tail = self._build(level, {**mode, k: "tail"}, in_acc)
                return If(cond, full, tail)
        pre, regions = self._attached_here(level, mode)
        saved = dict(self.load_remap)
        for producer_buf, region_buf, lo in regions:
            self.load_remap[producer_buf] = (region_buf, lo)
        try:
            if self.acc_level is not None and level == self.acc_level and not in_acc:
                rest = self._acc_block(level, mode)
            elif level == len(self.leaves):
                rest = self._innermost(mode)
            else:
                leaf = self.leaves[level]
                kind = self.st.annotations.get(leaf, "serial")
                body = self._build(level + 1, mode, in_acc)
                if leaf in self.st.prefetch:
                    body = seq(self._prefetches(level, mode), body)
                rest = For(self.lv[leaf], const(self.extent_of(leaf, mode), INDEX), kind, body)
        finally:
            self.load_remap = saved
        out = seq(pre, rest)
        for _, region_buf, _ in regions:
            out = Allocate(region_buf, out)
        return out

    def _prefetches(self, level: int, mode: dict) -> Stmt | None:
        """Prefetch hints at the top of loop ``level``: for every load of a prefetched
        buffer, the lines it reads ``distance`` iterations of this loop later.  Loops
        inside that move the address by a line or more get an unrolled hint each (two
        channel-block streams: two hints); finer ones (the vector lanes) share one."""
        leaf = self.leaves[level]
        var = self.lv[leaf]
        inner = self.leaves[level + 1:]
        stmts, seen = [], set()
        loads = loads_of(self._simp(self.stage.body, mode))
        for name, distance in self.st.prefetch[leaf]:
            for ld in loads:
                if ld.buffer.name != name or ld.buffer.scope == "local":
                    continue
                flat = flat_offset(ld.buffer, ld.indices)
                step = coefficient(flat, var)
                if not step:
                    continue                      # the address does not move along this loop
                loops = []
                for l in inner:
                    c = coefficient(flat, self.lv[l])
                    if c == 0:
                        continue
                    if c is None or abs(c) * dtype_bytes(ld.buffer.dtype) < 64:
                        flat = substitute(flat, {self.lv[l]: const(0, INDEX)})
                    else:
                        loops.append(l)
                flat = simplify(binary("add", flat, step * distance))
                key = (name, str(flat))
                if key in seen:
                    continue
                seen.add(key)
                stmt: Stmt = Prefetch(ld.buffer, flat, abs(step) * distance * dtype_bytes(ld.buffer.dtype))
                for l in reversed(loops):
                    stmt = For(self.lv[l], const(self.extent_of(l, mode), INDEX), "unroll", stmt)
                stmts.append(stmt)
        return seq(*stmts) if stmts else None

    def _guard_conds(self, mode: dict, scope: set) -> list:
        val = self.values(mode)
        ext = self.extents(mode)
        out = []
        for k in sorted(self.unpartitioned):
            if k in mode or not self.is_tail(k, mode):
                continue
            rel = self.st.relations[k]
            cond = binary("lt", val[rel.parent], ext[rel.parent])
            if free_vars(cond) <= scope:
                out.append(cond)
        for ax in self.bound_axes:
            v = val[ax.name]
            out.append(binary("ge", v, 0))
            out.append(binary("lt", v, ax.extent))
        return out

    def _guarded(self, stmt: Stmt, mode: dict, scope_leaves) -> Stmt:
        scope = {self.lv[l] for l in scope_leaves}
        rng = self.ranges(mode)
        conds = [simplify(c, rng) for c in self._guard_conds(mode, scope)]
        conds = [c for c in conds if not (isinstance(c, Const) and c.value)]
        if not conds:
            return stmt
        return if_then(logical_and(*conds), stmt)

    def _axis_env(self, mode: dict) -> dict:
        val = self.values(mode)
        return {ax.var: val[ax.name] for ax in list(self.stage.axes) + list(self.stage.reduce_axes)}

    def _simp(self, e: Expr, mode: dict) -> Expr:
        e = substitute(e, self._axis_env(mode))
        if self.load_remap:
            remap = self.load_remap

            def rw(x):
                if isinstance(x, Load) and x.buffer in remap:
                    buf, lo = remap[x.buffer]
                    return Load(buf, tuple(binary("sub", i, l) for i, l in zip(x.indices, lo)))
                return None
            e = transform(e, rw)
        return simplify(e, self.ranges(mode))

    def _out_indices(self, mode: dict) -> tuple:
        rng = self.ranges(mode)
        val = self.values(mode)
        if self.out_buffer is not self.stage.buffer:
            # a region buffer: index relative to the region's start
            return tuple(simplify(binary("sub", val[ax.name], self.override.get(ax.name, (const(0, INDEX),))[0]),
                                  rng) for ax in self.stage.axes)
        return tuple(simplify(val[ax.name], rng) for ax in self.stage.axes)

    def _innermost(self, mode: dict) -> Stmt:
        s = self.stage
        if s.is_reduction:
            inner_sp = self._inner_spatial()
            acc_idx = tuple(self.lv[l] for l in inner_sp)
            old = Load(self.acc_buf, acc_idx)
            value = combine(s.combiner, old, self._simp(s.body, mode))
            return self._guarded(Store(self.acc_buf, acc_idx, value), mode, self.leaves)
        value = self._simp(s.output_value(s.body), mode)
        return self._guarded(Store(self.out_buffer, self._out_indices(mode), value), mode, self.leaves)

    def _inner_spatial(self) -> list:
        return [l for l in self.leaves[self.acc_level:] if self.st.kind[l] == "spatial"]

    def _acc_block(self, level: int, mode: dict) -> Stmt:
        s = self.stage
        inner_sp = self._inner_spatial()
        shape = tuple(self.extent_of(l, mode) for l in inner_sp)
        if inner_sp and self.st.annotations.get(inner_sp[-1]) == "vector":
            # rows of whole vectors: a masked tail (14 lanes of 16) then touches only its own
            # row, and LLVM can keep every row in registers
            shape = shape[:-1] + (_vector_row(shape[-1], self.lanes),)
        size = int(np.prod(shape)) if shape else 1
        scope = "local" if size <= MAX_LOCAL_ACC else "global"
        if scope == "global":
            # an accumulator too big for registers lives in scratch; branches reuse one
            accs = self.__dict__.setdefault("_global_accs", {})
            acc = accs.get(shape)
            if acc is None:
                acc = accs[shape] = Buffer(f"{s.name}.acc{len(accs)}", shape, s.acc_dtype, scope)
                self.scratch.append(acc)
        else:
            acc = Buffer(f"{s.name}.acc", shape, s.acc_dtype, scope)
        self.acc_buf = acc
        acc_idx = tuple(self.lv[l] for l in inner_sp)
        outer_red = [l for l in self.leaves[:level] if self.st.kind[l] == "reduce"]

        def nest(body: Stmt) -> Stmt:
            for l in reversed(inner_sp):
                body = For(self.lv[l], const(self.extent_of(l, mode), INDEX),
                           self.st.annotations.get(l, "serial"), body)
            return body

        scope_leaves = self.leaves[:level] + inner_sp
        ident = identity_of(s.combiner, s.acc_dtype)
        init = nest(self._guarded(Store(acc, acc_idx, ident), mode, scope_leaves))
        main = self._build(level, mode, in_acc=True)
        out_idx = self._out_indices(mode)
        final_value = self._simp(s.output_value(Load(acc, acc_idx)), mode)
        final = nest(self._guarded(Store(self.out_buffer, out_idx, final_value), mode, scope_leaves))
        if not outer_red:
            return Allocate(acc, seq(init, main, final))
        # partial sums across the reduce loops outside the accumulator
        if s.epilogue is None and s.acc_dtype == s.dtype:
            partial = s.buffer
        else:
            # one buffer shared by every partition branch: they carry the same partials
            partial = getattr(self, "_partial", None)
            if partial is None:
                partial = self._partial = Buffer(f"{s.name}.partial", s.shape, s.acc_dtype)
                self.scratch.append(partial)
        first = logical_and(*[binary("eq", self.lv[l], 0) for l in outer_red])
        last = logical_and(*[binary("eq", self.lv[l], self.extent_of(l, mode) - 1) for l in outer_red])
        init_partial = nest(self._guarded(Store(acc, acc_idx, Load(partial, out_idx)), mode, scope_leaves))
        save_partial = nest(self._guarded(Store(partial, out_idx, Load(acc, acc_idx)), mode, scope_leaves))
        writeback = save_partial if partial is s.buffer else If(last, final, save_partial)
        return Allocate(acc, seq(If(first, init, init_partial), main, writeback))

    # -- compute_at ---------------------------------------------------------------------
    def _attached_here(self, level: int, mode: dict) -> tuple:
        """(statements computing the stages attached inside loop ``level - 1``, and the
        region-local buffers they write: [(producer buffer, region buffer, start)])."""
        if level == 0:
            return None, []
        leaf = self.leaves[level - 1]
        producers = self.attached.get((self.stage.name, leaf), [])
        if not producers:
            return None, []
        out, regions = [], []
        for p in producers:
            stmt, region = self._compute_region(p, level, mode)
            out.append(stmt)
            if region is not None:
                regions.append(region)
        return seq(*out), regions

    def _compute_region(self, producer: Stage, level: int, mode: dict) -> Stmt:
        """Loop nest computing the region of ``producer`` read inside loop level ``level``."""
        inner = self.leaves[level:]
        outer = self.leaves[:level]
        inner_vars = {self.lv[l]: (0, self.extent_of(l, mode) - 1) for l in inner}
        outer_ranges = {self.lv[l]: (0, self.extent_of(l, mode) - 1) for l in outer}
        env = self._axis_env(mode)
        loads = []
        for e in [self.stage.body] + ([self.stage.epilogue] if self.stage.epilogue is not None else []):
            loads.extend(loads_of(e, producer.buffer))
        # also loads by other stages attached at the same point (they run before us)
        override = {}
        for d, ax in enumerate(producer.axes):
            region = None
            for ld in loads:
                idx = simplify(substitute(ld.indices[d], env), {**outer_ranges, **inner_vars})
                r = _affine_window(idx, inner_vars)
                if r is None:
                    region = None
                    break
                if region is None:
                    region = r
                else:
                    region = _union_window(region, r)
                    if region is None:
                        break
            if region is None or region[1] >= ax.extent:
                override[ax.name] = (const(0, INDEX), ax.extent)
            else:
                override[ax.name] = region
        # the window may stick out of the producer's shape at the edges: guard those axes
        bound_axes = []
        for ax in producer.axes:
            lo, ext = override[ax.name]
            if ext == ax.extent and isinstance(lo, Const) and lo.value == 0:
                continue
            r = int_range(lo, outer_ranges)
            if r is None or r[0] < 0 or r[1] + ext > ax.extent:
                bound_axes.append(ax)
        region_buf = None
        shape = tuple(int(override[ax.name][1]) for ax in producer.axes)
        size = int(np.prod(shape)) if shape else 1
        readers = [st for st in self.states.values() if isinstance(st, StageState)
                   and st.stage is not producer and producer.buffer in st.stage.reads()]
        if size * _elem_bytes(producer.dtype) <= REGION_LOCAL_MAX_BYTES and len(readers) == 1 \
                and readers[0].stage is self.stage and size < producer.buffer.size:
            # a per-thread buffer just the size of the region: stays in L1, never written back
            region_buf = Buffer(f"{producer.name}.region", shape, producer.dtype, "local")
        sub = NestBuilder(self.states[producer.name], self.states, self.attached, self.lanes,
                          self.scratch, override, tuple(bound_axes), out_buffer=region_buf)
        stmt = sub.build()
        if region_buf is None:
            return stmt, None
        lo = tuple(override[ax.name][0] for ax in producer.axes)
        return stmt, (producer.buffer, region_buf, lo)


def _affine_window(idx: Expr, inner: dict):
    """(lo expression, extent) of ``idx`` as the inner variables span their ranges."""
    lf = linear_form(idx)
    if lf is None:
        return None
    terms, c0 = lf
    outer_terms, lo_off, hi_off = {}, 0, 0
    for t, c in terms.items():
        if isinstance(t, Var) and t in inner:
            lo, hi = inner[t]
            a, b = c * lo, c * hi
            lo_off += min(a, b)
            hi_off += max(a, b)
        elif any(v in inner for v in free_vars(t)):
            r = int_range(t, inner)
            if r is None or any(v not in inner for v in free_vars(t)):
                return None
            a, b = c * r[0], c * r[1]
            lo_off += min(a, b)
            hi_off += max(a, b)
        else:
            outer_terms[t] = c
    from .expr import from_linear
    lo = from_linear(outer_terms, c0 + lo_off)
    return lo, hi_off - lo_off + 1


def _union_window(a, b):
    lo_a, ext_a = a
    lo_b, ext_b = b
    diff = simplify(binary("sub", lo_b, lo_a))
    if not isinstance(diff, Const):
        return None
    d = int(diff.value)
    start = min(0, d)
    end = max(ext_a, d + ext_b)
    return (lo_a if start == 0 else simplify(binary("add", lo_a, start)), end - start)


def _elem_bytes(dtype: str) -> int:
    from .expr import dtype_bytes
    return dtype_bytes(dtype)
