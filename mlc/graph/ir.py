"""Graph IR: tensors with static dtype and shape, nodes that name their inputs/outputs.

A :class:`Graph` is what the frontend produces and what every graph pass takes and
returns.  Tensors are referred to by name; ``Graph.tensors`` maps every name used by the
graph to its :class:`Tensor` (dtype, shape and, for constants, the value).  Passes build new
graphs with :meth:`Graph.replace` rather than mutating one in place, so a pass can be
tested alone and a pipeline can keep earlier stages for ``inspect``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..errors import ShapeError


@dataclass(frozen=True, eq=False)
class Tensor:
    """A value in the graph: name, element type, static shape, and data if constant."""

    name: str
    dtype: str                       # numpy dtype name: "float32", "int64", "bool", ...
    shape: tuple[int, ...]
    value: np.ndarray | None = None  # set for constants (initializers, folded values)

    @property
    def is_constant(self) -> bool:
        return self.value is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def type_str(self) -> str:
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"

    @staticmethod
    def constant(name: str, value: np.ndarray) -> "Tensor":
        value = np.asarray(value, order="C")     # (ascontiguousarray would make a 0-d array 1-d)
        return Tensor(name, value.dtype.name, tuple(int(d) for d in value.shape), value)


@dataclass(frozen=True, eq=False)
class Node:
    """One operator application.  ``op`` is the ONNX op type (or an mlc-internal op)."""

    op: str
    inputs: tuple[str, ...]          # "" marks an omitted optional input, as in ONNX
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""
    opset: int = 0                   # the opset version of `domain` the node was written for

    def with_(self, **changes) -> "Node":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """How errors name a node: op, opset and node name."""
        label = f"{self.op}" + (f" (opset {self.opset})" if self.opset else "")
        return f"{label} node {self.name!r}" if self.name else label


@dataclass(frozen=True, eq=False)
class Graph:
    """A dataflow graph with every tensor's type known.

    ``nodes`` are in a valid execution (topological) order.  ``inputs`` are the run-time
    inputs the caller feeds; constants are tensors with a value and appear in no list.
    """

    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    tensors: dict[str, Tensor]
    name: str = "graph"
    opsets: dict[str, int] = field(default_factory=dict)   # domain -> version
    # output name -> name of an int64 scalar output holding its actual number of rows: the
    # output's static shape is an upper bound (data-dependent outputs such as NMS's)
    row_counts: dict[str, str] = field(default_factory=dict)

    # --- queries ------------------------------------------------------------------------
    def tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise ShapeError(f"graph {self.name!r} has no tensor named {name!r}") from None

    def is_constant(self, name: str) -> bool:
        t = self.tensors.get(name)
        return t is not None and t.value is not None

    def producers(self) -> dict[str, Node]:
        """Map from tensor name to the node that produces it."""
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        """Map from tensor name to the nodes that read it (in node order)."""
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def to_networkx(self):
        """The node dependency graph as a networkx.DiGraph over node indices."""
        import networkx as nx
        g = nx.DiGraph()
        g.add_nodes_from(range(len(self.nodes)))
        made_by = {out: i for i, node in enumerate(self.nodes) for out in node.outputs if out}
        for i, node in enumerate(self.nodes):
            for name in node.inputs:
                j = made_by.get(name)
                if j is not None:
                    g.add_edge(j, i)
        return g

    # --- building new graphs ------------------------------------------------------------
    def replace(self, **changes) -> "Graph":
        return dataclasses.replace(self, **changes)

    def with_nodes(self, nodes: Iterable[Node], extra_tensors: dict[str, Tensor] | None = None) -> "Graph":
        """A graph with ``nodes`` (kept in the given order) and tensors pruned to those used."""
        nodes = tuple(nodes)
        tensors = dict(self.tensors)
        if extra_tensors:
            tensors.update(extra_tensors)
        used = set(self.inputs) | set(self.outputs)
        for node in nodes:
            used.update(n for n in node.inputs if n)
            used.update(n for n in node.outputs if n)
        return dataclasses.replace(self, nodes=nodes, tensors={k: v for k, v in tensors.items() if k in used})

    def fresh_name(self, base: str) -> str:
        name, i = base, 0
        while name in self.tensors:
            i += 1
            name = f"{base}_{i}"
        return name

    # --- printing -----------------------------------------------------------------------
    def __str__(self) -> str:
        return format_graph(self)


def _format_attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value.ravel(), separator=",")
        return f"<{value.dtype}{list(value.shape)}>"
    if isinstance(value, Graph):
        return f"<graph {value.name} {len(value.nodes)} nodes>"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{', '.join(map(str, value[:8]))}, ...]"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def format_graph(graph: Graph) -> str:
    """A readable listing: inputs, constants (summarised), one line per node, outputs."""
    lines = [f"graph {graph.name} (opsets {graph.opsets}) {{"]
    for name in graph.inputs:
        lines.append(f"  input  %{name}: {graph.tensors[name].type_str()}")
    consts = [t for t in graph.tensors.values() if t.value is not None]
    if consts:
        total = sum(t.nbytes for t in consts)
        lines.append(f"  {len(consts)} constants, {total / 1e6:.2f} MB")
    for node in graph.nodes:
        outs = ", ".join(f"%{o}: {graph.tensors[o].type_str()}" if o in graph.tensors else f"%{o}"
                         for o in node.outputs)
        ins = ", ".join(("$" if graph.is_constant(i) else "%") + i if i else "_" for i in node.inputs)
        attrs = ", ".join(f"{k}={_format_attr(v)}" for k, v in sorted(node.attrs.items()))
        lines.append(f"  {outs} = {node.op}({ins}){' {' + attrs + '}' if attrs else ''}")
    lines.append(f"  return {', '.join('%' + o for o in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines)
