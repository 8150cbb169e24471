"""Computations: what a kernel computes, written once per operator, apart from any schedule.

A :class:`Stage` defines every element of one output buffer as an expression of its index
variables, optionally reduced over reduce axes and finished by an epilogue::

    out[i, j] = epilogue( reduce_{k} body(i, j, k) )

Operators build stages with :func:`compute` (TVM's ``te.compute`` in spirit)::

    k = reduce_axis(K, "k")
    C = compute((M, N), lambda i, j: reduce_sum(A[i, k] * B[k, j], [k]), "matmul")
    D = compute((M, N), lambda i, j: maximum(C[i, j] + bias[j], 0.0), "relu")

An :class:`ExternStage` is the escape hatch for irregular operators (TopK, NMS, scans):
an imperative loop-IR statement that reads and writes buffers directly.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

from .expr import (INDEX, Buffer, Expr, IterVar, Load, Reduce, Var, as_expr, cast, format_expr,
                   loads_of, substitute, transform, walk)

_counter = itertools.count()


def reduce_axis(extent: int, name: str = "r") -> IterVar:
    """A new reduction axis of ``extent`` iterations."""
    return IterVar(Var(name), int(extent), "reduce")


def spatial_axis(extent: int, name: str) -> IterVar:
    return IterVar(Var(name), int(extent), "spatial")


@dataclass(eq=False)
class Stage:
    """One computed buffer: ``buffer[axes] = epilogue(combiner-reduce over reduce_axes of body)``.

    ``acc`` is the variable the epilogue uses for the reduced value (or for ``body`` when
    the stage has no reduction); ``acc_dtype`` is the accumulator's element type.
    """

    buffer: Buffer
    axes: tuple[IterVar, ...]
    body: Expr
    reduce_axes: tuple[IterVar, ...] = ()
    combiner: str | None = None
    acc: Var | None = None
    epilogue: Expr | None = None
    tag: str = ""                 # the op that made it, for printing and features

    @property
    def name(self) -> str:
        return self.buffer.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.buffer.shape

    @property
    def dtype(self) -> str:
        return self.buffer.dtype

    @property
    def acc_dtype(self) -> str:
        return self.body.dtype

    @property
    def is_reduction(self) -> bool:
        return self.combiner is not None

    def __getitem__(self, index) -> Load:
        return self.buffer[index]

    def output_value(self, acc_value: Expr) -> Expr:
        """The stored value given the (reduced) accumulator value."""
        if self.epilogue is None:
            return acc_value
        return substitute(self.epilogue, {self.acc: acc_value})

    def full_expr(self) -> Expr:
        """The element expression, reduction included (for inlining injective stages)."""
        if self.is_reduction:
            raise ValueError(f"stage {self.name} is a reduction; it cannot be inlined")
        return self.output_value(self.body)

    def reads(self) -> list[Buffer]:
        out: list[Buffer] = []
        exprs = [self.body] + ([self.epilogue] if self.epilogue is not None else [])
        for e in exprs:
            for ld in loads_of(e):
                if ld.buffer not in out:
                    out.append(ld.buffer)
        return out

    def __str__(self) -> str:
        idx = ", ".join(a.name for a in self.axes)
        if self.is_reduction:
            red = ", ".join(f"{a.name}<{a.extent}" for a in self.reduce_axes)
            core = f"{self.combiner}[{red}]({format_expr(self.body)})"
        else:
            core = format_expr(self.body)
        if self.epilogue is not None:
            core = f"{format_expr(self.epilogue)} where {self.acc.name} = {core}"
        return f"{self.name}[{idx}] = {core}"


@dataclass(eq=False)
class ExternStage:
    """An imperative stage: ``body`` is a loop-IR statement writing ``outputs``.

    ``parallel_hint``: the statement's outermost loop may be run in parallel.
    """

    outputs: tuple[Buffer, ...]
    inputs: tuple[Buffer, ...]
    body: object                     # mlc.loop.stmt.Stmt
    tag: str = ""
    scratch: tuple[Buffer, ...] = ()  # global scratch buffers the statement uses

    @property
    def name(self) -> str:
        return self.outputs[0].name

    @property
    def buffer(self) -> Buffer:
        return self.outputs[0]

    def reads(self) -> list[Buffer]:
        return list(self.inputs)

    def __str__(self) -> str:
        # the statement too: it is the computation (and part of the kernel's structural key)
        from .stmt import format_stmt
        return f"extern {self.tag}({', '.join(b.name for b in self.inputs)}) -> " \
               f"{', '.join(b.name for b in self.outputs)}\n{format_stmt(self.body, 1)}"


def placeholder(shape: Sequence[int], dtype: str, name: str) -> Buffer:
    """A kernel input buffer."""
    return Buffer(name, tuple(int(d) for d in shape), dtype)


def compute(shape: Sequence[int], fcompute: Callable[..., Expr], name: str = "T",
            dtype: str | None = None, tag: str = "", axis_names: Sequence[str] | None = None) -> Stage:
    """Define a stage from an element function of its output indices.

    ``fcompute(*index_vars)`` returns an expression.  It may contain one :class:`Reduce`
    (from :func:`reduce_sum` and friends); anything around it becomes the epilogue, e.g.
    ``reduce_sum(x, [r]) / 9.0`` is a sum with a divide applied once per output element.
    ``dtype`` casts the result (default: the expression's dtype).
    """
    shape = tuple(int(d) for d in shape)
    names = list(axis_names) if axis_names else [f"i{k}" for k in range(len(shape))]
    if len(names) != len(shape):
        raise ValueError(f"{name}: {len(names)} axis names for rank {len(shape)}")
    axes = tuple(IterVar(Var(n), d, "spatial") for n, d in zip(names, shape))
    value = as_expr(fcompute(*[a.var for a in axes]))
    reduces = [x for x in walk(value) if isinstance(x, Reduce)]
    if len(reduces) > 1:
        raise ValueError(f"{name}: at most one reduction per stage (found {len(reduces)})")
    out_dtype = dtype or value.dtype
    if not reduces:
        acc = Var("acc", value.dtype)
        epilogue = None if out_dtype == value.dtype else cast(out_dtype, acc)
        return Stage(Buffer(name, shape, out_dtype), axes, value, (), None, acc, epilogue, tag)
    red = reduces[0]
    acc = Var("acc", red.dtype)
    if value is red:
        epilogue = None
    else:
        epilogue = transform(value, lambda x: acc if x is red else None)
    if epilogue is not None and epilogue.dtype != out_dtype:
        epilogue = cast(out_dtype, epilogue)
    elif epilogue is None and red.dtype != out_dtype:
        epilogue = cast(out_dtype, acc)
    return Stage(Buffer(name, shape, out_dtype), axes, red.value, tuple(red.axes), red.combiner,
                 acc, epilogue, tag)


def unique_name(base: str) -> str:
    return f"{base}_{next(_counter)}"


def index_vars(stage: Stage) -> list[Var]:
    return [a.var for a in stage.axes]


def rename_axes(stage: Stage, names: Sequence[str]) -> Stage:
    """The same stage with spatial axes renamed (schedules refer to axes by name)."""
    mapping, axes = {}, []
    for ax, nm in zip(stage.axes, names):
        nv = Var(nm, INDEX)
        mapping[ax.var] = nv
        axes.append(IterVar(nv, ax.extent, ax.kind))
    body = substitute(stage.body, mapping)
    epi = substitute(stage.epilogue, mapping) if stage.epilogue is not None else None
    return Stage(stage.buffer, tuple(axes), body, stage.reduce_axes, stage.combiner, stage.acc, epi, stage.tag)
