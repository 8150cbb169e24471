"""Comparisons, boolean and bitwise operators (kernels/logic.py) against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

import mlc
from mlc.errors import MlcError

from _opcheck import case, run_cases, values

NAN, INF = np.nan, np.inf
SHAPES = [((3, 17), (3, 17)), ((2, 3, 5, 7), (3, 1, 1)), ((5, 1), (1, 7)), ((4, 5, 6), ()),
          ((), (19,)), ((2, 1, 5), (3, 1))]
COMPARE = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]


def _pair(rng, dtype, sa, sb):
    if dtype == "bool":
        return np.asarray(rng.random(sa) < 0.5), np.asarray(rng.random(sb) < 0.5)
    if dtype.startswith("float"):
        # few distinct values so that equal pairs occur; NaN and infinities among them
        pool = np.array([0.0, -0.0, 1.5, -1.5, 2.0, NAN, INF, -INF, 1e-30], dtype)
        return rng.choice(pool, sa).astype(dtype), rng.choice(pool, sb).astype(dtype)
    info = np.iinfo(dtype)
    pool = np.array(sorted({0, 1, 2, info.max, info.min, info.max - 1, 100 % info.max}), dtype)
    return rng.choice(pool, sa).astype(dtype), rng.choice(pool, sb).astype(dtype)


@pytest.mark.parametrize("op", COMPARE)
def test_compare(op, rng):
    dtypes = ["float32", "float64", "float16", "int32", "int64", "int8", "uint8", "uint64"]
    if op == "Equal":
        dtypes.append("bool")
    cases = []
    for dtype in dtypes:
        for sa, sb in SHAPES[:4] if dtype not in ("float32", "int64") else SHAPES:
            a, b = _pair(rng, dtype, sa, sb)
            cases.append(case({"a": a, "b": b}))
    opset = 19 if op == "Equal" else 16
    ref = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
           "GreaterOrEqual": np.greater_equal}[op]
    run_cases(op, cases, None, opset, ref=ref)


def test_compare_against_constant(rng):
    x = values(rng, (4, 33), -3, 3, (0.0, NAN, INF, -INF, 1.0))
    for op in COMPARE:
        run_cases(op, [case({"x": x}, {"c": np.array(1.0, np.float32)}),
                       case({"x": x}, {"c": np.array([[0.0], [1.0], [NAN], [-1.0]], np.float32)})], None, 16)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logical(op, rng):
    cases = []
    for sa, sb in SHAPES:
        a, b = _pair(rng, "bool", sa, sb)
        cases.append(case({"a": a, "b": b}))
    run_cases(op, cases, None, 7)


def test_not(rng):
    run_cases("Not", [case({"x": np.asarray(rng.random(s) < 0.5)}) for s in ((3, 17), (2, 3, 5, 7), (), (1,))], None, 1)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise(op, rng):
    cases = []
    for dtype in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        info = np.iinfo(dtype)
        for sa, sb in SHAPES[:4]:
            a = rng.integers(info.min, info.max, size=sa, dtype=dtype, endpoint=True)
            b = rng.integers(info.min, info.max, size=sb, dtype=dtype, endpoint=True)
            cases.append(case({"a": a, "b": b}))
    ref = {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or, "BitwiseXor": np.bitwise_xor}[op]
    run_cases(op, cases, None, 18, ref=ref)


def test_bitwise_not(rng):
    cases = []
    for dtype in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        info = np.iinfo(dtype)
        cases.append(case({"x": rng.integers(info.min, info.max, size=(3, 19), dtype=dtype, endpoint=True)}))
    run_cases("BitwiseNot", cases, None, 18, ref=np.invert)


def test_compare_feeds_where(rng):
    """A comparison fused with its consumer: Where(Greater(x, 0), x, y)."""
    from onnx import TensorProto, helper
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    y = rng.standard_normal((4, 1)).astype(np.float32)
    nodes = [helper.make_node("Greater", ["x", "zero"], ["m"]), helper.make_node("Not", ["m"], ["n"]),
             helper.make_node("Cast", ["n"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "y"], ["out"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
                                       helper.make_tensor_value_info("y", TensorProto.FLOAT, y.shape)],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    got = mlc.compile(model, num_threads=1).run({"x": x, "y": y})["out"]
    np.testing.assert_allclose(got, (~(x > 0)).astype(np.float32) * y, rtol=1e-6)


def test_string_equal_is_unsupported():
    from onnx import TensorProto, helper
    node = helper.make_node("Equal", ["a", "b"], ["out"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.STRING, [3]),
                                        helper.make_tensor_value_info("b", TensorProto.STRING, [3])],
                          [helper.make_tensor_value_info("out", TensorProto.BOOL, [3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)], ir_version=8)
    with pytest.raises(MlcError):
        mlc.compile(model)
