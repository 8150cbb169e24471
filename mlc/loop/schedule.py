"""Schedules as data: an ordered list of primitive steps that rewrite a kernel's loop nests.

A step is a small tuple, ``["split", "conv", "ow", 14]``, so a schedule serialises to JSON
as it is and a tuning record stores exactly the steps that were measured.  The primitives:

    split(stage, axis, factor)        axis -> axis.o (outer), axis.i (inner, `factor` long)
    reorder(stage, [axes...])         the given leaf axes take these relative positions
    fuse(stage, [a, b, ...])          adjacent leaves -> one loop named "a@b@..."
    vectorize(stage, axis)            SIMD over the innermost leaf
    unroll(stage, axis)               emit the body once per iteration
    parallel(stage, axis)             the outermost leaf, across the thread pool
    inline(stage)                     substitute an injective stage into its consumers
    compute_at(stage, consumer, axis) compute the needed region inside consumer's loop `axis`
    compute_root(stage)               compute the stage in its own loop nest first
    cache_write(stage, axis)          accumulate in registers across the loops inside `axis`
                                      (axis None: across all loops of the stage)
    prefetch(stage, buffer, axis, d)  at the top of each iteration of loop `axis`, hint the
                                      cache lines of `buffer` it will read `d` iterations later
    pack(buffer, axis, factor)        re-layout a constant input: split `axis` by `factor`, the
                                      block index becomes the outermost dimension and the
                                      `factor` lanes the innermost (done at compile time)

:func:`apply_schedule` replays steps onto a :class:`~mlc.loop.kernel.Kernel` and returns the
per-stage :class:`StageState` that lowering reads.  Illegal steps raise ScheduleError.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable

from ..errors import ScheduleError
from .tensor import Stage

STEP_KINDS = ("split", "reorder", "fuse", "vectorize", "unroll", "parallel", "inline",
              "compute_at", "compute_root", "cache_write", "pack", "prefetch")


@dataclass(frozen=True)
class Schedule:
    """An ordered list of steps.  Steps are tuples: (kind, target, *args)."""

    steps: tuple = ()

    def then(self, *step) -> "Schedule":
        if step[0] not in STEP_KINDS:
            raise ScheduleError(f"unknown schedule step {step[0]!r}; known: {', '.join(STEP_KINDS)}")
        return Schedule(self.steps + (tuple(step),))

    # convenience builders -------------------------------------------------------------
    def split(self, stage, axis, factor):
        return self.then("split", stage, axis, int(factor))

    def reorder(self, stage, axes):
        return self.then("reorder", stage, list(axes))

    def fuse(self, stage, axes):
        return self.then("fuse", stage, list(axes))

    def vectorize(self, stage, axis):
        return self.then("vectorize", stage, axis)

    def unroll(self, stage, axis):
        return self.then("unroll", stage, axis)

    def parallel(self, stage, axis):
        return self.then("parallel", stage, axis)

    def inline(self, stage):
        return self.then("inline", stage)

    def compute_at(self, stage, consumer, axis):
        return self.then("compute_at", stage, consumer, axis)

    def compute_root(self, stage):
        return self.then("compute_root", stage)

    def cache_write(self, stage, axis):
        return self.then("cache_write", stage, axis)

    def pack(self, buffer, axis: int, factor: int):
        return self.then("pack", buffer, int(axis), int(factor))

    def prefetch(self, stage, buffer, axis, distance: int):
        return self.then("prefetch", stage, buffer, axis, int(distance))

    # serialisation -----------------------------------------------------------------------
    def to_json(self) -> list:
        return [list(s) for s in self.steps]

    @classmethod
    def from_json(cls, data: Iterable) -> "Schedule":
        out = cls()
        for s in data:
            out = out.then(*s)
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    def __str__(self) -> str:
        return "\n".join(f"{s[0]}({', '.join(map(repr, s[1:]))})" for s in self.steps) or "(default loops)"


# --------------------------------------------------------------------------------------
# per-stage state that lowering reads
# --------------------------------------------------------------------------------------

@dataclass
class Split:
    parent: str
    outer: str
    inner: str
    factor: int


@dataclass
class Fuse:
    parts: list
    fused: str


@dataclass
class StageState:
    stage: Stage
    leaves: list                          # leaf axis names, outermost first
    extent: dict                          # axis name -> extent (all axes ever created)
    kind: dict                            # axis name -> "spatial" | "reduce"
    relations: list = field(default_factory=list)   # Split / Fuse, in creation order
    annotations: dict = field(default_factory=dict)  # leaf -> "vector" | "unroll" | "parallel"
    attach: tuple = ("root",)             # ("root",) | ("inline",) | ("at", consumer, axis)
    cache_at: object = "default"          # "default" | None (outside all loops) | leaf name
    prefetch: dict = field(default_factory=dict)    # leaf -> [(buffer name, distance)]

    @classmethod
    def initial(cls, stage: Stage) -> "StageState":
        leaves, extent, kind = [], {}, {}
        for ax in list(stage.axes) + list(stage.reduce_axes):
            if ax.name in extent:
                raise ScheduleError(f"stage {stage.name}: axis name {ax.name!r} used twice")
            leaves.append(ax.name)
            extent[ax.name] = ax.extent
            kind[ax.name] = ax.kind
        return cls(stage, leaves, extent, kind)

    def _leaf(self, axis: str) -> int:
        if axis not in self.leaves:
            if axis in self.extent:
                raise ScheduleError(f"stage {self.stage.name}: axis {axis!r} was already split or fused; "
                                    f"its loops are now {self._loops()}")
            raise ScheduleError(f"stage {self.stage.name} has no axis {axis!r}; its loops are {self._loops()}")
        return self.leaves.index(axis)

    def _loops(self) -> str:
        return ", ".join(f"{l}<{self.extent[l]}" for l in self.leaves)

    # primitives -------------------------------------------------------------------------
    def split(self, axis: str, factor: int):
        i = self._leaf(axis)
        if factor < 1:
            raise ScheduleError(f"stage {self.stage.name}: split factor of {axis} must be >= 1, got {factor}")
        ext = self.extent[axis]
        factor = min(factor, ext)
        outer, inner = f"{axis}.o", f"{axis}.i"
        if outer in self.extent:
            raise ScheduleError(f"stage {self.stage.name}: axis {axis} already split")
        self.extent[outer] = -(-ext // factor)
        self.extent[inner] = factor
        self.kind[outer] = self.kind[inner] = self.kind[axis]
        self.leaves[i:i + 1] = [outer, inner]
        self.relations.append(Split(axis, outer, inner, factor))
        if axis in self.annotations:
            raise ScheduleError(f"stage {self.stage.name}: split {axis} before annotating it")

    def reorder(self, axes: list):
        positions = sorted(self._leaf(a) for a in axes)
        if len(set(axes)) != len(axes):
            raise ScheduleError(f"stage {self.stage.name}: reorder lists an axis twice: {axes}")
        for pos, a in zip(positions, axes):
            self.leaves[pos] = a

    def fuse(self, axes: list):
        idx = [self._leaf(a) for a in axes]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise ScheduleError(f"stage {self.stage.name}: fuse needs adjacent loops in order, "
                                f"got {axes} in loop order {self._loops()}")
        kinds = {self.kind[a] for a in axes}
        if len(kinds) != 1:
            raise ScheduleError(f"stage {self.stage.name}: cannot fuse spatial and reduce loops {axes}")
        fused = "@".join(axes)
        ext = 1
        for a in axes:
            ext *= self.extent[a]
        self.extent[fused] = ext
        self.kind[fused] = kinds.pop()
        self.leaves[idx[0]:idx[-1] + 1] = [fused]
        self.relations.append(Fuse(list(axes), fused))

    def annotate(self, axis: str, what: str):
        i = self._leaf(axis)
        if what == "parallel":
            if i != 0:
                raise ScheduleError(f"stage {self.stage.name}: only the outermost loop can be parallel, "
                                    f"{axis} is loop {i} of {self._loops()}")
            if self.kind[axis] != "spatial":
                raise ScheduleError(f"stage {self.stage.name}: reduction loop {axis} cannot be parallel")
        if what == "vector" and i != len(self.leaves) - 1:
            raise ScheduleError(f"stage {self.stage.name}: only the innermost loop can be vectorized, "
                                f"{axis} is not innermost in {self._loops()}")
        self.annotations[axis] = what


def apply_schedule(kernel, schedule: Schedule) -> dict:
    """Replay ``schedule`` onto ``kernel``; returns {stage name: StageState} and pack info.

    The result maps stage names to states, plus the key ``"__packs__"`` -> {buffer name:
    [(axis, factor), ...]} for constant re-layouts.
    """
    states: dict = {}
    for st in kernel.stages:
        if isinstance(st, Stage):
            states[st.name] = StageState.initial(st)
    packs: dict = {}
    for step in schedule.steps:
        kind, target, *args = step
        if kind == "pack":
            names = [b.name for b in kernel.const_inputs()]
            if target not in names:
                raise ScheduleError(f"pack: {target!r} is not a constant input of kernel {kernel.name} "
                                    f"(constant inputs: {names})")
            packs.setdefault(target, []).append((int(args[0]), int(args[1])))
            continue
        if target not in states:
            raise ScheduleError(f"{kind}: kernel {kernel.name} has no schedulable stage {target!r} "
                                f"(stages: {', '.join(states)})")
        st = states[target]
        try:
            if kind == "split":
                st.split(args[0], int(args[1]))
            elif kind == "reorder":
                st.reorder(list(args[0]))
            elif kind == "fuse":
                st.fuse(list(args[0]))
            elif kind in ("vectorize", "unroll", "parallel"):
                st.annotate(args[0], {"vectorize": "vector", "unroll": "unroll", "parallel": "parallel"}[kind])
            elif kind == "inline":
                if st.stage.is_reduction:
                    raise ScheduleError(f"inline: stage {target} is a reduction and cannot be inlined")
                if st.stage.buffer in kernel.outputs:
                    raise ScheduleError(f"inline: stage {target} is a kernel output and cannot be inlined")
                st.attach = ("inline",)
            elif kind == "compute_root":
                st.attach = ("root",)
            elif kind == "compute_at":
                consumer, axis = args
                if consumer not in states:
                    raise ScheduleError(f"compute_at: no stage {consumer!r}")
                if st.stage.buffer in kernel.outputs:
                    raise ScheduleError(f"compute_at: stage {target} is a kernel output; it must be computed at root")
                st.attach = ("at", consumer, axis)
            elif kind == "cache_write":
                if not st.stage.is_reduction:
                    raise ScheduleError(f"cache_write: stage {target} has no reduction to accumulate")
                axis = args[0]
                if axis is not None:
                    st._leaf(axis)
                st.cache_at = axis
            elif kind == "prefetch":
                buffer, axis, distance = args[0], args[1], int(args[2])
                if buffer not in {b.name for b in st.stage.reads()}:
                    raise ScheduleError(f"prefetch: stage {target} does not read {buffer!r}")
                if distance < 1:
                    raise ScheduleError(f"prefetch: distance must be >= 1 iteration, got {distance}")
                st._leaf(axis)
                st.prefetch.setdefault(axis, []).append((buffer, distance))
        except ScheduleError:
            raise
        except (TypeError, ValueError, IndexError) as exc:
            raise ScheduleError(f"malformed schedule step {list(step)}: {exc}") from None
    # check compute_at targets after all steps (axes may be created later)
    for name, st in states.items():
        for axis in st.prefetch:
            if axis not in st.leaves:
                raise ScheduleError(f"prefetch: stage {name} has no loop {axis!r} (loops: {st._loops()})")
        if st.attach[0] == "at":
            consumer = states[st.attach[1]]
            if st.attach[2] not in consumer.leaves:
                raise ScheduleError(f"compute_at: stage {st.attach[1]} has no loop {st.attach[2]!r} "
                                    f"(loops: {consumer._loops()})")
            if consumer.attach[0] != "root":
                raise ScheduleError(f"compute_at: {name} is attached to {st.attach[1]}, which is not computed at root")
    states["__packs__"] = packs
    return states
