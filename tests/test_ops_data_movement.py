"""Data movement ops against onnxruntime: Transpose, Concat, Split, Slice, Expand, Tile, Pad,
DepthToSpace, SpaceToDepth, Trilu, Where."""
from __future__ import annotations

import numpy as np
import pytest

import mlc
from conftest import assert_matches_ort, ort_run, single_op_model, typed

R = np.random.default_rng(7)


def rand(shape, dtype="float32"):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return R.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return np.asarray(R.random(shape) < 0.5)
    info = np.iinfo(dtype)
    return R.integers(max(info.min, -100), min(info.max, 100), size=shape, endpoint=True).astype(dtype)


def model_of(op, inputs, attrs=None, inits=None, opset=17, outputs=None, order=None):
    outputs = outputs or {"y": None}
    return typed(single_op_model(op, inputs, outputs, attrs=attrs, initializers=inits, opset=opset,
                                 input_order=order))


def run(op, inputs, attrs=None, inits=None, opset=17, outputs=None, order=None, feeds=None, **kw):
    model = model_of(op, inputs, attrs, inits, opset, outputs, order)
    return assert_matches_ort(model, feeds if feeds is not None else inputs, **kw)


# --- Transpose ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape,perm", [
    ((3, 5), None), ((3, 5), [1, 0]), ((2, 3, 17), [2, 0, 1]), ((2, 3, 5, 7), [0, 2, 3, 1]),
    ((2, 3, 5, 7), [3, 1, 0, 2]), ((1, 19, 1, 33), None), ((4,), None), ((2, 3, 1, 5, 2), [4, 2, 0, 3, 1]),
])
def test_transpose(shape, perm):
    x = rand(shape)
    run("Transpose", {"x": x}, {"perm": perm} if perm is not None else None)


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int64", "float64", "bool", "float16"])
def test_transpose_dtypes(dtype):
    run("Transpose", {"x": rand((3, 4, 5), dtype)}, {"perm": [2, 0, 1]})


# --- Concat ------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes,axis", [
    ([(3, 5), (4, 5)], 0), ([(3, 5), (3, 1), (3, 17)], 1), ([(3, 5), (3, 1), (3, 17)], -1),
    ([(2, 3, 5), (2, 7, 5), (2, 1, 5), (2, 2, 5)], -2), ([(7,), (1,), (9,)], 0),
    ([(1, 2, 3, 4), (1, 2, 3, 4)], 3), ([(2, 3), (0, 3), (5, 3)], 0), ([(2, 3)], 1),
])
def test_concat(shapes, axis):
    inputs = {f"x{k}": rand(s) for k, s in enumerate(shapes)}
    run("Concat", inputs, {"axis": axis})


def test_concat_with_constant_and_int():
    a = rand((3, 4), "int32")
    b = rand((3, 2), "int32")
    run("Concat", {"a": a}, {"axis": 1}, inits={"b": b}, order=["b", "a"])


# --- Split -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis,split,n", [
    ((10, 3), 0, [3, 7], 2), ((4, 11), 1, [2, 2, 7], 3), ((4, 11), -1, [1, 9, 1], 3),
    ((2, 3, 13), 2, None, 1), ((6, 5), 0, None, 3), ((5, 2, 7), 2, [7], 1),
])
def test_split_opset13(shape, axis, split, n):
    x = rand(shape)
    outputs = {f"y{k}": None for k in range(n)}
    inits = {"split": np.array(split, np.int64)} if split is not None else None
    run("Split", {"x": x}, {"axis": axis}, inits=inits, opset=13, outputs=outputs)


@pytest.mark.parametrize("shape,axis,n", [((10, 3), 0, 3), ((4, 11), 1, 4), ((2, 7), -1, 2), ((9,), 0, 3)])
def test_split_opset18_num_outputs(shape, axis, n):
    x = rand(shape)
    outputs = {f"y{k}": None for k in range(n)}
    run("Split", {"x": x}, {"axis": axis, "num_outputs": n}, opset=18, outputs=outputs)


