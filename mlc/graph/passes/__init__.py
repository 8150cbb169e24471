"""Graph passes: each a function Graph -> Graph, tested alone (see the individual modules)."""
from __future__ import annotations


def default_passes(graph, target, fusion: bool = True):
    """The standard optimisation pipeline applied by ``mlc.compile``."""
    from .dce import eliminate_dead_code
    from .fuse import fuse
    from .layout import convert_to_blocked
    from .simplify import simplify
    from .control_flow import check_no_control_flow
    graph = check_no_control_flow(graph)    # If / Loop are expanded at import (control_flow.py)
    graph = eliminate_dead_code(graph)
    graph = simplify(graph)     # clean-up, patterns, BatchNorm / scale / bias folding
    graph = convert_to_blocked(graph, block=target.lanes_f32)
    graph = fuse(graph, enabled=fusion)
    return graph
