"""TopK against onnxruntime: values and int64 indices, ties broken by the lower index."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_matches_ort, ort_run, single_op_model

import mlc
from mlc.errors import UnsupportedError


def topk_model(x, k, opset=11, **attrs):
    return single_op_model("TopK", {"x": x}, {"values": (x.dtype, None), "indices": (np.int64, None)},
                           attrs=attrs, initializers={"k": np.array([k], np.int64)}, opset=opset)


CASES = [((2, 1000), -1, 5), ((2, 1000), 1, 1000), ((2, 1000), -1, 1), ((2, 1000), 0, 2),
         ((3, 17, 5), 1, 7), ((3, 17, 5), -3, 3), ((3, 17, 5), 2, 5), ((11,), 0, 11), ((11,), -1, 4),
         ((1, 128, 256), -1, 10), ((4, 300), 1, 150)]


@pytest.mark.parametrize("shape,axis,k", CASES)
@pytest.mark.parametrize("largest", [1, 0])
def test_topk_float(shape, axis, k, largest, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    assert_matches_ort(topk_model(x, k, axis=axis, largest=largest), {"x": x})


@pytest.mark.parametrize("shape,axis,k", [((3, 17, 5), 1, 7), ((2, 1000), -1, 64), ((2, 1000), -1, 1000),
                                          ((5, 40), 0, 5)])
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_topk_integers_with_ties(shape, axis, k, largest, dtype, rng):
    # few distinct values: ties everywhere, the lower index must come first
    x = rng.integers(-3, 4, size=shape).astype(dtype)
    assert_matches_ort(topk_model(x, k, axis=axis, largest=largest), {"x": x})


def test_topk_float_ties_and_extremes():
    x = np.array([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, -np.inf, np.inf, 9, -0.0, 0.0]], np.float32)
    for k in (1, 3, 5, 16):
        for largest in (0, 1):
            assert_matches_ort(topk_model(x, k, largest=largest), {"x": x})


@pytest.mark.parametrize("data", ["ascending", "descending", "constant"])
def test_topk_adversarial_orders(data):
    n = 777
    x = {"ascending": np.arange(n), "descending": np.arange(n)[::-1], "constant": np.zeros(n)}[data]
    x = np.stack([x, x[::-1]]).astype(np.float32)
    for k in (1, 13, n):
        for largest in (0, 1):
            assert_matches_ort(topk_model(x, k, largest=largest), {"x": x})


@pytest.mark.parametrize("opset", [1, 10, 11])
def test_topk_opsets(opset, rng):
    x = rng.standard_normal((3, 50)).astype(np.float32)
    if opset < 10:
        model = single_op_model("TopK", {"x": x}, {"values": (np.float32, None), "indices": (np.int64, None)},
                                attrs={"k": 6}, opset=opset)
    else:
        model = topk_model(x, 6, opset=opset)
    assert_matches_ort(model, {"x": x})


def test_topk_unsorted_same_set(rng):
    # sorted=0 leaves the order unspecified: compare as sets of (index, value)
    x = rng.standard_normal((4, 200)).astype(np.float32)
    model = topk_model(x, 9, sorted=0)
    ref_v, ref_i = ort_run(model, {"x": x})
    got = mlc.compile(model).run({"x": x})
    for r in range(4):
        assert sorted(zip(got["indices"][r], got["values"][r])) == sorted(zip(ref_i[r], ref_v[r]))


def test_topk_parallel_rows(rng):
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    assert_matches_ort(topk_model(x, 5), {"x": x}, num_threads=2)
    xt = np.ascontiguousarray(x.T)
    assert_matches_ort(topk_model(xt, 5, axis=0), {"x": xt}, num_threads=2)


def test_topk_float64(rng):
    x = rng.standard_normal((3, 40)).astype(np.float64)
    assert_matches_ort(topk_model(x, 7), {"x": x})


def test_topk_k_zero_unsupported(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    with pytest.raises(UnsupportedError):
        mlc.compile(topk_model(x, 0))


def test_topk_k_as_graph_input(rng):
    # k decides the output shape: mlc specialises on its value at run time
    x = rng.standard_normal((3, 50)).astype(np.float32)
    model = single_op_model("TopK", {"x": x, "k": np.array([2], np.int64)},
                            {"values": (np.float32, None), "indices": (np.int64, None)}, opset=11)
    for k in (2, 7):
        assert_matches_ort(model, {"x": x, "k": np.array([k], np.int64)})
