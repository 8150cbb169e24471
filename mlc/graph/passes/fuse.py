"""Vertical fusion: group nodes into kernels that make one trip through memory.

Rules, by the op patterns the registry declares:

* an anchor (conv, matmul, gemm) or a reduction (pooling, softmax, reduce ops) absorbs the
  elementwise / broadcast nodes that consume its result: bias, residual add, activation,
  scale, clip, cast.  The kernel applies them while the accumulator is in registers;
* chains of elementwise / broadcast nodes merge into one kernel;
* an elementwise producer feeding a reduction is merged into it (a prologue), since the
  reduction reads each element once;
* at most one anchor or reduction per kernel; opaque ops and views are never merged.

A group is kept *convex*: a node joins a group only if no path leads from the group to the
node through nodes outside the group (otherwise the kernel would have to wait for itself).

Each group of two or more nodes becomes one node ``mlc.Fused`` whose ``attrs["body"]`` is
a Graph of the member nodes.  ``fuse(graph, enabled=False)`` returns the graph unchanged,
for measuring what fusion is worth.
"""
from __future__ import annotations

from ..ir import Graph, Node
from ...registry import lookup

_EPILOGUE = ("elemwise", "broadcast")
_HEAVY = ("anchor", "reduce")


def _pattern(node: Node) -> str:
    opdef = lookup(node.op, node.domain)
    return opdef.pattern if opdef is not None else "opaque"


def fuse(graph: Graph, enabled: bool = True) -> Graph:
    if not enabled:
        return graph
    nodes = list(graph.nodes)
    n = len(nodes)
    patterns = [_pattern(x) for x in nodes]
    made_by = {o: i for i, x in enumerate(nodes) for o in x.outputs if o}
    preds = [sorted({made_by[i] for i in x.inputs if i in made_by}) for x in nodes]
    succs: list = [[] for _ in range(n)]
    for i, ps in enumerate(preds):
        for p in ps:
            succs[p].append(i)
    outputs = set(graph.outputs)

    group = list(range(n))            # node -> group id (the id of its first member)
    members: dict = {i: [i] for i in range(n)}
    heavy: dict = {i: patterns[i] in _HEAVY for i in range(n)}

    def reaches_outside(src_group: int, dst: int) -> bool:
        """Is there a path from the group to ``dst`` through a node outside the group?"""
        frontier = [s for m in members[src_group] for s in succs[m] if group[s] != src_group and s != dst]
        seen = set()
        while frontier:
            x = frontier.pop()
            if x in seen or x > dst:
                continue
            seen.add(x)
            if dst in succs[x]:
                return True
            frontier.extend(s for s in succs[x] if s not in seen)
        return False

    def merge(g_from: int, g_into: int):
        for m in members[g_from]:
            group[m] = g_into
        members[g_into].extend(members.pop(g_from))
        members[g_into].sort()
        heavy[g_into] = heavy[g_into] or heavy.pop(g_from)

    for i in range(n):
        p = patterns[i]
        if p in _EPILOGUE:
            # join the group of the latest producer, if convex
            for pred in sorted(preds[i], reverse=True):
                gp = group[pred]
                if patterns[pred] in ("opaque", "view", "injective"):
                    continue
                if gp == group[i] or reaches_outside(gp, i):
                    continue
                merge(group[i], gp)
                break
        elif p == "reduce":
            # absorb elementwise producers whose only consumer is this node (prologue)
            for pred in sorted(preds[i], reverse=True):
                gp = group[pred]
                if gp == group[i] or heavy.get(gp) or patterns[pred] not in _EPILOGUE:
                    continue
                if any(group[s] != gp and s != i for m in members[gp] for s in succs[m]):
                    continue
                if any(o in outputs for m in members[gp] for o in nodes[m].outputs):
                    continue
                if reaches_outside(gp, i):
                    continue
                merge(gp, group[i])

    # build the new node list in topological order of groups
    new_nodes = []
    emitted = set()
    order = sorted(members, key=lambda g: max(members[g]))
    for g in order:
        ms = members[g]
        if len(ms) == 1:
            new_nodes.append(nodes[ms[0]])
            continue
        body_nodes = [nodes[m] for m in ms]
        produced = {o for x in body_nodes for o in x.outputs if o}
        ins = []
        for x in body_nodes:
            for t in x.inputs:
                if t and t not in produced and t not in ins:
                    ins.append(t)
        used_outside = set(outputs)
        for m2, x in enumerate(nodes):
            if group[m2] != g:
                used_outside.update(t for t in x.inputs if t)
        outs = [o for x in body_nodes for o in x.outputs if o and o in used_outside]
        body = Graph(tuple(body_nodes), tuple(t for t in ins if not graph.is_constant(t)), tuple(outs),
                     {k: v for k, v in graph.tensors.items()
                      if k in produced or k in ins}, name=f"fused{g}", opsets=graph.opsets)
        name = "+".join(x.op for x in body_nodes)
        new_nodes.append(Node("mlc.Fused", tuple(ins), tuple(outs), {"body": body}, name=name))
    # a group runs when its last member would have; a topological sort makes that exact
    new_nodes = _toposort(new_nodes)
    return graph.replace(nodes=tuple(new_nodes))


def _toposort(nodes: list) -> list:
    import networkx as nx
    made_by = {o: i for i, x in enumerate(nodes) for o in x.outputs if o}
    g = nx.DiGraph()
    g.add_nodes_from(range(len(nodes)))
    for i, x in enumerate(nodes):
        for t in x.inputs:
            if t in made_by and made_by[t] != i:
                g.add_edge(made_by[t], i)
    order = list(nx.lexicographical_topological_sort(g))
    return [nodes[i] for i in order]
