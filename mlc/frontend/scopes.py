"""Name scopes of ONNX graphs: what a subgraph reads from outside, and a valid node order.

ONNX control-flow bodies (If branches, Loop and Scan bodies) may read any name of the
graphs that enclose them without declaring it.  A node therefore depends on its formal
inputs *and* on every outer name its subgraphs read; both folding (is everything this
node reads constant?) and ordering (which nodes must run first?) need that full set.
"""
from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Iterable, Sequence

import onnx

from ..errors import ModelLoadError

_GRAPH = onnx.AttributeProto.GRAPH
_GRAPHS = onnx.AttributeProto.GRAPHS


def subgraphs(node: onnx.NodeProto) -> list[tuple[str, onnx.GraphProto]]:
    """(attribute name, body) for every graph-valued attribute of ``node``."""
    out = []
    for attr in node.attribute:
        if attr.type == _GRAPH:
            out.append((attr.name, attr.g))
        elif attr.type == _GRAPHS:
            out.extend((f"{attr.name}[{i}]", g) for i, g in enumerate(attr.graphs))
    return out


def graph_outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names ``graph`` reads (directly or in nested bodies) without defining them itself."""
    defined = {vi.name for vi in graph.input}
    defined.update(t.name for t in graph.initializer)
    defined.update(sp.values.name for sp in graph.sparse_initializer)
    used: set[str] = {vi.name for vi in graph.output}
    for node in graph.node:
        used.update(name for name in node.input if name)
        used |= node_outer_names(node)
        defined.update(name for name in node.output if name)
    return used - defined


def node_outer_names(node: onnx.NodeProto) -> set[str]:
    """Names the subgraphs of ``node`` read from the scope that contains ``node``."""
    names: set[str] = set()
    for _, body in subgraphs(node):
        names |= graph_outer_names(body)
    return names


def node_reads(node: onnx.NodeProto) -> list[str]:
    """Every name ``node`` needs before it can run: formal inputs, then captured names."""
    reads = [name for name in node.input if name]
    reads.extend(sorted(node_outer_names(node) - set(reads)))
    return reads


def describe(node: onnx.NodeProto) -> str:
    """How error messages name an ONNX node."""
    domain = f"{node.domain}." if node.domain not in ("", "ai.onnx") else ""
    return f"{domain}{node.op_type} node {node.name!r}"


def topological_order(nodes: Sequence[onnx.NodeProto], available: Iterable[str],
                      where: str) -> list[onnx.NodeProto]:
    """``nodes`` in an order where every node runs after what it reads.

    Keeps the model's order whenever it is already valid (the usual case), and checks
    what the onnx checker may not have reached (it stops at its first complaint, and mlc
    tolerates some): every name read is defined, no name is produced twice, no cycles.
    """
    available = set(available)
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for name in node.output:
            if not name:
                continue
            if name in producer or name in available:
                raise ModelLoadError(f"{where}: tensor {name!r} is produced twice (by "
                                     f"{describe(node)} and earlier); ONNX graphs are in SSA form")
            producer[name] = i
    deps: list[set[int]] = []
    for node in nodes:
        mine = set()
        for name in node_reads(node):
            if name in producer:
                mine.add(producer[name])
            elif name not in available:
                raise ModelLoadError(f"{where}: input {name!r} of {describe(node)} is not produced "
                                     "by any node and is not a graph input or initializer")
        deps.append(mine)
    return [nodes[i] for i in _kahn(deps, nodes, where)]


def _kahn(deps: list[set[int]], nodes: Sequence[onnx.NodeProto], where: str) -> list[int]:
    """Kahn's algorithm, always taking the lowest ready index so the order is stable."""
    users: list[list[int]] = [[] for _ in deps]
    waiting = [len(d) for d in deps]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapify(ready)
    order = []
    while ready:
        i = heappop(ready)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heappush(ready, u)
    if len(order) != len(deps):
        stuck = [describe(nodes[i]) for i, w in enumerate(waiting) if w][:5]
        raise ModelLoadError(f"{where}: the graph has a cycle through {', '.join(stuck)}")
    return order


def name_unnamed_nodes(graph: onnx.GraphProto, prefix: str = "") -> None:
    """Give every unnamed node (here and in subgraphs) a unique, stable name, in place.

    Exporters often leave node names empty; errors and the unsupported-op list must point
    at a node, so unnamed nodes get "<op>_<index>" (prefixed by the enclosing node's name
    and attribute inside subgraphs, e.g. "if_0/then_branch/Relu_2").
    """
    taken = {node.name for node in graph.node if node.name}
    for i, node in enumerate(graph.node):
        if not node.name:
            base = name = f"{prefix}{node.op_type}_{i}"
            k = 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            node.name = name
            taken.add(name)
        for attr_name, body in subgraphs(node):
            name_unnamed_nodes(body, f"{node.name}/{attr_name}/")
