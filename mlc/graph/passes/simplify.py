"""The clean-up and algebraic-simplification stage of the pipeline, in its order.

    remove_noops                 Identity, Dropout, same-shape views, Transpose pairs, x*1 ...
    eliminate_common_subexpr.    duplicated nodes and duplicated constants
    fold_constants               nodes the two passes above left with constant inputs (not
                                 those that had only constant inputs already)
    recognize_patterns           decomposed LayerNorm / GELU / SiLU / HardSwish / Mish, Relu
    fold_batchnorm               BatchNormalization into the Conv before it
    fold_scale_bias              constant per-channel Mul/Add/Sub/Div (and BN after Gemm)
                                 into Conv / Gemm / MatMul weights and biases
    remove_noops, DCE            what the folds left behind

Why this order: no-op removal first exposes duplicates (two Identity-wrapped copies of one
value) and constant inputs; patterns are recognised before scales are folded, since a
fold could otherwise move a pattern's constant (GELU's 0.5) into a weight; BatchNorm folds
before generic scales so a BN's scale and shift land in the conv in one step.
"""
from __future__ import annotations

from ..ir import Graph


def simplify(graph: Graph) -> Graph:
    from .cse import eliminate_common_subexpressions
    from .dce import eliminate_dead_code
    from .fold_batchnorm import fold_batchnorm
    from .fold_constants import constant_input_nodes, fold_constants
    from .fold_scale_bias import fold_scale_bias
    from .noops import remove_noops
    from .recognize_patterns import recognize_patterns
    unfolded = constant_input_nodes(graph)      # left so by the frontend (or by design)
    graph = remove_noops(graph)
    graph = eliminate_common_subexpressions(graph)
    graph = fold_constants(graph, keep=unfolded)
    graph = recognize_patterns(graph)
    graph = fold_batchnorm(graph)
    graph = fold_scale_bias(graph)
    graph = remove_noops(graph)
    return eliminate_dead_code(graph)
