"""Reading ONNX type information as the rest of mlc wants it.

ONNX describes a value with a ``TypeProto`` and stores data in ``TensorProto``; mlc's graph
IR wants a numpy dtype name, a shape tuple and a numpy array.  These helpers are the one
place that translation happens, so every part of the frontend agrees on it.

Element types numpy lacks (bfloat16, float8*, int4, uint4, float4, ...) are named the way
onnx itself represents them in numpy: the ``ml_dtypes`` names ("bfloat16", "float8_e4m3fn",
"int4", "float4_e2m1fn", ...).  onnx imports ml_dtypes, so ``np.dtype(name)`` works for
every name produced here, and ``numpy_helper.to_array`` returns arrays of exactly that
dtype (int4/uint4 hold one value per byte, unpacked).  STRING tensors are "object" arrays.
"""
from __future__ import annotations

import functools
from typing import Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

Dim = Union[int, str, None]          # a known size, a dim_param name, or unknown


@functools.lru_cache(maxsize=None)
def dtype_name(elem_type: int) -> str | None:
    """The numpy dtype name of an ONNX element type, or None when it is UNDEFINED."""
    if not elem_type:
        return None
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        # an element type newer than this onnx's numpy mapping: keep its ONNX name
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def elem_type_of(array: np.ndarray) -> int:
    """The ONNX element type of a numpy array (inverse of :func:`dtype_name`)."""
    return helper.np_dtype_to_tensor_dtype(array.dtype)


def type_kind(tp: onnx.TypeProto | None) -> str | None:
    """"tensor", "sequence", "optional", "map", "sparse_tensor" — or None if untyped."""
    if tp is None:
        return None
    kind = tp.WhichOneof("value")
    return kind[: -len("_type")] if kind else None


def dims(tp: onnx.TypeProto | None) -> tuple[Dim, ...] | None:
    """A tensor type's shape: ints for known dims, the dim_param (or None) for the others.

    None means the rank itself is unknown (no shape recorded).
    """
    if type_kind(tp) != "tensor" or not tp.tensor_type.HasField("shape"):
        return None
    out: list[Dim] = []
    for d in tp.tensor_type.shape.dim:
        which = d.WhichOneof("value")
        out.append(int(d.dim_value) if which == "dim_value" else (d.dim_param or None))
    return tuple(out)


def static_shape(tp: onnx.TypeProto | None) -> tuple[int, ...] | None:
    """The shape when every dim is a known int, else None."""
    shape = dims(tp)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return shape


def tensor_dtype(tp: onnx.TypeProto | None) -> str | None:
    """The numpy dtype name of a tensor type, None if not a tensor or element type unknown."""
    if type_kind(tp) != "tensor":
        return None
    return dtype_name(tp.tensor_type.elem_type)


def value_info(name: str, elem_type: int, shape) -> onnx.ValueInfoProto:
    """A tensor ValueInfoProto (thin wrapper so callers need not import onnx.helper)."""
    return helper.make_tensor_value_info(name, elem_type, shape)


def to_array(tensor: onnx.TensorProto) -> np.ndarray:
    """A TensorProto's data as numpy (external data must already be loaded)."""
    return numpy_helper.to_array(tensor)


def sparse_to_array(sparse: onnx.SparseTensorProto) -> np.ndarray:
    """A SparseTensorProto as a dense numpy array.

    ONNX stores either linear indices (shape [NNZ]) or coordinates (shape [NNZ, rank]);
    numpy_helper has no converter for sparse tensors, so this is the small bit we add.
    """
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    shape = tuple(int(d) for d in sparse.dims)
    dense = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=values.dtype)
    if indices.ndim == 2:
        indices = np.ravel_multi_index(tuple(indices.T), shape) if indices.size else indices.reshape(0)
    dense[indices.reshape(-1)] = values.reshape(-1)
    return dense.reshape(shape)


def constant_arrays(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """All initializers (dense and sparse) of one graph body, by name."""
    consts = {t.name: to_array(t) for t in graph.initializer}
    for sp in graph.sparse_initializer:
        consts[sp.values.name] = sparse_to_array(sp)
    return consts


def nbytes_of(dtype: str | None, shape: tuple[int, ...]) -> int:
    """Bytes of a tensor of this type (0 when the dtype is unknown)."""
    if dtype is None:
        return 0
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        itemsize = 1
    return int(np.prod(shape, dtype=np.int64)) * itemsize


def normalize_domain(domain: str) -> str:
    """ONNX spells the default domain both "" and "ai.onnx"; mlc uses ""."""
    return "" if domain in ("", "ai.onnx") else domain
