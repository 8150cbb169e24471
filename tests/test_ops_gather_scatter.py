"""Gather / scatter ops against onnxruntime: Gather, GatherElements, GatherND, ScatterND,
ScatterElements, OneHot."""
from __future__ import annotations

import numpy as np
import pytest

import mlc
from conftest import assert_matches_ort, single_op_model, typed

R = np.random.default_rng(11)


def rand(shape, dtype="float32"):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.asarray(R.standard_normal(shape)).astype(dtype)
    if dtype == np.bool_:
        return np.asarray(R.random(shape) < 0.5)
    info = np.iinfo(dtype)
    return np.asarray(R.integers(max(info.min, -50), min(info.max, 50), size=shape, endpoint=True)).astype(dtype)


def run(op, inputs, attrs=None, inits=None, opset=18, order=None, **kw):
    model = typed(single_op_model(op, inputs, {"y": None}, attrs=attrs, initializers=inits, opset=opset,
                                  input_order=order))
    return assert_matches_ort(model, inputs, **kw)


def indices(shape, n, dtype="int64", negative=True):
    lo = -n if negative else 0
    return np.asarray(R.integers(lo, n, size=shape)).astype(dtype)


# --- Gather ------------------------------------------------------------------------------

@pytest.mark.parametrize("ds,axis,ishape", [
    ((7, 5), 0, (3,)), ((7, 5), 1, (4, 2)), ((7, 5), -1, ()), ((3, 11, 4), 1, (2, 3)),
    ((3, 11, 4), -3, (5,)), ((13,), 0, (2, 2, 2)), ((2, 3, 5, 17), 3, (9,)), ((6,), 0, ()),
])
@pytest.mark.parametrize("idtype", ["int64", "int32"])
def test_gather(ds, axis, ishape, idtype):
    x = rand(ds)
    i = indices(ishape, ds[axis], idtype)
    run("Gather", {"x": x, "i": i}, {"axis": axis})


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool", "float16", "float64"])
def test_gather_dtypes(dtype):
    x = rand((9, 4), dtype)
    run("Gather", {"x": x, "i": indices((5,), 9)}, {"axis": 0})


def test_gather_constant_indices():
    x = rand((4, 10))
    run("Gather", {"x": x}, {"axis": 1}, inits={"i": np.array([[9, -1], [0, 3]], np.int64)})
    run("Gather", {"x": x}, {"axis": 1}, inits={"i": np.array(-3, np.int64)})


def test_gather_out_of_range_is_clamped_not_crash():
    x = rand((5, 3))
    i = np.array([100, -100, 2], np.int64)
    model = typed(single_op_model("Gather", {"x": x, "i": i}, {"y": None}, {"axis": 0}))
    got = mlc.compile(model).run({"x": x, "i": i})["y"]
    np.testing.assert_array_equal(got, x[[4, 0, 2]])


# --- GatherElements ----------------------------------------------------------------------

@pytest.mark.parametrize("ds,axis,ishape", [
    ((4, 5), 0, (3, 5)), ((4, 5), 1, (4, 9)), ((4, 5), -1, (2, 3)), ((3, 7, 6), 1, (3, 2, 6)),
    ((3, 7, 6), -3, (5, 7, 1)), ((11,), 0, (20,)),
])
@pytest.mark.parametrize("idtype", ["int64", "int32"])
def test_gather_elements(ds, axis, ishape, idtype):
    x = rand(ds)
    run("GatherElements", {"x": x, "i": indices(ishape, ds[axis], idtype)}, {"axis": axis})


# --- GatherND ----------------------------------------------------------------------------

@pytest.mark.parametrize("ds,ishape,b", [
    ((4, 5), (3, 2), 0), ((4, 5), (3, 1), 0), ((4, 5, 6), (2, 3, 2), 0), ((4, 5, 6), (2, 3), 0),
    ((2, 5, 6), (2, 4, 1), 1), ((2, 3, 5, 6), (2, 3, 2, 2), 2), ((2, 3, 5, 6), (2, 1), 1),
    ((7,), (5, 1), 0),
])
def test_gather_nd(ds, ishape, b):
    x = rand(ds)
    k = ishape[-1]
    i = np.stack([indices(ishape[:-1], ds[b + j]) for j in range(k)], axis=-1)
    run("GatherND", {"x": x, "i": i}, {"batch_dims": b}, opset=13)


# --- ScatterND ---------------------------------------------------------------------------

def _unique_index_tuples(n, dims):
    """``n`` distinct index tuples into ``dims`` (some negative)."""
    flat = R.choice(int(np.prod(dims)), size=n, replace=False)
    tup = np.stack(np.unravel_index(flat, dims), axis=-1).astype(np.int64)
    neg = R.random(tup.shape) < 0.3
    return np.where(neg, tup - np.array(dims), tup)


@pytest.mark.parametrize("ds,k,n", [((8,), 1, 4), ((5, 6), 1, 3), ((5, 6), 2, 7), ((4, 3, 7), 2, 5),
                                    ((4, 3, 7), 3, 9), ((4, 3, 7), 1, 2)])
def test_scatter_nd(ds, k, n):
    x = rand(ds)
    i = _unique_index_tuples(n, ds[:k])
    upd = rand((n,) + ds[k:])
    run("ScatterND", {"x": x, "i": i, "u": upd}, opset=13)


