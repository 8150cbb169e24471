"""Reduce*, ArgMax/ArgMin, LpPool/GlobalLpPool and CumSum against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_matches_ort, single_op_model

import mlc
from mlc.errors import UnsupportedError

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


def _axes_opsets(op):
    """(opset with axes as an attribute, opset with axes as an input)."""
    return (11, 13) if op == "ReduceSum" else (13, 18)


def _data(op, shape, rng, dtype=np.float32):
    x = rng.standard_normal(shape)
    if op == "ReduceLogSum":
        x = np.abs(x) + 0.1          # log of a positive sum
    elif op == "ReduceProd":
        x = 1 + 0.05 * x             # a product that neither overflows nor vanishes
    return x.astype(dtype)


def reduce_model(op, x, axes, keepdims, opset, as_input, noop=None):
    attrs = {"keepdims": keepdims}
    inits = {}
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    if axes is not None:
        if as_input:
            inits["axes"] = np.array(axes, np.int64)
        else:
            attrs["axes"] = list(axes)
    return single_op_model(op, {"x": x}, {"y": (x.dtype, None)}, attrs=attrs, initializers=inits, opset=opset)


CASES = [
    ((3, 17, 5), [1], 1),
    ((3, 17, 5), [0, -1], 0),       # non-adjacent axes, one negative
    ((3, 17, 5), [-3, -2], 1),
    ((2, 1000), [-1], 0),
    ((1, 128, 256), [-2, -1], 0),
    ((7,), [0], 0),
    ((3, 17, 5), None, 1),          # no axes: reduce everything
]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("shape,axes,keepdims", CASES)
def test_reduce_axes_input(op, shape, axes, keepdims, rng):
    x = _data(op, shape, rng)
    model = reduce_model(op, x, axes, keepdims, _axes_opsets(op)[1], as_input=True)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("shape,axes,keepdims", [CASES[1], CASES[6]])
def test_reduce_axes_attribute(op, shape, axes, keepdims, rng):
    x = _data(op, shape, rng)
    model = reduce_model(op, x, axes, keepdims, _axes_opsets(op)[0], as_input=False)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_noop_with_empty_axes(op, rng):
    # no axes + noop: the per-element transform (|x|, x^2, log x, ...), as onnxruntime does
    x = _data(op, (3, 17, 5), rng)
    model = reduce_model(op, x, None, 1, _axes_opsets(op)[1], as_input=True, noop=1)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_empty_axes_input_reduces_all(op, rng):
    x = _data(op, (4, 6), rng)
    model = reduce_model(op, x, [], 0, _axes_opsets(op)[1], as_input=True, noop=0)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("op,dtype", [(op, dt) for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                                          "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                                                          "ReduceSumSquare"]
                                      for dt in ("int32", "int64")]
                         + [("ReduceMax", "int8"), ("ReduceMin", "uint8")])
def test_reduce_integers(op, dtype, rng):
    lo = 1 if op in ("ReduceLogSum",) or dtype == "uint8" else -9
    hi = 3 if op == "ReduceProd" else 10
    x = rng.integers(lo, hi, size=(3, 17, 5)).astype(dtype)
    axes = [1] if op != "ReduceProd" else [2]
    model = reduce_model(op, x, axes, 0, _axes_opsets(op)[1], as_input=True)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceLogSumExp", "ReduceL2"])
def test_reduce_float64_and_float16(op, rng):
    x = _data(op, (5, 33), rng, np.float64)
    assert_matches_ort(reduce_model(op, x, [1], 0, _axes_opsets(op)[1], True), {"x": x})
    x16 = _data(op, (5, 33), rng, np.float16)
    assert_matches_ort(reduce_model(op, x16, [1], 0, _axes_opsets(op)[1], True), {"x": x16},
                       rtol=2e-3, atol=2e-3)


def test_reduce_log_sum_exp_is_stable(rng):
    x = (rng.standard_normal((4, 300)) * 100).astype(np.float32)
    x[1] += 500.0
    x[2] -= 500.0
    x[3, :] = -1e30
    x[3, 7] = 3.0
    for axes in ([1], [0]):
        assert_matches_ort(reduce_model("ReduceLogSumExp", x, axes, 1, 18, True), {"x": x})


def test_reduce_log_sum_exp_integer_unsupported():
    x = np.ones((3, 4), np.int32)
    with pytest.raises(UnsupportedError):
        mlc.compile(reduce_model("ReduceLogSumExp", x, [1], 1, 18, True))


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes,shape", [([1], (2, 0, 4)), ([2], (2, 0, 4)), ([0, 1], (0, 3))])
def test_reduce_empty_input(op, axes, shape):
    """An empty reduced axis gives the reduction of the empty set (0 for Sum, -inf for Max,
    ...); an empty kept axis an empty output."""
    x = np.zeros(shape, np.float32)
    assert_matches_ort(reduce_model(op, x, axes, 1, 18, True), {"x": x})


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), (None, 0)])
def test_reduce_max_min_bool(op, axes, keepdims, rng):
    x = rng.random((4, 3, 5)) < 0.3
    assert_matches_ort(reduce_model(op, x, axes, keepdims, 20, True), {"x": x})


def test_reduce_axes_as_graph_input(rng):
    # axes decide the output shape: mlc specialises on their value at run time
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    model = single_op_model("ReduceSum", {"x": x, "axes": np.array([1], np.int64)}, {"y": (np.float32, None)},
                            attrs={"keepdims": 0}, opset=13)
    for axes in ([1], [-1]):
        assert_matches_ort(model, {"x": x, "axes": np.array(axes, np.int64)})


# --------------------------------------------------------------------------------------
# ArgMax / ArgMin
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("shape,axis", [((3, 17, 5), 0), ((3, 17, 5), 1), ((3, 17, 5), -1), ((2, 1000), -1),
                                        ((2, 1000), 0), ((7,), 0), ((1, 128, 256), -2)])
@pytest.mark.parametrize("keepdims,last", [(1, 0), (0, 1)])
def test_arg(op, shape, axis, keepdims, last, rng):
    # small integers as floats: many ties, so first/last index matters
    x = rng.integers(-4, 5, size=shape).astype(np.float32)
    model = single_op_model(op, {"x": x}, {"y": (np.int64, None)},
                            attrs={"axis": axis, "keepdims": keepdims, "select_last_index": last}, opset=13)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "float64"])
def test_arg_dtypes(op, dtype, rng):
    x = (rng.standard_normal((4, 9, 6)) * 100).astype(dtype)
    model = single_op_model(op, {"x": x}, {"y": (np.int64, None)}, attrs={"axis": 1}, opset=11)
    assert_matches_ort(model, {"x": x})


# --------------------------------------------------------------------------------------
# LpPool / GlobalLpPool
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("shape,attrs,opset", [
    ((2, 3, 11, 9), {"kernel_shape": [3, 3]}, 11),
    ((2, 3, 11, 9), {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]}, 11),
    ((1, 4, 17), {"kernel_shape": [4], "strides": [3]}, 11),
    ((1, 2, 10, 10), {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}, 11),
    ((1, 2, 10, 10), {"kernel_shape": [2, 2], "strides": [3, 3], "ceil_mode": 1}, 18),
    ((1, 2, 12, 11), {"kernel_shape": [2, 3], "dilations": [2, 1], "pads": [1, 1, 1, 1]}, 18),
])
def test_lp_pool(p, shape, attrs, opset, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    model = single_op_model("LpPool", {"x": x}, {"y": (np.float32, None)}, attrs={**attrs, "p": p}, opset=opset)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 11, 9), (1, 5, 17), (1, 2, 3, 4, 5)])
def test_global_lp_pool(p, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    model = single_op_model("GlobalLpPool", {"x": x}, {"y": (np.float32, None)}, attrs={"p": p}, opset=2)
    assert_matches_ort(model, {"x": x})


# --------------------------------------------------------------------------------------
# CumSum
# --------------------------------------------------------------------------------------

def cumsum_model(x, axis, exclusive, reverse, axis_dtype=np.int64):
    return single_op_model("CumSum", {"x": x}, {"y": (x.dtype, None)},
                           attrs={"exclusive": exclusive, "reverse": reverse},
                           initializers={"axis": np.array(axis, axis_dtype)}, opset=14)


@pytest.mark.parametrize("shape,axis", [((3, 17, 5), a) for a in (-3, -2, -1, 1)]
                         + [((2, 1000), 1), ((2, 1000), -2), ((7,), 0)])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum(shape, axis, exclusive, reverse, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    assert_matches_ort(cumsum_model(x, axis, exclusive, reverse), {"x": x})


@pytest.mark.parametrize("dtype", ["int32", "int64", "float64"])
def test_cumsum_dtypes(dtype, rng):
    x = rng.integers(-50, 50, size=(4, 37)).astype(dtype)
    assert_matches_ort(cumsum_model(x, 1, 0, 0, np.int32), {"x": x})
    assert_matches_ort(cumsum_model(x, 0, 1, 1), {"x": x})


def test_cumsum_large_parallel(rng):
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    assert_matches_ort(cumsum_model(x, 1, 0, 0), {"x": x}, num_threads=2)
    assert_matches_ort(cumsum_model(x, 0, 1, 0), {"x": x}, num_threads=2)
