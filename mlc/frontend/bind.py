"""Binding the model's symbolic input dims to the sizes the user compiles for.

mlc generates code for one concrete shape per input.  Exported models usually leave some
dims symbolic ("batch", "sequence") or unnamed; the user supplies full shapes with
``input_shapes={name: shape}``.  A dim_param names the same size everywhere in a model
(ONNX semantics), so binding "batch" through one input also binds it in the others.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import onnx

from ..errors import ShapeError, UnsupportedError
from .onnx_types import Dim, dims, type_kind, value_info


def bind_input_shapes(inputs: list[onnx.ValueInfoProto], input_shapes: Mapping | None,
                      constant_names: Iterable[str] = ()) -> tuple[list[onnx.ValueInfoProto], dict[str, int]]:
    """Run-time inputs with every dim concrete, and the dim_param values that were bound.

    Raises ShapeError for input_shapes entries that name no input, have the wrong rank or
    contradict a fixed dim, and for symbolic dims left without a value (listing them all).
    """
    given = {name: _as_shape(name, shape) for name, shape in dict(input_shapes or {}).items()}
    _check_names(given, [vi.name for vi in inputs], set(constant_names))
    for vi in inputs:
        _check_is_tensor(vi)
    params = _param_values(inputs, given)
    bound, unbound = [], []
    for vi in inputs:
        shape = _resolve(vi, given.get(vi.name), params, unbound)
        bound.append(value_info(vi.name, vi.type.tensor_type.elem_type, shape))
    if unbound:
        raise ShapeError(_unbound_message(inputs, unbound, params))
    return bound, params


def _as_shape(name: str, shape) -> tuple[int, ...]:
    """A user's shape as a tuple of non-negative ints (numpy ints accepted)."""
    try:
        out = tuple(int(d) for d in shape)
        ok = all(d >= 0 and float(d) == float(s) for d, s in zip(out, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ShapeError(f"input_shapes[{name!r}] = {shape!r} is not a shape: give a tuple of "
                         "non-negative ints, the full shape of the input")
    return out


def _check_names(given: dict, input_names: list[str], constant_names: set[str]) -> None:
    """Every input_shapes key must name a run-time input."""
    for name in given:
        if name in input_names:
            continue
        if name in constant_names:
            raise ShapeError(f"input_shapes names {name!r}, which is an initializer (a constant "
                             "weight), not a run-time input; its shape is fixed by its data")
        known = ", ".join(repr(n) for n in input_names) or "none"
        raise ShapeError(f"input_shapes names {name!r}, which is not an input of the model "
                         f"(its run-time inputs are: {known})")


def _check_is_tensor(vi: onnx.ValueInfoProto) -> None:
    kind = type_kind(vi.type)
    if kind != "tensor":
        reason = f"graph input of {kind or 'unknown'} type (mlc supports tensor inputs only)"
        raise UnsupportedError(f"input {vi.name!r} is a {kind or 'value of unknown type'}, not a "
                               "tensor; mlc supports tensor inputs only",
                               [("<graph input>", 0, vi.name, reason)])
    if not vi.type.tensor_type.elem_type:
        raise ShapeError(f"input {vi.name!r} has no element type in the model")


def _param_values(inputs: list[onnx.ValueInfoProto], given: dict[str, tuple]) -> dict[str, int]:
    """dim_param -> size, from the explicitly given shapes; conflicting bindings are errors."""
    params: dict[str, int] = {}
    where: dict[str, str] = {}
    for vi in inputs:
        shape, declared = given.get(vi.name), dims(vi.type)
        if shape is None or declared is None or len(declared) != len(shape):
            continue          # rank errors are reported by _resolve with the input's name
        for i, (d, size) in enumerate(zip(declared, shape)):
            if not isinstance(d, str):
                continue
            if d in params and params[d] != size:
                raise ShapeError(f"input_shapes gives dim {d!r} two sizes: {params[d]} ({where[d]}) "
                                 f"and {size} (input {vi.name!r} dim {i}); in ONNX one dim_param "
                                 "names one size")
            params[d], where[d] = size, f"input {vi.name!r} dim {i}"
    return params


def _resolve(vi: onnx.ValueInfoProto, shape: tuple | None, params: dict[str, int],
             unbound: list) -> tuple | None:
    """The concrete shape of one input, appending (name, dim index, dim_param) when unknown."""
    declared = dims(vi.type)
    if shape is not None:
        _check_compatible(vi.name, declared, shape)
        return shape
    if declared is None:
        unbound.append((vi.name, None, None))
        return None
    out: list[int | None] = []
    for i, d in enumerate(declared):
        if isinstance(d, int):
            out.append(d)
        elif d is not None and d in params:
            out.append(params[d])
        else:
            unbound.append((vi.name, i, d))
            out.append(None)
    return tuple(out)


def _check_compatible(name: str, declared: tuple[Dim, ...] | None, shape: tuple[int, ...]) -> None:
    """A given shape must have the model's rank and agree with its fixed dims."""
    if declared is None:
        return
    text = _format_dims(declared)
    if len(declared) != len(shape):
        raise ShapeError(f"input_shapes[{name!r}] = {shape} has rank {len(shape)}, but input "
                         f"{name!r} has rank {len(declared)} (shape {text})")
    for i, (d, size) in enumerate(zip(declared, shape)):
        if isinstance(d, int) and d != size:
            raise ShapeError(f"input_shapes[{name!r}] = {shape} contradicts the model: dim {i} of "
                             f"input {name!r} is fixed to {d} (shape {text})")


def _format_dims(declared) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in declared) + "]"


def _unbound_message(inputs, unbound, params) -> str:
    """List every unbound dim and show the call that would bind them."""
    parts = []
    for name, index, param in unbound:
        if index is None:
            parts.append(f"input {name!r} (shape not recorded in the model)")
        else:
            parts.append(f"input {name!r} dim {index} ({repr(param) if param else 'unnamed'})")
    example = {}
    for vi in inputs:
        declared = dims(vi.type)
        if declared is not None and any(n == vi.name for n, _, _ in unbound):
            example[vi.name] = tuple(d if isinstance(d, int) else params.get(d, 1) for d in declared)
    hint = f", e.g. input_shapes={example!r}" if example else ""
    return (f"the model has {len(unbound)} symbolic input dim(s) with no value: {'; '.join(parts)}. "
            f"mlc compiles for concrete shapes: pass input_shapes= with the full shape of each "
            f"such input{hint}")