def test_scatter_nd_batched_indices():
    x = rand((6, 5))
    i = _unique_index_tuples(6, (6,)).reshape(2, 3, 1)
    run("ScatterND", {"x": x, "i": i, "u": rand((2, 3, 5))}, opset=13)


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_scatter_nd_reduction_duplicates(reduction, dtype):
    x = rand((6, 4), dtype)
    i = np.array([[1], [3], [1], [-5], [0], [3]], np.int64)     # duplicates: 1 three times, 3 twice
    upd = rand((6, 4), dtype)
    run("ScatterND", {"x": x, "i": i, "u": upd}, {"reduction": reduction}, opset=18)


def test_scatter_nd_opset16_add():
    x = rand((5, 3, 2), "int64")
    i = np.array([[0, 1], [4, 2], [0, 1]], np.int64)
    run("ScatterND", {"x": x, "i": i, "u": rand((3, 2), "int64")}, {"reduction": "add"}, opset=16)


def test_scatter_nd_constant_indices_and_updates():
    x = rand((9,))
    run("ScatterND", {"x": x}, inits={"i": np.array([[2], [-1]], np.int64), "u": np.array([5., 6.], np.float32)},
        opset=13)


# --- ScatterElements ---------------------------------------------------------------------

@pytest.mark.parametrize("ds,axis,ishape", [((5, 6), 0, (3, 6)), ((5, 6), 1, (5, 2)), ((5, 6), -1, (2, 4)),
                                            ((3, 4, 7), 1, (3, 4, 5)), ((10,), 0, (4,))])
def test_scatter_elements(ds, axis, ishape):
    x = rand(ds)
    # distinct positions along the axis for every index row (no duplicates for reduction none)
    perm = np.argsort(R.random(ishape[:axis % len(ds)] + (ds[axis],) + ishape[axis % len(ds) + 1:]), axis=axis)
    i = np.take(perm, np.arange(ishape[axis]), axis=axis).astype(np.int64)
    i = np.where(R.random(i.shape) < 0.3, i - ds[axis], i)
    run("ScatterElements", {"x": x, "i": i, "u": rand(ishape)}, {"axis": axis}, opset=13)


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatter_elements_reduction(reduction):
    x = rand((6, 5))
    i = np.array([[0, 1, 1, 4, -1], [2, 2, 2, 0, 3]], np.int64).T.copy()   # (5, 2), duplicates
    run("ScatterElements", {"x": x, "i": i, "u": rand((5, 2))}, {"axis": 1, "reduction": reduction}, opset=18)


def test_scatter_elements_int32_indices_int_data():
    x = rand((6, 3), "int64")
    i = np.array([[5, 0, 2], [1, -2, 0]], np.int32)
    run("ScatterElements", {"x": x, "i": i, "u": rand((2, 3), "int64")}, {"axis": 0}, opset=13)


# --- OneHot ------------------------------------------------------------------------------

@pytest.mark.parametrize("ishape,depth,axis", [((5,), 7, -1), ((3, 4), 6, 0), ((3, 4), 6, 1), ((2, 3, 2), 5, -2),
                                               ((1,), 4, 0)])
def test_one_hot(ishape, depth, axis):
    i = np.asarray(R.integers(-depth - 2, depth + 2, size=ishape)).astype(np.int64)
    run("OneHot", {"i": i}, {"axis": axis},
        inits={"depth": np.array(depth, np.int64), "values": np.array([0.5, 3.0], np.float32)}, opset=11)


@pytest.mark.parametrize("itype,dtype,vtype", [("float32", "float32", "float32"), ("int32", "float32", "float32"),
                                               ("int64", "int32", "float32"), ("int64", "int64", "int64")])
def test_one_hot_dtypes(itype, dtype, vtype):
    i = np.array([[0, 2, -1], [3, 1, 7]], itype)
    run("OneHot", {"i": i}, inits={"depth": np.array(4, dtype), "values": np.array([-1, 9], vtype)}, opset=11)


def test_one_hot_runtime_values():
    i = np.array([1, 0, 3], np.int64)
    v = np.array([2, 5], np.int64)
    model = typed(single_op_model("OneHot", {"i": i, "v": v}, {"y": None},
                                  initializers={"depth": np.array(4, np.int64)}, input_order=["i", "depth", "v"],
                                  opset=11))
    assert_matches_ort(model, {"i": i, "v": v})


def test_larger_shapes_two_threads():
    kw = {"num_threads": 2}
    x = rand((500, 64))
    run("Gather", {"x": x, "i": indices((37, 9), 500)}, {"axis": 0}, **kw)
    run("GatherElements", {"x": rand((60, 300)), "i": indices((60, 301), 300)}, {"axis": 1}, **kw)
    run("ScatterND", {"x": rand((300, 70)), "i": _unique_index_tuples(100, (300,)), "u": rand((100, 70))},
        opset=13, **kw)
    i = np.asarray(R.integers(-300, 300, size=(40, 70))).astype(np.int64)
    run("ScatterElements", {"x": rand((300, 70)), "i": i, "u": rand((40, 70))}, {"axis": 0, "reduction": "add"},
        opset=18, **kw)
