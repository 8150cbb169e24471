"""The operator library.  Importing this package registers every operator with the core.

One module per operator family; each op is a build function (its computation) registered
with ``mlc.registry.register``, plus optionally a default schedule.
"""
from . import (conv, data_movement, einsum, elementwise, gather_scatter, layout, logic, matmul,  # noqa: F401
               normalization, pool, reduce, resize, shape_ops, softmax, topk, views)
