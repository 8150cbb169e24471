"""The operator library.  Importing this package registers every operator with the core.

One module per operator family; each op is a build function (its computation) registered
with ``mlc.registry.register``, plus optionally a default schedule.
"""
from . import (conv, einsum, elementwise, layout, logic, matmul, normalization, pool, reduce,  # noqa: F401
               softmax, topk, views)
