"""If and Loop in the op registry.

They never reach a kernel: ``mlc.graph.passes.control_flow`` (the first graph pass of
``default_passes``) replaces every If by the nodes of its branch(es) and unrolls every Loop
with a small constant trip count, or raises a clear UnsupportedError.  Registering them
lets the frontend's unsupported-op check pass such models on to that pass.
"""
from __future__ import annotations

from mlc.registry import register


def _not_removed(ctx):
    raise ctx.unsupported(f"{ctx.node.op} should have been removed by the control-flow graph pass "
                          "(mlc.graph.passes.control_flow); it has no kernel of its own")


for _op in ("If", "Loop"):
    register(_op, pattern="opaque")(_not_removed)
