"""The operator registry: how the compiler core learns about operators without naming any.

Each module in ``kernels/`` registers the ONNX ops it implements::

    @register("Relu", pattern="elemwise")
    def relu(ctx: OpContext):
        x = ctx.input(0)
        return [ctx.compute(ctx.out_shape(0), lambda *i: maximum(x[i], 0.0), "relu")]

An op's *build* function receives an :class:`OpContext` and returns one handle (a Stage or
a Buffer) per node output.  ``pattern`` tells the fusion pass how the op composes:

    "elemwise"   out[i] = f(in[i]) on same-shape inputs
    "broadcast"  elementwise with numpy broadcasting of inputs
    "injective"  every output element is a function of some input elements (transpose,
                 slice, concat, gather, pad, resize)
    "reduce"     reduces along axes (ReduceSum, Softmax, LayerNorm, pooling)
    "anchor"     compute-heavy with reuse: conv, matmul, gemm; epilogues fuse into it
    "opaque"     never fused (TopK, NMS, RNN loops)
    "view"       output is the input's memory reinterpreted (Reshape, Squeeze, Flatten)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ConstantRequiredError, ShapeError, UnsupportedError
from .loop.expr import Buffer
from .loop.tensor import ExternStage, Stage, compute as _compute
from .naming import fresh_name

PATTERNS = ("elemwise", "broadcast", "injective", "reduce", "anchor", "opaque", "view")


@dataclass
class OpDef:
    name: str
    build: Callable                               # (OpContext) -> list[Stage | Buffer]
    pattern: str
    domain: str = ""
    check: Callable | None = None                 # (OpContext) -> reason str if unsupported
    schedule: Callable | None = None              # (Kernel, Target) -> Schedule | None
    space: Callable | None = None                 # (Kernel, Target) -> tuning space | None
    const_inputs: tuple = ()                      # inputs that must be compile-time constants
    # Blocked layout (NCHW[b]c): (node, graph, block) -> (node to run blocked, {input
    # indices that must be blocked}) or None when this node cannot run blocked.
    blocked: Callable | None = None
    prefers_blocked: bool = False                 # starts a blocked region (convolutions)
    # Outputs whose row count depends on the data (NonMaxSuppression): (node proto,
    # {input name: constant value or None}, {input name: shape}) -> the maximum number of
    # rows of output 0.  The output then gets that static shape and a row-count output.
    bounded_rows: Callable | None = None


_REGISTRY: dict[tuple[str, str], OpDef] = {}


def register(name: str, pattern: str, domain: str = "", check: Callable | None = None,
             const_inputs: Sequence[int] = ()):
    """Decorator registering an op's build function."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}")

    def deco(fn):
        _REGISTRY[(domain, name)] = OpDef(name, fn, pattern, domain, check, None, None, tuple(const_inputs))
        return fn

    return deco


def register_schedule(name: str, domain: str = ""):
    """Decorator: the default schedule of kernels anchored by op ``name``."""
    def deco(fn):
        _REGISTRY[(domain, name)].schedule = fn
        return fn
    return deco


def register_space(name: str, domain: str = ""):
    """Decorator: the tuning space of kernels anchored by op ``name``:
    ``(kernel, target, threads) -> mlc.tuning.space.Space | None``."""
    def deco(fn):
        _REGISTRY[(domain, name)].space = fn
        return fn
    return deco


def register_bounded_rows(name: str, domain: str = ""):
    """Decorator: the row bound of op ``name``'s data-dependent output (see OpDef)."""
    def deco(fn):
        _REGISTRY[(domain, name)].bounded_rows = fn
        return fn
    return deco


def register_blocked(name: str, domain: str = "", prefers: bool = False):
    """Decorator: how op ``name`` runs in the blocked channel layout (see passes/layout.py)."""
    def deco(fn):
        opdef = _REGISTRY[(domain, name)]
        opdef.blocked = fn
        opdef.prefers_blocked = prefers
        return fn
    return deco


def lookup(op: str, domain: str = "") -> OpDef | None:
    if domain in ("ai.onnx",):
        domain = ""
    return _REGISTRY.get((domain, op))


