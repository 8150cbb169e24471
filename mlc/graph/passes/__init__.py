"""Graph passes: each a function Graph -> Graph, tested alone (see the individual modules)."""
from __future__ import annotations


def default_passes(graph, target):
    """The standard optimisation pipeline applied by ``mlc.compile``."""
    from .dce import eliminate_dead_code
    graph = eliminate_dead_code(graph)
    return graph