def test_split_opset11_attr():
    x = rand((3, 10), "int64")
    run("Split", {"x": x}, {"axis": 1, "split": [4, 1, 5]}, opset=11,
        outputs={"a": None, "b": None, "c": None})


# --- Slice -------------------------------------------------------------------------------

BIG = np.iinfo(np.int64).max


@pytest.mark.parametrize("shape,starts,ends,axes,steps", [
    ((10, 7), [2], [8], [0], None),
    ((10, 7), [1, -5], [-1, 1000], None, None),
    ((10, 7), [-1], [-BIG], [1], [-1]),
    ((10, 7), [8, 6], [1, -BIG], [0, 1], [-3, -2]),
    ((5, 13, 3), [0, 1], [BIG, BIG], [-2, -1], [4, 1]),
    ((5, 13, 3), [-100], [100], [1], [3]),
    ((5, 13, 3), [20], [30], [1], None),
    ((5, 13, 3), [3], [1], [0], [1]),
    ((5, 13, 3), [BIG], [-BIG], [1], [-5]),
    ((17,), [3], [-2], None, [2]),
])
def test_slice(shape, starts, ends, axes, steps):
    x = rand(shape)
    inits = {"starts": np.array(starts, np.int64), "ends": np.array(ends, np.int64)}
    if axes is not None or steps is not None:
        inits["axes"] = np.array(axes if axes is not None else list(range(len(starts))), np.int64)
    if steps is not None:
        inits["steps"] = np.array(steps, np.int64)
    run("Slice", {"x": x}, inits=inits)


def test_slice_int32_params():
    x = rand((6, 8), "uint8")
    inits = {"starts": np.array([1, 6], np.int32), "ends": np.array([5, 0], np.int32),
             "axes": np.array([0, 1], np.int32), "steps": np.array([2, -2], np.int32)}
    run("Slice", {"x": x}, inits=inits)


# --- Expand, Tile --------------------------------------------------------------------------

@pytest.mark.parametrize("shape,to", [
    ((3, 1), (3, 5)), ((1,), (2, 3, 4)), ((4, 1, 6), (5, 4, 7, 6)), ((3, 5), (1, 1)),
    ((3, 1), (2, 1, 7)), ((), (3, 2)),
])
def test_expand(shape, to):
    x = rand(shape)
    run("Expand", {"x": x}, inits={"shape": np.array(to, np.int64)})


@pytest.mark.parametrize("shape,reps,dtype", [
    ((3, 5), (2, 3), "float32"), ((7,), (4,), "int64"), ((2, 1, 3), (1, 5, 2), "bool"),
    ((2, 3), (1, 1), "int8"),
])
def test_tile(shape, reps, dtype):
    x = rand(shape, dtype)
    run("Tile", {"x": x}, inits={"repeats": np.array(reps, np.int64)})


# --- Pad ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("shape,pads", [
    ((3, 5), [1, 2, 2, 1]), ((2, 3, 7), [0, 1, 3, 0, 2, 4]), ((5,), [4, 4]),
    ((4, 6), [0, 0, 0, 0]), ((4, 6), [2, 0, 0, 5]),
])
def test_pad_modes(mode, shape, pads):
    x = rand(shape)
    run("Pad", {"x": x}, {"mode": mode}, inits={"pads": np.array(pads, np.int64)}, opset=19)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_negative(mode):
    x = rand((6, 9))
    run("Pad", {"x": x}, {"mode": mode}, inits={"pads": np.array([-1, 2, 1, -3], np.int64)}, opset=19)


def test_pad_negative_both_sides():
    x = rand((6, 9))
    run("Pad", {"x": x}, {"mode": "constant"}, inits={"pads": np.array([-2, -1, -1, -3], np.int64)})