def registered_ops() -> list[tuple[str, str]]:
    return sorted(_REGISTRY)


@dataclass
class OpContext:
    """What an op's build function sees: the node, its input handles and tensor types."""

    node: Any                      # mlc.graph.ir.Node
    inputs: list                   # Buffer | Stage | None per node input
    input_tensors: list            # mlc.graph.ir.Tensor | None per node input
    output_tensors: list           # mlc.graph.ir.Tensor per node output
    target: Any                    # mlc.target.Target
    stages: list = field(default_factory=list)   # stages created so far, in order
    materialize: set = field(default_factory=set)
    names: set = field(default_factory=set)      # stage names taken in this kernel
    derived: dict = field(default_factory=dict)  # Buffer -> np.ndarray: constants made at compile time

    # -- node facts ----------------------------------------------------------------------
    def attr(self, name: str, default=None):
        return self.node.attrs.get(name, default)

    @property
    def opset(self) -> int:
        return self.node.opset

    def input(self, i: int):
        if i >= len(self.inputs) or self.inputs[i] is None:
            raise ShapeError(f"{self.node.describe()}: missing input {i}")
        return self.inputs[i]

    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    def in_shape(self, i: int) -> tuple:
        return tuple(self.input_tensors[i].shape)

    def in_dtype(self, i: int) -> str:
        return self.input_tensors[i].dtype

    def out_shape(self, i: int = 0) -> tuple:
        return tuple(self.output_tensors[i].shape)

    def out_dtype(self, i: int = 0) -> str:
        return self.output_tensors[i].dtype

    def const(self, i: int) -> np.ndarray | None:
        """The value of input ``i`` when it is a compile-time constant, else None."""
        if i >= len(self.input_tensors) or self.input_tensors[i] is None:
            return None
        return self.input_tensors[i].value

    def require_const(self, i: int, what: str) -> np.ndarray:
        v = self.const(i)
        if v is None:
            raise ConstantRequiredError(
                f"{self.node.describe()}: input {i} ({what}) must be a compile-time constant",
                [(self.node.op, self.node.opset, self.node.name, f"non-constant {what}")],
                tensors=[self.node.inputs[i]])
        return v

    def axis(self, default: int, rank: int, name: str = "axis") -> int:
        """Attribute ``name`` as an axis in ``[0, rank)`` (negative counts from the end);
        out of range is an unsupported-model error naming the node."""
        a = int(self.attr(name, default))
        r = a + rank if a < 0 else a
        if not 0 <= r < max(rank, 1):
            raise self.unsupported(f"{name} {a} is out of range for rank {rank}")
        return r

    def unsupported(self, reason: str) -> UnsupportedError:
        return UnsupportedError(f"{self.node.describe()}: {reason}",
                                [(self.node.op, self.node.opset, self.node.name, reason)])

    # -- building stages -------------------------------------------------------------------
    def compute(self, shape, fcompute, name: str, dtype: str | None = None,
                axis_names: Sequence[str] | None = None, materialize: bool = False) -> Stage:
        """Create a stage (see :func:`mlc.loop.tensor.compute`) and record it."""
        stage = _compute(shape, fcompute, self.unique(name), dtype, tag=self.node.op, axis_names=axis_names)
        self.stages.append(stage)
        if materialize:
            self.materialize.add(stage.name)
        return stage

    def unique(self, name: str) -> str:
        """A stage/buffer name not yet used in this kernel (deterministic, so kernels that
        are built from the same ops get the same names and the same structural key)."""
        return fresh_name(self.names, name)

    def constant(self, value: np.ndarray, name: str = "const") -> Buffer:
        """A constant input computed at compile time (e.g. a folded per-channel scale).

        Its data goes into the weights blob; the kernel reads it like any input."""
        value = np.ascontiguousarray(value)
        buf = Buffer(self.unique(name), tuple(int(d) for d in value.shape), value.dtype.name)
        self.derived[buf] = value
        return buf

    def extern(self, stage: ExternStage) -> ExternStage:
        self.stages.append(stage)
        return stage
