"""Fusion: group nodes into kernels that make as few trips through memory as possible.

Decided from the op patterns the registry declares, in phases:

1. **vertical**: an anchor (conv, matmul, gemm) or a reduction (pooling, softmax, norms,
   reduce ops) absorbs the elementwise / broadcast nodes consuming its result -- bias,
   residual add, activation, scale, clip, cast -- so they run while the accumulator is in
   registers; chains of elementwise nodes merge; an elementwise producer used only by a
   reduction becomes its prologue.
2. **prologues**: index-remapping producers (Transpose, Reshape, Slice ...) used only by an
   anchor or reduction join it: the consumer reads through the remapping instead of a
   copy being made (the kernel keeps a copy only where reading through it would turn a
   contiguous vector access into a gather).
3. **heavy chains**: an anchor and a reduction connected by an intermediate used by nothing
   else share one kernel (attention's scores -> softmax -> weighted sum; a projection
   -> LayerNorm; pooling -> classifier): the intermediate stays in the kernel's scratch,
   hot in cache.  Two convolutions never share a kernel (nothing to gain).
4. **horizontal**: sibling anchors reading the same input (Q/K/V projections, parallel
   branches) become one kernel.

Every group stays *convex*: no path leaves the group and comes back.  A group of two or
more nodes becomes one ``mlc.Fused`` node whose ``attrs["body"]`` is a Graph of its members.
``fuse(graph, enabled=False)`` returns the graph unchanged (to measure what fusion is worth).
"""
from __future__ import annotations

from ..ir import Graph, Node
from ...registry import lookup

_EPILOGUE = ("elemwise", "broadcast")
_HEAVY = ("anchor", "reduce")
_REMAP = ("injective", "view")
HEAVY_CHAIN_MAX_BYTES = 2 << 20      # an intermediate kept in scratch should stay in L2


def _pattern(node: Node) -> str:
    if node.op == "mlc.Fused":
        return "fused"
    opdef = lookup(node.op, node.domain)
    return opdef.pattern if opdef is not None else "opaque"


