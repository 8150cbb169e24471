"""The operator library.  Importing this package registers every operator with the core.

One module per operator family; each op is a build function (its computation) registered
with ``mlc.registry.register``, plus optionally a default schedule.
"""
from . import (control_flow_ops, conv, conv_transpose, data_movement, einsum, elementwise,  # noqa: F401
               gather_scatter, layout, logic, matmul, nms, normalization, pool, qlinear, quantize, reduce,
               resize, rnn, shape_ops, softmax, topk, views)
