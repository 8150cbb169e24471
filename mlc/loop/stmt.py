"""Statements of the loop-level IR: the loop nests that lowering produces and codegen emits.

Loops run ``var`` from 0 to ``extent - 1``; ``kind`` says how codegen emits them:

    "serial"     an ordinary loop
    "unroll"     the body repeated ``extent`` times (extent must be a constant)
    "vector"     SIMD lanes; strip-mined by the target's vector width, tail masked
    "parallel"   split across the native thread pool (outermost loops of a kernel only)

Irregular operators build these statements directly (see ``ExternStage``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .expr import Buffer, Const, Expr, Var, as_expr, format_expr, INDEX

LOOP_KINDS = ("serial", "unroll", "vector", "parallel")


class Stmt:
    __slots__ = ()

    def __str__(self) -> str:
        return format_stmt(self)


@dataclass(frozen=True, eq=False, repr=False)
class For(Stmt):
    var: Var
    extent: Expr
    kind: str
    body: Stmt

    def __post_init__(self):
        if self.kind not in LOOP_KINDS:
            raise ValueError(f"unknown loop kind {self.kind!r}")


@dataclass(frozen=True, eq=False, repr=False)
class Store(Stmt):
    buffer: Buffer
    indices: tuple
    value: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Seq(Stmt):
    stmts: tuple


@dataclass(frozen=True, eq=False, repr=False)
class If(Stmt):
    cond: Expr
    then: Stmt
    orelse: Stmt | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Allocate(Stmt):
    """A local (per-thread, stack) buffer live for ``body``."""

    buffer: Buffer
    body: Stmt


@dataclass(frozen=True, eq=False, repr=False)
class Let(Stmt):
    """Bind ``var`` to ``value`` (evaluated once) for ``body``."""

    var: Var
    value: Expr
    body: Stmt


@dataclass(frozen=True, eq=False, repr=False)
class Prefetch(Stmt):
    """A hint: bring the cache line holding element ``offset`` (flat, in elements) of
    ``buffer`` closer to the core.  No effect on results; an address past the buffer's end
    is harmless (a prefetch never faults)."""

    buffer: Buffer
    offset: Expr
    ahead: int = 0      # bytes ahead of the access it runs in front of (for cost features)


@dataclass(frozen=True, eq=False, repr=False)
class Break(Stmt):
    """Leave the innermost enclosing serial loop (imperative kernels only)."""


# --------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------

def seq(*stmts) -> Stmt:
    flat: list[Stmt] = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, Seq):
            flat.extend(s.stmts)
        elif isinstance(s, (list, tuple)):
            inner = seq(*s)
            flat.extend(inner.stmts if isinstance(inner, Seq) else [inner])
        else:
            flat.append(s)
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def loop(var: Var, extent, body: Stmt, kind: str = "serial") -> For:
    return For(var, as_expr(extent, INDEX), kind, body)


def store(buffer: Buffer, indices: Sequence, value) -> Store:
    idx = tuple(as_expr(i, INDEX) for i in indices)
    if len(idx) != len(buffer.shape):
        raise IndexError(f"store to {buffer.name}: rank {len(buffer.shape)}, {len(idx)} indices")
    return Store(buffer, idx, as_expr(value, buffer.dtype))


def if_then(cond, then: Stmt, orelse: Stmt | None = None) -> Stmt:
    cond = as_expr(cond)
    if isinstance(cond, Const):
        return then if cond.value else (orelse if orelse is not None else Seq(()))
    return If(cond, then, orelse)


# --------------------------------------------------------------------------------------
# traversal
# --------------------------------------------------------------------------------------

def stmt_children(s: Stmt) -> tuple:
    if isinstance(s, (For, Allocate, Let)):
        return (s.body,)
    if isinstance(s, Seq):
        return s.stmts
    if isinstance(s, If):
        return (s.then,) if s.orelse is None else (s.then, s.orelse)
    return ()


def walk_stmt(s: Stmt):
    stack = [s]
    while stack:
        x = stack.pop()
        yield x
        stack.extend(reversed(stmt_children(x)))


def buffers_used(s: Stmt) -> list[Buffer]:
    """Every non-local buffer a statement reads or writes, in first-use order."""
    from .expr import loads_of
    seen: list[Buffer] = []
    local: set = set()

    def add(b: Buffer):
        if b.scope != "local" and b not in seen and b not in local:
            seen.append(b)

    for x in walk_stmt(s):
        exprs: list[Expr] = []
        if isinstance(x, Allocate):
            local.add(x.buffer)
        elif isinstance(x, Store):
            add(x.buffer)
            exprs = list(x.indices) + [x.value]
        elif isinstance(x, For):
            exprs = [x.extent]
        elif isinstance(x, If):
            exprs = [x.cond]
        elif isinstance(x, Let):
            exprs = [x.value]
        elif isinstance(x, Prefetch):
            add(x.buffer)
            exprs = [x.offset]
        for e in exprs:
            for ld in loads_of(e):
                add(ld.buffer)
    return seen


# --------------------------------------------------------------------------------------
# printing
# --------------------------------------------------------------------------------------

def format_stmt(s: Stmt, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(s, For):
        tag = "" if s.kind == "serial" else f" {s.kind}"
        return f"{pad}for {s.var.name} in 0..{format_expr(s.extent)}{tag}:\n" + format_stmt(s.body, indent + 1)
    if isinstance(s, Store):
        idx = ", ".join(format_expr(i) for i in s.indices)
        return f"{pad}{s.buffer.name}[{idx}] = {format_expr(s.value)}"
    if isinstance(s, Seq):
        if not s.stmts:
            return f"{pad}pass"
        return "\n".join(format_stmt(x, indent) for x in s.stmts)
    if isinstance(s, If):
        out = f"{pad}if {format_expr(s.cond)}:\n" + format_stmt(s.then, indent + 1)
        if s.orelse is not None:
            out += f"\n{pad}else:\n" + format_stmt(s.orelse, indent + 1)
        return out
    if isinstance(s, Allocate):
        b = s.buffer
        return f"{pad}local {b.name}: {b.dtype}{list(b.shape)}\n" + format_stmt(s.body, indent)
    if isinstance(s, Let):
        return f"{pad}{s.var.name} = {format_expr(s.value)}\n" + format_stmt(s.body, indent)
    if isinstance(s, Break):
        return f"{pad}break"
    if isinstance(s, Prefetch):
        return f"{pad}prefetch {s.buffer.name}[flat {format_expr(s.offset)}] ({s.ahead} bytes ahead)"
    return f"{pad}{s!r}"
