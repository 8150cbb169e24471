"""The operator library.  Importing this package registers every operator with the core.

One module per operator family; each op is a build function (its computation) registered
with ``mlc.registry.register``, plus optionally a default schedule.
"""
from . import conv, data_movement, elementwise, gather_scatter, layout, matmul, normalization, pool, resize, shape_ops, views  # noqa: F401
