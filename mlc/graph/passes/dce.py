"""Dead-code elimination: drop nodes none of whose outputs reach a graph output."""
from __future__ import annotations

from ..ir import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    live = set(graph.outputs)
    keep = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs if o):
            keep.append(node)
            live.update(i for i in node.inputs if i)
            # subgraph bodies read outer-scope names too
            for v in node.attrs.values():
                if hasattr(v, "nodes") and hasattr(v, "outputs"):
                    live.update(_outer_names(v))
    if len(keep) == len(graph.nodes):
        return graph
    return graph.with_nodes(reversed(keep))


def _outer_names(sub: Graph) -> set:
    produced = set(sub.inputs) | {o for n in sub.nodes for o in n.outputs}
    names = set()
    for n in sub.nodes:
        names.update(i for i in n.inputs if i and i not in produced)
        for v in n.attrs.values():
            if hasattr(v, "nodes") and hasattr(v, "outputs"):
                names.update(_outer_names(v) - produced)
    names.update(o for o in sub.outputs if o not in produced)
    return names