def test_pad_constant_value_input():
    x = rand((3, 4), "int32")
    run("Pad", {"x": x}, inits={"pads": np.array([1, 1, 2, 0], np.int64), "v": np.array(7, np.int32)})


def test_pad_runtime_constant_value():
    x = rand((3, 4))
    v = np.array(2.5, np.float32)
    run("Pad", {"x": x, "v": v}, inits={"pads": np.array([1, 0, 0, 3], np.int64)}, order=["x", "pads", "v"])


def test_pad_axes_opset18():
    x = rand((2, 3, 5, 4))
    run("Pad", {"x": x}, {"mode": "reflect"},
        inits={"pads": np.array([1, 2, 2, 1], np.int64), "v": np.array(0, np.float32),
               "axes": np.array([-1, 2], np.int64)}, opset=18)


def test_pad_opset11_edge_int():
    x = rand((4, 5), "int64")
    run("Pad", {"x": x}, {"mode": "edge"}, inits={"pads": np.array([2, 0, 1, 3], np.int64)}, opset=11)


# --- DepthToSpace, SpaceToDepth ------------------------------------------------------------

@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape,bs", [((1, 8, 3, 5), 2), ((2, 27, 2, 3), 3), ((1, 4, 1, 1), 2)])
def test_depth_to_space(mode, shape, bs):
    run("DepthToSpace", {"x": rand(shape)}, {"blocksize": bs, "mode": mode})


@pytest.mark.parametrize("shape,bs", [((1, 3, 4, 6), 2), ((2, 2, 9, 3), 3), ((1, 5, 2, 2), 2)])
def test_space_to_depth(shape, bs):
    run("SpaceToDepth", {"x": rand(shape)}, {"blocksize": bs})


# --- Trilu -------------------------------------------------------------------------------

@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("shape,k", [((5, 5), None), ((4, 7), 2), ((7, 4), -2), ((2, 3, 6, 5), 1),
                                     ((3, 4), 10), ((3, 4), -10)])
def test_trilu(upper, shape, k):
    inits = {"k": np.array(k, np.int64)} if k is not None else None
    run("Trilu", {"x": rand(shape)}, {"upper": upper}, inits=inits, opset=14)


def test_trilu_runtime_k():
    x = rand((6, 7))
    k = np.array(-1, np.int64)
    run("Trilu", {"x": x, "k": k}, {"upper": 1}, opset=14)


def test_trilu_int64():
    run("Trilu", {"x": rand((5, 6), "int64")}, {"upper": 0}, opset=14)


# --- Where -------------------------------------------------------------------------------

@pytest.mark.parametrize("cs,xs,ys", [
    ((3, 5), (3, 5), (3, 5)), ((3, 1), (1, 5), (3, 5)), ((5,), (2, 3, 5), ()),
    ((2, 1, 4), (3, 1), (1, 3, 4)), ((), (7,), (7,)),
])
def test_where(cs, xs, ys):
    run("Where", {"c": rand(cs, "bool"), "a": rand(xs), "b": rand(ys)})


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "float64"])
def test_where_dtypes(dtype):
    run("Where", {"c": rand((4, 6), "bool"), "a": rand((4, 6), dtype), "b": rand((1, 6), dtype)})


def test_pad_specialises_on_runtime_pads():
    """Pads fed as a graph input: the kernel needs their value (ConstantRequiredError), so
    mlc.compile specialises on it at run time, one compile per distinct value."""
    from mlc.runtime.dynamic import DynamicModel
    x = rand((3, 4))
    pads = np.array([1, 1, 1, 1], np.int64)
    model = single_op_model("Pad", {"x": x, "pads": pads}, {"y": ("float32", (5, 6))})
    mod = mlc.compile(model, num_threads=1)
    assert isinstance(mod, DynamicModel)
    for p in ([1, 1, 1, 1], [0, 2, 2, 0]):
        p = np.array(p, np.int64)
        np.testing.assert_array_equal(mod.run({"x": x, "pads": p})["y"], ort_run(model, {"x": x, "pads": p})[0])


