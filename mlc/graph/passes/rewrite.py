"""What the clean-up and simplification passes share: reading constants, counting the uses
of a tensor, and rebuilding a graph after local rewrites.

A rewrite may only remove or bypass a tensor nobody else needs, so every pass asks
:class:`Uses` how many readers a name has.  Readers are nodes (each counted once, however
many of its inputs name the tensor), the graph's outputs, and subgraph bodies (If / Loop /
Scan) that read the name from the enclosing graph without declaring it: such a name is
*pinned* — passes neither rename nor bypass it, since that would mean rewriting the body.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..ir import Graph, Node, Tensor


# --- subgraph bodies ------------------------------------------------------------------------

def subgraph_bodies(node: Node) -> list[Graph]:
    """The Graph-valued attributes of ``node`` (If branches, Loop/Scan bodies)."""
    out = []
    for value in node.attrs.values():
        if isinstance(value, Graph):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, Graph))
    return out


def outer_reads(body: Graph) -> set[str]:
    """Names ``body`` (or a body nested in it) reads without defining them."""
    defined = set(body.inputs)
    for node in body.nodes:
        defined.update(o for o in node.outputs if o)
    used = set(body.outputs)
    for node in body.nodes:
        used.update(i for i in node.inputs if i)
        for inner in subgraph_bodies(node):
            used |= outer_reads(inner)
    return used - defined


def implicit_reads(graph: Graph) -> set[str]:
    """Names of ``graph`` read implicitly by the bodies of its control-flow nodes."""
    names: set[str] = set()
    for node in graph.nodes:
        for body in subgraph_bodies(node):
            names |= outer_reads(body)
    return names


# --- uses -----------------------------------------------------------------------------------

class Uses:
    """Readers of each tensor name: consumer nodes, graph outputs, pinned names."""

    def __init__(self, graph: Graph):
        self.outputs = set(graph.outputs)
        self.pinned = implicit_reads(graph)
        self.readers: dict[str, list[Node]] = {}
        for node in graph.nodes:
            for name in dict.fromkeys(i for i in node.inputs if i):
                self.readers.setdefault(name, []).append(node)

    def only_reader(self, name: str, node: Node) -> bool:
        """True when ``node`` is the one thing that reads ``name``: no other node, not a
        graph output, not read by a subgraph body.  An intermediate a rewrite may remove."""
        readers = self.readers.get(name, ())
        return (len(readers) == 1 and readers[0] is node and name not in self.outputs
                and name not in self.pinned)

    def is_free(self, name: str) -> bool:
        """Neither a graph output nor read by a subgraph body: its name may change."""
        return name not in self.outputs and name not in self.pinned


# --- constants ------------------------------------------------------------------------------

def const_value(graph: Graph, name: str) -> np.ndarray | None:
    t = graph.tensors.get(name) if name else None
    return None if t is None else t.value


def scalar_value(graph: Graph, name: str) -> float | None:
    """The value of a one-element numeric constant (any shape), else None."""
    v = const_value(graph, name)
    if v is None or v.size != 1 or v.dtype.kind not in "fiub":
        return None
    return float(np.asarray(v).reshape(-1)[0])


def all_equal(graph: Graph, name: str, value: float) -> bool:
    """True when ``name`` is a constant every element of which equals ``value``."""
    v = const_value(graph, name)
    if v is None or v.dtype.kind not in "fiub" or v.size == 0:
        return False
    return bool(np.all(v == value))


def close(a: float | None, b: float, rtol: float = 1e-5) -> bool:
    """``a`` equals ``b`` up to float32 rounding of a constant written in the model."""
    return a is not None and abs(a - b) <= rtol * abs(b) + 1e-12


def node_opset(node: Node, graph: Graph) -> int:
    return node.opset or graph.opsets.get(node.domain or "", 0)


# --- rebuilding -----------------------------------------------------------------------------

class Rewriter:
    """Collects node replacements and new constants, then builds the new graph.

    ``replace(node, new_nodes)`` puts ``new_nodes`` (possibly none) where ``node`` was, so
    the order stays topological as long as the new nodes read only names available there.
    ``renames`` maps tensor names read by any node to another name (resolved transitively).
    """

    def __init__(self, graph: Graph):
        self.graph = graph
        self.tensors: dict[str, Tensor] = dict(graph.tensors)
        self._new: dict[str, Tensor] = {}
        self._replace: dict[int, list[Node]] = {}
        self.renames: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.tensors:
            i += 1
            name = f"{base}_{i}"
        return name

    def constant(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        t = Tensor.constant(name, value)
        self.tensors[name] = t
        self._new[name] = t
        return name

    def set_constant(self, name: str, value: np.ndarray) -> None:
        """Give the existing tensor ``name`` a value: its producer is being removed."""
        t = self.tensors[name]
        self.tensors[name] = self._new[name] = Tensor(name, t.dtype, t.shape, np.asarray(value, dtype=t.dtype))

    def replace(self, node: Node, new_nodes: Iterable[Node]) -> None:
        new_nodes = list(new_nodes)
        if len(new_nodes) == 1 and new_nodes[0] is node:
            self._replace.pop(id(node), None)       # unchanged
            return
        self._replace[id(node)] = new_nodes

    def replaced(self, node: Node) -> bool:
        return id(node) in self._replace

    def resolve(self, name: str) -> str:
        seen = 0
        while name in self.renames:
            name = self.renames[name]
            seen += 1
            if seen > 100_000:
                raise RuntimeError("cycle in tensor renames")
        return name

    @property
    def changed(self) -> bool:
        return bool(self._replace or self.renames or self._new)

    def finish(self) -> Graph:
        if not self.changed:
            return self.graph
        nodes = []
        for node in self.graph.nodes:
            for new in self._replace.get(id(node), [node]):
                if self.renames:
                    ins = tuple(self.resolve(i) if i else i for i in new.inputs)
                    if ins != new.inputs:
                        new = new.with_(inputs=ins)
                nodes.append(new)
        return self.graph.with_nodes(nodes, self._new)


def broadcast_keeps_shape(shape: tuple, other: tuple) -> bool:
    """Broadcasting ``other`` against ``shape`` gives exactly ``shape``."""
    try:
        return tuple(np.broadcast_shapes(tuple(shape), tuple(other))) == tuple(shape)
    except ValueError:
        return False
