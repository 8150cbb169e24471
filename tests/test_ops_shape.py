"""Shape and type ops: Cast, CastLike, EyeLike against onnxruntime; Shape, Size, Constant,
ConstantOfShape, Range both through mlc.compile (folded by the frontend) and as kernels
(a graph built directly, so the kernel itself runs)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import mlc
from conftest import assert_matches_ort, onnx_dtype, ort_run, single_op_model, typed
from mlc.compiler.pipeline import CompileOptions, compile_graph
from mlc.graph.ir import Graph, Node, Tensor
from mlc.graph.passes import default_passes
from mlc.runtime.compiled_model import CompiledModel
from mlc.target import Target

R = np.random.default_rng(5)

NUMERIC = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64", "bool"]


def values_for(src: str, dst: str, shape=(3, 37)) -> np.ndarray:
    """Values of dtype ``src`` whose conversion to ``dst`` is defined (no overflow, no NaN
    to integer), including negatives, halves and the extremes that still fit."""
    n = int(np.prod(shape))
    if src == "bool":
        return np.asarray(R.random(shape) < 0.5)
    if np.dtype(src).kind == "f":
        if dst == "bool" or np.dtype(dst).kind == "f":
            base = [0.0, -0.0, 1.5, -2.5, 0.3, 1e-3, 65504.0 if src != "float16" else 1000.0]
            if dst != "float16" and src != "float16":
                base += [1e30, -1e30] if src == "float32" or dst in ("float32", "float64") else []
            if dst == "bool" or dst in ("float32", "float64") or src == "float16":
                base += [np.inf, -np.inf]
            extra = R.standard_normal(n) * 100
        else:
            info = np.iinfo(dst)
            lo, hi = max(info.min, -30000), min(info.max, 30000)
            base = [0.0, 0.5, -0.5, 0.99, -0.99, 2.5, -2.5, float(lo), float(hi)]
            if info.min == 0:
                base += [-3.7, -1.0]              # wraps (as onnxruntime on x86)
            extra = R.uniform(lo, hi, n)
        vals = np.concatenate([np.array(base), extra])[:n]
        return vals.astype(src).reshape(shape)
    info = np.iinfo(src)
    base = [0, 1, info.max, info.min, info.max // 3, -5 if info.min < 0 else 5]
    extra = R.integers(info.min, info.max, size=n, endpoint=True, dtype=src)
    return np.concatenate([np.array(base, dtype=src), extra])[:n].reshape(shape)


@pytest.mark.parametrize("src", NUMERIC)
@pytest.mark.parametrize("dst", NUMERIC)
def test_cast_pairs(src, dst):
    x = values_for(src, dst)
    model = single_op_model("Cast", {"x": x}, {"y": (dst, x.shape)}, {"to": onnx_dtype(dst)}, opset=13)
    tol = {"rtol": 1e-3, "atol": 0} if dst == "float16" else {}
    assert_matches_ort(model, {"x": x}, **tol)


@pytest.mark.parametrize("src", ["float32", "float64", "int32", "uint8", "bool"])
def test_cast_to_bfloat16_and_back(src):
    """float -> bfloat16 -> float32 in one fused kernel: the bfloat16 rounding must happen."""
    x = values_for(src, "float32", (4, 33))
    if src == "float32":
        x = (R.standard_normal((4, 33)) * 10).astype(np.float32)
    nodes = [helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BFLOAT16),
             helper.make_node("Cast", ["b"], ["y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx_dtype(src), x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert_matches_ort(model, {"x": x}, rtol=0, atol=0)


def test_cast_chain_fused_with_arithmetic():
    x = (R.standard_normal((5, 19)) * 100).astype(np.float32)
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT8),
             helper.make_node("Cast", ["i"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["f", "x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert_matches_ort(model, {"x": x})


# --- storage-only types: int4/uint4/int2/uint2, float8, float4 ----------------------------
# onnxruntime lacks CPU Cast kernels for most of these; the reference is ml_dtypes, as for
# the ONNX node tests (float -> sub-byte integer truncates and wraps; -> small float rounds
# to nearest even, saturating by default)

_LOWBIT = {"int4": TensorProto.INT4, "uint4": TensorProto.UINT4, "int2": TensorProto.INT2,
           "uint2": TensorProto.UINT2, "float8_e4m3fn": TensorProto.FLOAT8E4M3FN,
           "float8_e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ, "float8_e5m2": TensorProto.FLOAT8E5M2,
           "float8_e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ, "float4_e2m1fn": TensorProto.FLOAT4E2M1}


def _round_trip_model(mid: str, src: str, shape, saturate=None):
    attrs = {} if saturate is None else {"saturate": saturate}
    nodes = [helper.make_node("Cast", ["x"], ["m"], to=_LOWBIT[mid], **attrs),
             helper.make_node("Cast", ["m"], ["y"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["y", "two"], ["z"])]
    two = onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx_dtype(src), shape)],
                              [helper.make_tensor_value_info("m", _LOWBIT[mid], shape),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, shape)], [two])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=11)


@pytest.mark.parametrize("mid", ["int4", "uint4", "int2", "uint2"])
@pytest.mark.parametrize("src", ["float32", "float16", "int32"])
def test_cast_subbyte_integers_wrap_in_one_fused_kernel(mid, src):
    """x -> int4 -> float -> *2: the value held in registers between the casts is wrapped
    and sign-extended exactly like the stored one."""
    x = np.arange(-20, 21).astype(src).reshape(1, 41)
    mod = mlc.compile(_round_trip_model(mid, src, x.shape), num_threads=1)
    got = mod.run({"x": x})
    want = x.astype(np.int32).astype(mid)
    assert got["m"].dtype == np.dtype(mid)
    np.testing.assert_array_equal(got["m"].astype(np.int32), want.astype(np.int32))
    np.testing.assert_array_equal(got["z"], want.astype(np.float32) * 2)


@pytest.mark.parametrize("mid", ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
                                 "float4_e2m1fn"])
@pytest.mark.parametrize("saturate", [None, 0])
def test_cast_small_floats_round_to_nearest_even(mid, saturate):
    import ml_dtypes
    info = ml_dtypes.finfo(mid)
    big = float(info.max)
    vals = np.concatenate([R.standard_normal(200) * big / 4, [0.0, -0.0, big, -big, big * 1.2, -big * 3,
                                                              float(info.smallest_subnormal) / 2, 1e-30,
                                                              np.inf, -np.inf, np.nan]]).astype(np.float32)
    if mid == "float4_e2m1fn" and saturate == 0:
        pytest.skip("float4 has neither inf nor NaN: saturate=0 is not defined for it")
    x = vals.reshape(1, -1)
    mod = mlc.compile(_round_trip_model(mid, "float32", x.shape, saturate), num_threads=1)
    got = mod.run({"x": x})
    if saturate == 0:
        want = x.astype(mid)
    else:
        want = onnx.numpy_helper.saturate_cast(x, np.dtype(mid))
    assert got["m"].dtype == np.dtype(mid)
    nan = np.isnan(want.astype(np.float32))          # any NaN code will do
    np.testing.assert_array_equal(np.isnan(got["m"].astype(np.float32)), nan)
    np.testing.assert_array_equal(got["m"].view(np.uint8)[~nan], want.view(np.uint8)[~nan])
    np.testing.assert_array_equal(got["z"], want.astype(np.float32) * 2)


@pytest.mark.parametrize("src,like", [("float32", "int32"), ("int64", "float16"), ("uint8", "float64"),
                                      ("float64", "bool")])
def test_cast_like(src, like):
    x = values_for(src, like)
    t = np.zeros((1,), like)
    model = typed(single_op_model("CastLike", {"x": x}, {"y": None}, initializers={"t": t}, opset=15))
    assert_matches_ort(model, {"x": x})


def test_cast_string_unsupported():
    x = np.ones((3,), np.float32)
    model = single_op_model("Cast", {"x": x}, {"y": None}, {"to": TensorProto.STRING}, opset=13)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.STRING
    model.graph.output[0].type.tensor_type.shape.dim.add().dim_value = 3
    with pytest.raises(mlc.UnsupportedError):
        mlc.compile(model)


# --- EyeLike -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape,k,dtype", [((4, 4), 0, None), ((3, 7), 2, None), ((7, 3), -1, TensorProto.INT32),
                                           ((5, 6), 9, TensorProto.DOUBLE), ((2, 2), 0, TensorProto.INT64)])
def test_eye_like(shape, k, dtype):
    x = R.standard_normal(shape).astype(np.float32)
    attrs = {"k": k}
    if dtype is not None:
        attrs["dtype"] = dtype
    model = typed(single_op_model("EyeLike", {"x": x}, {"y": None}, attrs, opset=9 + 4))
    assert_matches_ort(model, {"x": x})


# --- shape ops through the whole pipeline (folded) ---------------------------------------

def test_shape_size_folded_pipeline():
    x = R.standard_normal((2, 3, 5)).astype(np.float32)
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1),
             helper.make_node("Size", ["x"], ["n"]),
             helper.make_node("ConstantOfShape", ["s"], ["z"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.5])),
             helper.make_node("Mul", ["z", "x"], ["y"]),
             helper.make_node("Range", ["n0", "n", "d"], ["r"])]
    inits = [helper.make_tensor("n0", TensorProto.INT64, [], [3]), helper.make_tensor("d", TensorProto.INT64, [], [7])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape),
                               helper.make_tensor_value_info("s", TensorProto.INT64, [2]),
                               helper.make_tensor_value_info("r", TensorProto.INT64, [4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert_matches_ort(model, {"x": x})


# --- the kernels themselves, on a graph built directly (no folding) -----------------------

def compile_direct(op, inputs: dict, outputs: dict, attrs=None, consts=None, opset=17):
    """Compile one node without the frontend: ``inputs`` name -> (dtype, shape) run-time
    inputs, ``consts`` name -> array, ``outputs`` name -> (dtype, shape)."""
    consts = consts or {}
    tensors = {n: Tensor(n, dt, tuple(s)) for n, (dt, s) in {**inputs, **outputs}.items()}
    for n, v in consts.items():
        tensors[n] = Tensor(n, np.asarray(v).dtype.name, tuple(np.shape(v)), np.asarray(v))
    node = Node(op, tuple(list(inputs) + list(consts)), tuple(outputs), attrs or {}, name=f"{op}_0", opset=opset)
    graph = Graph((node,), tuple(inputs), tuple(outputs), tensors, opsets={"": opset})
    exe = compile_graph(graph, CompileOptions(target=Target.from_string("x86"), passes=default_passes))
    return CompiledModel(exe, num_threads=1)


def test_shape_kernel():
    x = np.zeros((2, 3, 5, 7), np.float32)
    for start, end, want in [(0, None, [2, 3, 5, 7]), (1, 3, [3, 5]), (-2, None, [5, 7]), (0, -3, [2])]:
        attrs = {"start": start} if end is None else {"start": start, "end": end}
        mod = compile_direct("Shape", {"x": ("float32", x.shape)}, {"y": ("int64", (len(want),))}, attrs, opset=15)
        np.testing.assert_array_equal(mod.run({"x": x})["y"], np.array(want, np.int64))


def test_size_kernel():
    x = np.zeros((2, 3, 5), np.float32)
    mod = compile_direct("Size", {"x": ("float32", x.shape)}, {"y": ("int64", ())})
    got = mod.run({"x": x})["y"]
    assert got.shape == () and int(got) == 30


@pytest.mark.parametrize("value,dtype", [(None, "float32"), (np.array([7], np.int32), "int32"),
                                         (np.array([True]), "bool"), (np.array([-1.5], np.float64), "float64")])
def test_constant_of_shape_kernel(value, dtype):
    attrs = {} if value is None else {"value": value}
    mod = compile_direct("ConstantOfShape", {}, {"y": (dtype, (3, 17))}, attrs,
                         consts={"s": np.array([3, 17], np.int64)}, opset=9 + 11)
    want = np.full((3, 17), 0 if value is None else value[0], dtype)
    got = mod.run({})["y"]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("attrs,want", [
    ({"value": np.arange(12, dtype=np.float32).reshape(3, 4)}, np.arange(12, dtype=np.float32).reshape(3, 4)),
    ({"value_float": 2.5}, np.array(2.5, np.float32)),
    ({"value_floats": [1.0, -2.0, 3.5]}, np.array([1.0, -2.0, 3.5], np.float32)),
    ({"value_int": -7}, np.array(-7, np.int64)),
    ({"value_ints": [4, 5, 6, 7, 1]}, np.array([4, 5, 6, 7, 1], np.int64)),
    ({"value": np.array([[True, False], [False, True]])}, np.array([[True, False], [False, True]])),
])
def test_constant_kernel(attrs, want):
    mod = compile_direct("Constant", {}, {"y": (want.dtype.name, want.shape)}, attrs)
    got = mod.run({})["y"]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("start,limit,delta,dtype", [(0, 10, 3, "int64"), (5, -3, -2, "int32"), (1, 2, 5, "int64"),
                                                     (0.1, 3.3, 0.7, "float32"), (10.0, 0.0, -1.3, "float64"),
                                                     (-2, 7, 1, "int16")])
def test_range_kernel(start, limit, delta, dtype):
    s, l, d = (np.array(v, dtype) for v in (start, limit, delta))
    model = typed(single_op_model("Range", {}, {"y": None}, initializers={"s": s, "l": l, "d": d}, opset=11))
    want = ort_run(model, {})[0]
    mod = compile_direct("Range", {}, {"y": (dtype, want.shape)}, consts={"s": s, "l": l, "d": d}, opset=11)
    got = mod.run({})["y"]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_range_runtime_bounds_unsupported():
    with pytest.raises(mlc.UnsupportedError):
        compile_direct("Range", {"s": ("int64", ()), "l": ("int64", ()), "d": ("int64", ())}, {"y": ("int64", (4,))})


def test_eye_like_kernel_bool():
    mod = compile_direct("EyeLike", {"x": ("float32", (3, 5))}, {"y": ("bool", (3, 5))},
                         {"k": 1, "dtype": TensorProto.BOOL})
    np.testing.assert_array_equal(mod.run({"x": np.zeros((3, 5), np.float32)})["y"], np.eye(3, 5, 1, dtype=bool))


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_float8_e8m0(round_mode, saturate):
    """float -> e8m0 (a bare exponent) rounds the fraction per round_mode; the reference is
    the ONNX node tests' own converter.  e8m0 -> float: 2^(code - 127)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # onnx's case generators overflow on purpose
        from onnx.backend.test.case.node.cast import to_float8e8m0
    k = np.arange(-149, 128, dtype=np.float64)
    vals = np.concatenate([2.0 ** k, 2.0 ** k * 1.5, 2.0 ** k * 1.25, 2.0 ** k * 1.75, 2.0 ** k * 1.0000001,
                           -(2.0 ** k) * 1.5, [0.0, -0.0, 3.4e38, np.inf, -np.inf, np.nan]])
    x = vals.astype(np.float32).reshape(1, -1)
    nodes = [helper.make_node("Cast", ["x"], ["m"], to=TensorProto.FLOAT8E8M0, saturate=saturate,
                              round_mode=round_mode),
             helper.make_node("Cast", ["m"], ["y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("m", TensorProto.FLOAT8E8M0, x.shape),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)], ir_version=11)
    got = mlc.compile(model, num_threads=1).run({"x": x})
    want = to_float8e8m0(x, saturate=bool(saturate), round_mode=round_mode)
    np.testing.assert_array_equal(got["m"].view(np.uint8), want.view(np.uint8))
    np.testing.assert_array_equal(got["y"], want.astype(np.float32))