# --- larger shapes: vectorised and parallel loops -----------------------------------------

def test_larger_shapes_two_threads():
    kw = {"num_threads": 2}
    run("Transpose", {"x": rand((16, 33, 65))}, {"perm": [2, 0, 1]}, **kw)
    run("Transpose", {"x": rand((3, 64, 129))}, {"perm": [0, 2, 1]}, **kw)
    run("Concat", {"a": rand((8, 40, 37)), "b": rand((8, 3, 37)), "c": rand((8, 21, 37))}, {"axis": 1}, **kw)
    run("Concat", {"a": rand((50, 130)), "b": rand((50, 3))}, {"axis": -1}, **kw)
    run("Pad", {"x": rand((4, 33, 70))}, {"mode": "reflect"},
        inits={"pads": np.array([0, 3, 5, 0, 2, 7], np.int64)}, opset=19, **kw)
    run("Pad", {"x": rand((4, 33, 70))}, inits={"pads": np.array([1, 0, 9, 2, 4, 0], np.int64)}, **kw)
    run("Slice", {"x": rand((40, 300))}, inits={"starts": np.array([3, 299], np.int64),
                                              "ends": np.array([40, 0], np.int64),
                                              "axes": np.array([0, 1], np.int64),
                                              "steps": np.array([2, -3], np.int64)}, **kw)
    run("Tile", {"x": rand((7, 45))}, inits={"repeats": np.array([20, 3], np.int64)}, **kw)
    run("Where", {"c": rand((64, 257), "bool"), "a": rand((257,)), "b": rand((64, 1))}, **kw)
    run("Expand", {"x": rand((1, 300))}, inits={"shape": np.array([70, 1], np.int64)}, **kw)


def test_pad_crop_everything_then_pad():
    """An axis cropped away entirely and padded again: all padding, nothing read."""
    x = rand((4, 3))
    run("Pad", {"x": x}, inits={"pads": np.array([0, -3, 0, 2], np.int64), "v": np.array(1.5, np.float32)},
        order=["x", "pads", "v"])
    run("Pad", {"x": rand((0, 3))}, inits={"pads": np.array([1, 0, 1, 0], np.int64)})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_space_to_depth_modes(mode):
    """Opset 28 adds mode=CRD (column-row-depth); numpy reference, as the ONNX spec writes it."""
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    bs = 2
    model = single_op_model("SpaceToDepth", {"x": x}, {"y": (np.float32, (2, 12, 2, 3))},
                            {"blocksize": bs, "mode": mode}, opset=28)
    got = mlc.compile(model, num_threads=1).run({"x": x})["y"]
    t = x.reshape(2, 3, 2, bs, 3, bs)
    t = t.transpose(0, 3, 5, 1, 2, 4) if mode == "DCR" else t.transpose(0, 1, 3, 5, 2, 4)
    np.testing.assert_array_equal(got, t.reshape(2, 12, 2, 3))


def test_dropout_mask_and_training_mode():
    """Dropout in inference copies and gives an all-true mask; training_mode fed as an input
    is specialised on: true with ratio 0 is a copy too, true with a ratio is unsupported."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    model = single_op_model("Dropout", {"x": x, "r": np.array(0.0, np.float32), "t": np.array(True)},
                            {"y": (np.float32, (3, 4)), "m": (np.bool_, (3, 4))}, opset=13)
    mod = mlc.compile(model, num_threads=1)
    for training in (False, True):
        got = mod.run({"x": x, "r": np.array(0.0, np.float32), "t": np.array(training)})
        np.testing.assert_array_equal(got["y"], x)
        assert got["m"].dtype == np.bool_ and got["m"].all()
    with pytest.raises(mlc.UnsupportedError, match="training_mode"):
        mod.run({"x": x, "r": np.array(0.3, np.float32), "t": np.array(True)})
