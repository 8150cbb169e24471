"""Graph passes: each a function Graph -> Graph, tested alone (see the individual modules)."""
from __future__ import annotations


def default_passes(graph, target, fusion: bool = True):
    """The standard optimisation pipeline applied by ``mlc.compile``."""
    from .dce import eliminate_dead_code
    from .fold_batchnorm import fold_batchnorm
    from .fuse import fuse
    from .layout import convert_to_blocked
    graph = eliminate_dead_code(graph)
    graph = fold_batchnorm(graph)
    graph = convert_to_blocked(graph, block=target.lanes_f32)
    graph = fuse(graph, enabled=fusion)
    return graph
