"""A group of graph nodes -> one Kernel, by calling each op's build function in order.

Kernel inputs are the tensors the group reads from outside (renamed ``in0, in1, ...`` so
that the kernel's structure, not the model's tensor names, decides its identity); kernel
outputs are the tensors used after the group or returned by the graph.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import MlcError, ShapeError, UnsupportedError
from ..graph.ir import Graph
from ..loop.expr import Buffer
from ..loop.kernel import Kernel
from ..loop.tensor import ExternStage, compute
from ..naming import fresh_name
from ..registry import OpContext, lookup


@dataclass
class BuiltKernel:
    kernel: Kernel
    input_names: list       # graph tensor per kernel input (None for a derived constant)
    output_names: list      # graph tensor per kernel output
    nodes: list             # the graph nodes it computes
    derived: dict           # kernel input index -> np.ndarray for constants made by op builders


def group_io(nodes: list, graph: Graph, used_after: set) -> tuple[list, list]:
    produced = {o for n in nodes for o in n.outputs if o}
    inputs: list = []
    for n in nodes:
        for i in n.inputs:
            if i and i not in produced and i not in inputs:
                inputs.append(i)
    outputs = [o for n in nodes for o in n.outputs if o and o in used_after]
    return inputs, outputs


def build_kernel(name: str, nodes: list, graph: Graph, target, used_after: set) -> BuiltKernel:
    """Build the kernel of ``nodes`` (in execution order).  ``used_after``: tensor names
    needed outside the group (later nodes or graph outputs)."""
    in_names, out_names = group_io(nodes, graph, used_after)
    buffers = {}
    constant = set()
    for k, tname in enumerate(in_names):
        t = graph.tensor(tname)
        b = Buffer(f"in{k}", tuple(t.shape), t.dtype)
        buffers[tname] = b
        if t.value is not None:
            constant.add(b)
    handles: dict = dict(buffers)
    stages: list = []
    materialize: set = set()
    derived: dict = {}
    names: set = {b.name for b in buffers.values()}
    for node in nodes:
        opdef = lookup(node.op, node.domain)
        if opdef is None:
            raise UnsupportedError(f"no kernel for {node.describe()}", [(node.op, node.opset, node.name, "no kernel")])
        ins = [handles.get(i) if i else None for i in node.inputs]
        in_tensors = [graph.tensors.get(i) if i else None for i in node.inputs]
        out_tensors = [graph.tensor(o) if o else None for o in node.outputs]
        ctx = OpContext(node, ins, in_tensors, out_tensors, target, names=names)
        try:
            outs = opdef.build(ctx)
        except MlcError:
            raise
        except Exception as exc:  # a kernel bug: say which node it hit
            raise MlcError(f"building the kernel of {node.describe()} failed: {type(exc).__name__}: {exc}") from exc
        if len(outs) < len([o for o in node.outputs if o]):
            raise MlcError(f"{node.describe()}: the kernel produced {len(outs)} outputs, the node has {len(node.outputs)}")
        stages.extend(ctx.stages)
        materialize |= ctx.materialize
        derived.update(ctx.derived)
        for oname, handle, t in zip(node.outputs, outs, out_tensors):
            if not oname or handle is None:
                continue
            shape = tuple(handle.shape)
            if shape != tuple(t.shape) or handle.dtype != t.dtype:
                raise ShapeError(f"{node.describe()}: kernel output {oname!r} is {handle.dtype}{list(shape)} "
                                 f"but the graph says {t.dtype}{list(t.shape)}")
            handles[oname] = handle
    out_bufs = []
    for oname in out_names:
        h = handles[oname]
        b = h if isinstance(h, Buffer) else h.buffer
        if b in buffers.values() or b in out_bufs:
            # an output that is an input (or another output) needs its own copy
            src = b
            copy = compute(src.shape, lambda *i, s=src: s[i], fresh_name(names, "copy"), tag="copy")
            stages.append(copy)
            b = copy.buffer
        out_bufs.append(b)
    stages = _live_stages(stages, out_bufs)
    read = {b for s in stages for b in s.reads()}
    extra = [b for b in derived if b in read]
    inputs = tuple(buffers[n] for n in in_names) + tuple(extra)
    kernel = Kernel(name, inputs, tuple(out_bufs), stages, frozenset(constant) | frozenset(extra),
                    frozenset(materialize))
    derived_by_index = {len(in_names) + k: derived[b] for k, b in enumerate(extra)}
    return BuiltKernel(kernel.normalize(), list(in_names) + [None] * len(extra), out_names, list(nodes),
                       derived_by_index)


def _live_stages(stages: list, outputs: list) -> list:
    """Stages needed to compute ``outputs`` (dead ones, e.g. unused optional outputs, dropped)."""
    by_buffer = {}
    for s in stages:
        for b in (s.outputs if isinstance(s, ExternStage) else (s.buffer,)):
            by_buffer[b] = s
    needed, stack = set(), list(outputs)
    while stack:
        b = stack.pop()
        s = by_buffer.get(b)
        if s is None or id(s) in needed:
            continue
        needed.add(id(s))
        stack.extend(s.reads())
    return [s for s in stages if id(s) in needed]