class _Groups:
    """Union of node indices into groups, with the dependency queries the rules need."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes = list(graph.nodes)
        n = len(self.nodes)
        self.patterns = [_pattern(x) for x in self.nodes]
        made_by = {o: i for i, x in enumerate(self.nodes) for o in x.outputs if o}
        self.preds = [sorted({made_by[i] for i in x.inputs if i in made_by}) for x in self.nodes]
        self.succs: list = [[] for _ in range(n)]
        for i, ps in enumerate(self.preds):
            for p in ps:
                self.succs[p].append(i)
        self.group = list(range(n))
        self.members = {i: [i] for i in range(n)}
        self.outputs = set(graph.outputs)

    def heavy_ops(self, g: int) -> list:
        return [self.patterns[m] for m in self.members[g] if self.patterns[m] in _HEAVY]

    def has_op(self, g: int, op: str) -> bool:
        return any(self.nodes[m].op == op for m in self.members[g])

    def reaches_outside(self, src: int, dst: int) -> bool:
        """Is there a path from group ``src`` to group ``dst`` through a node of neither?"""
        dst_members = set(self.members[dst])
        frontier = [s for m in self.members[src] for s in self.succs[m]
                    if self.group[s] != src and s not in dst_members]
        seen = set()
        last = max(dst_members)
        while frontier:
            x = frontier.pop()
            if x in seen or x > last:
                continue
            seen.add(x)
            if any(s in dst_members for s in self.succs[x]):
                return True
            frontier.extend(s for s in self.succs[x] if s not in seen and self.group[s] != src)
        return False

    def convex_merge_ok(self, a: int, b: int) -> bool:
        return not self.reaches_outside(a, b) and not self.reaches_outside(b, a)

    def merge(self, a: int, b: int) -> int:
        """Merge group a into group b; returns b."""
        if a == b:
            return b
        for m in self.members[a]:
            self.group[m] = b
        self.members[b].extend(self.members.pop(a))
        self.members[b].sort()
        return b

    def external_consumers(self, g: int) -> set:
        """Groups (other than g) that read a tensor produced in g."""
        return {self.group[s] for m in self.members[g] for s in self.succs[m] if self.group[s] != g}

    def produces_graph_output(self, g: int) -> bool:
        return any(o in self.outputs for m in self.members[g] for o in self.nodes[m].outputs)

    def output_bytes(self, g: int) -> int:
        total = 0
        for m in self.members[g]:
            for o in self.nodes[m].outputs:
                if o and any(self.group[s] != g for s in self.succs[m]):
                    total += self.graph.tensors[o].nbytes if o in self.graph.tensors else 0
        return total


def fuse(graph: Graph, enabled: bool = True) -> Graph:
    if not enabled:
        return graph
    G = _Groups(graph)
    _vertical(G)
    _prologues(G)
    _heavy_chains(G)
    _horizontal(G)
    return _emit(G)


def _vertical(G: _Groups):
    pats = G.patterns
    for i in range(len(G.nodes)):
        p = pats[i]
        if p in _EPILOGUE:
            # join the group of the latest producer, if convex
            for pred in sorted(G.preds[i], reverse=True):
                gp = G.group[pred]
                if pats[pred] in ("opaque", "view", "injective", "fused"):
                    continue
                if gp == G.group[i] or G.reaches_outside(gp, G.group[i]):
                    continue
                G.merge(G.group[i], gp)
                break
        elif p == "reduce":
            # absorb elementwise producers whose only consumer is this node (prologue)
            for pred in sorted(G.preds[i], reverse=True):
                gp = G.group[pred]
                if gp == G.group[i] or G.heavy_ops(gp) or pats[pred] not in _EPILOGUE:
                    continue
                if G.external_consumers(gp) != {G.group[i]} or G.produces_graph_output(gp):
                    continue
                if G.reaches_outside(gp, G.group[i]):
                    continue
                G.merge(gp, G.group[i])


def _prologues(G: _Groups):
    """Index-remapping nodes used only by one heavy group join it (repeat for chains)."""
    changed = True
    while changed:
        changed = False
        for i in reversed(range(len(G.nodes))):
            if G.patterns[i] not in _REMAP:
                continue
            g = G.group[i]
            if len(G.members[g]) != 1:
                continue
            users = G.external_consumers(g)
            if len(users) != 1 or G.produces_graph_output(g):
                continue
            target = next(iter(users))
            if not G.heavy_ops(target) and not _feeds_heavy_prologue(G, target):
                continue
            if G.reaches_outside(g, target):
                continue
            G.merge(g, target)
            changed = True


def _feeds_heavy_prologue(G: _Groups, g: int) -> bool:
    """A remap-only group that itself feeds a heavy group (a chain of remaps)."""
    return all(G.patterns[m] in _REMAP for m in G.members[g]) and \
        any(G.heavy_ops(u) for u in G.external_consumers(g))


def _heavy_chains(G: _Groups):
    changed = True
    while changed:
        changed = False
        for g in sorted(G.members):
            if g not in G.members or not G.heavy_ops(g):
                continue
            users = G.external_consumers(g)
            if len(users) != 1 or G.produces_graph_output(g):
                continue
            u = next(iter(users))
            if not G.heavy_ops(u):
                continue
            # the edge itself must join an anchor and a reduction (anchor -> anchor gains
            # nothing; looking at whole groups would chain everything together)
            if {G.heavy_ops(g)[-1], G.heavy_ops(u)[0]} != {"anchor", "reduce"}:
                continue
            if G.has_op(g, "Conv") and G.has_op(u, "Conv"):
                continue
            if G.output_bytes(g) > HEAVY_CHAIN_MAX_BYTES:
                continue
            if not G.convex_merge_ok(g, u):
                continue
            G.merge(g, u)
            changed = True


def _horizontal(G: _Groups):
    """Groups whose anchors read the same input tensor, independent of each other, merge."""
    by_input: dict = {}
    for g, ms in G.members.items():
        anchors = [m for m in ms if G.patterns[m] == "anchor"]
        if len(anchors) != 1 or G.has_op(g, "Conv"):
            continue
        first = G.nodes[anchors[0]].inputs[0]
        if first:
            by_input.setdefault(first, []).append(g)
    for name, gs in by_input.items():
        if len(gs) < 2:
            continue
        base = gs[0]
        for other in gs[1:]:
            if other not in G.members or base not in G.members:
                continue
            if G.convex_merge_ok(other, base):
                base = G.merge(other, base)


def _emit(G: _Groups) -> Graph:
    graph, nodes = G.graph, G.nodes
    new_nodes = []
    for g in sorted(G.members, key=lambda g: max(G.members[g])):
        ms = G.members[g]
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
        used_outside = set(G.outputs)
        for m2, x in enumerate(nodes):
            if G.group[m2] != g:
                used_outside.update(t for t in x.inputs if t)
        outs = [o for x in body_nodes for o in x.outputs if o and o in used_outside]
        body = Graph(tuple(body_nodes), tuple(t for t in ins if not graph.is_constant(t)), tuple(outs),
                     {k: v for k, v in graph.tensors.items() if k in produced or k in ins},
                     name=f"fused{g}", opsets=graph.opsets)
        name = "+".join(x.op for x in body_nodes)
        new_nodes.append(Node("mlc.Fused", tuple(ins), tuple(outs), {"body": body}, name=name))
    # a group runs when its last member would have; a topological sort makes that exact
    return graph.replace(nodes=tuple(_toposort(new_nodes)))


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
