"""Softmax, LogSoftmax, Hardmax, Gelu and the normalisations against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from onnx import TensorProto, helper, numpy_helper

from conftest import assert_matches_ort, single_op_model

import mlc
from mlc.errors import UnsupportedError


def _axes(rank):
    return list(range(-rank, rank))


SHAPES = [(7,), (2, 1000), (3, 17, 5)]
SOFTMAX_CASES = [(shape, axis) for shape in SHAPES for axis in _axes(len(shape))]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES)
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_family(op, shape, axis, opset, rng):
    # magnitudes up to a few hundred: exp overflows without the max shift
    x = (rng.standard_normal(shape) * 100).astype(np.float32)
    if op == "Hardmax":
        x = np.round(x / 50)          # ties: the first maximum wins
    model = single_op_model(op, {"x": x}, {"y": (np.float32, None)}, attrs={"axis": axis}, opset=opset)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_default_axis(op, opset, rng):
    # opset < 13 defaults to axis 1 (flattening the rest), opset 13 to axis -1
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    model = single_op_model(op, {"x": x}, {"y": (np.float32, None)}, opset=opset)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(13, -1), (11, 3), (11, 2), (13, 1)])
def test_softmax_bert_shape(op, opset, axis, rng):
    x = (rng.standard_normal((1, 4, 128, 128)) * 8).astype(np.float32)
    model = single_op_model(op, {"x": x}, {"y": (np.float32, None)}, attrs={"axis": axis}, opset=opset)
    assert_matches_ort(model, {"x": x}, num_threads=2)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_extreme_values(op):
    x = np.array([[1000.0, 0.0, -1000.0, 999.0],
                  [-1e4, -1e4, -1e4, -1e4],
                  [88.0, 89.0, 90.0, -90.0],
                  [3e38, 0.0, -3e38, 1.0]], np.float32)
    model = single_op_model(op, {"x": x}, {"y": (np.float32, None)}, attrs={"axis": -1}, opset=13)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-7), (np.float16, 2e-3)])
def test_softmax_other_floats(dtype, tol, rng):
    x = (rng.standard_normal((3, 37)) * 5).astype(dtype)
    model = single_op_model("Softmax", {"x": x}, {"y": (dtype, None)}, attrs={"axis": -1}, opset=13)
    assert_matches_ort(model, {"x": x}, rtol=tol, atol=tol)


def test_softmax_integer_unsupported():
    x = np.ones((2, 3), np.int32)
    model = single_op_model("Hardmax", {"x": x}, {"y": (np.int32, None)}, opset=13)
    with pytest.raises(Exception):   # onnx or mlc rejects it; it never runs wrongly
        mlc.compile(model)


# --------------------------------------------------------------------------------------
# Gelu
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(7,), (3, 17, 5), (1, 128, 256)])
def test_gelu(approximate, shape, rng):
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x.reshape(-1)[:4] = [-100.0, 100.0, 0.0, -6.0]
    model = single_op_model("Gelu", {"x": x}, {"y": (np.float32, None)}, attrs={"approximate": approximate},
                            opset=20)
    assert_matches_ort(model, {"x": x})


# --------------------------------------------------------------------------------------
# LayerNormalization
# --------------------------------------------------------------------------------------

LN_CASES = [((3, 17, 5), a) for a in _axes(3)] + [((1, 128, 256), -1), ((1, 128, 256), 1), ((7,), 0),
                                                 ((2, 1000), -1)]


@pytest.mark.parametrize("shape,axis", LN_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm(shape, axis, bias, rng):
    # far from zero: the mean must not lose precision
    x = (rng.standard_normal(shape) * 3 + 100).astype(np.float32)
    tail = shape[axis:]
    inits = {"scale": rng.standard_normal(tail).astype(np.float32)}
    if bias:
        inits["bias"] = rng.standard_normal(tail).astype(np.float32)
    model = single_op_model("LayerNormalization", {"x": x}, {"y": (np.float32, None)},
                            attrs={"axis": axis, "epsilon": 1e-3}, initializers=inits, opset=17)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("shape,axis", [((3, 17, 5), -1), ((3, 17, 5), 1), ((1, 128, 256), -1)])
def test_layer_norm_mean_and_inv_std_outputs(shape, axis, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    tail = shape[axis:]
    inits = {"scale": rng.standard_normal(tail).astype(np.float32), "bias": rng.standard_normal(tail).astype(np.float32)}
    model = single_op_model("LayerNormalization", {"x": x},
                            {"y": (np.float32, None), "mean": (np.float32, None), "inv_std": (np.float32, None)},
                            attrs={"axis": axis}, initializers=inits, opset=17)
    assert_matches_ort(model, {"x": x})


def test_layer_norm_runtime_scale_and_broadcast_scale(rng):
    x = rng.standard_normal((2, 6, 8)).astype(np.float32)
    scale = rng.standard_normal((8,)).astype(np.float32)    # broadcast over the normalised (6, 8)
    model = single_op_model("LayerNormalization", {"x": x, "scale": scale}, {"y": (np.float32, None)},
                            attrs={"axis": 1}, opset=17)
    assert_matches_ort(model, {"x": x, "scale": scale})


def test_layer_norm_bert_parallel(rng):
    x = rng.standard_normal((1, 128, 768)).astype(np.float32)
    inits = {"scale": rng.standard_normal(768).astype(np.float32), "bias": rng.standard_normal(768).astype(np.float32)}
    model = single_op_model("LayerNormalization", {"x": x}, {"y": (np.float32, None)}, initializers=inits, opset=17)
    assert_matches_ort(model, {"x": x}, num_threads=2)


# --------------------------------------------------------------------------------------
# InstanceNormalization, GroupNormalization, MeanVarianceNormalization, LpNormalization
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 17, 5), (1, 8, 7), (2, 4, 3, 2, 5), (1, 2, 28, 28)])
def test_instance_norm(shape, rng):
    x = (rng.standard_normal(shape) * 5 + 50).astype(np.float32)
    C = shape[1]
    inits = {"scale": rng.standard_normal(C).astype(np.float32), "bias": rng.standard_normal(C).astype(np.float32)}
    model = single_op_model("InstanceNormalization", {"x": x}, {"y": (np.float32, None)},
                            attrs={"epsilon": 1e-3}, initializers=inits, opset=6)
    assert_matches_ort(model, {"x": x})


@pytest.mark.filterwarnings("ignore:.*GroupNormalization is deprecated")
@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("shape,groups", [((2, 6, 17, 5), 3), ((1, 8, 7), 8), ((2, 4, 3), 1), ((3, 6), 2)])
def test_group_norm(opset, shape, groups, rng):
    x = (rng.standard_normal(shape) * 5 + 20).astype(np.float32)
    n = groups if opset < 21 else shape[1]     # opset 18: per group; opset 21: per channel
    inits = {"scale": rng.standard_normal(n).astype(np.float32), "bias": rng.standard_normal(n).astype(np.float32)}
    # onnx's shape inference cannot see through this function op: declare the output shape
    model = single_op_model("GroupNormalization", {"x": x}, {"y": (np.float32, shape)},
                            attrs={"num_groups": groups, "epsilon": 1e-4}, initializers=inits, opset=opset)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("shape,axes", [((2, 3, 17, 5), None), ((2, 3, 17, 5), [1]), ((3, 17, 5), [0, 2]),
                                        ((2, 1000), [-1]), ((4, 6, 5), [0, 1, 2])])
def test_mean_variance_norm(shape, axes, rng):
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    attrs = {"axes": axes} if axes is not None else {}
    model = single_op_model("MeanVarianceNormalization", {"x": x}, {"y": (np.float32, shape)}, attrs=attrs,
                            opset=13)
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("shape,axis", [((3, 17, 5), a) for a in _axes(3)] + [((2, 1000), -1), ((7,), 0)])
@pytest.mark.parametrize("p", [1, 2])
def test_lp_norm(shape, axis, p, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    x[(0,) * (len(shape) - 1)] = 0.0 if len(shape) > 1 else x[0]      # an all-zero row stays zero
    model = single_op_model("LpNormalization", {"x": x}, {"y": (np.float32, None)}, attrs={"axis": axis, "p": p},
                            opset=1)
    assert_matches_ort(model, {"x": x})


def test_lp_norm_bad_p_unsupported():
    x = np.ones((2, 3), np.float32)
    model = single_op_model("LpNormalization", {"x": x}, {"y": (np.float32, None)}, attrs={"p": 3}, opset=1)
    with pytest.raises(UnsupportedError):
        mlc.compile(model)


# --------------------------------------------------------------------------------------
# fused with their neighbours (BERT patterns)
# --------------------------------------------------------------------------------------

def _graph(nodes, inputs, inits, opset):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape)
                                       for n, a in inputs.items()],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(a, n) for n, a in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_scaled_masked_softmax_fused(rng):
    x = rng.standard_normal((1, 4, 128, 128)).astype(np.float32) * 20
    mask = (rng.random((1, 1, 1, 128)) < 0.2).astype(np.float32) * -10000
    nodes = [helper.make_node("Div", ["x", "d"], ["a"]), helper.make_node("Add", ["a", "mask"], ["b"]),
             helper.make_node("Softmax", ["b"], ["c"], axis=-1), helper.make_node("Mul", ["c", "two"], ["y"])]
    model = _graph(nodes, {"x": x, "mask": mask},
                   {"d": np.array(8.0, np.float32), "two": np.array(2.0, np.float32)}, 13)
    mod, _ = assert_matches_ort(model, {"x": x, "mask": mask}, num_threads=2)
    assert len(mod.kernels) == 1


def test_residual_layer_norm_fused(rng):
    h = rng.standard_normal((1, 128, 256)).astype(np.float32)
    r = rng.standard_normal((1, 128, 256)).astype(np.float32)
    nodes = [helper.make_node("Add", ["h", "r"], ["a"]),
             helper.make_node("LayerNormalization", ["a", "s", "b"], ["y"], axis=-1, epsilon=1e-12)]
    model = _graph(nodes, {"h": h, "r": r}, {"s": rng.standard_normal(256).astype(np.float32),
                                             "b": rng.standard_normal(256).astype(np.float32)}, 17)
    assert_matches_ort(model, {"h": h, "r": r}, num_threads=2)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (2, 5), (3, 4, 7)])
@pytest.mark.parametrize("n_out", [1, 3])
def test_batch_norm_training_mode(shape, n_out, rng):
    """training_mode=1: batch statistics, and the running statistics as outputs 1 and 2
    (numpy reference: onnxruntime's CPU build has no training-mode BatchNormalization)."""
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    C = shape[1]
    scale, bias = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    mean, var = rng.standard_normal(C).astype(np.float32), rng.random(C).astype(np.float32) + 0.5
    outs = {"y": (np.float32, shape), "rm": (np.float32, (C,)), "rv": (np.float32, (C,))}
    outs = dict(list(outs.items())[:n_out])
    model = single_op_model("BatchNormalization", {"x": x, "s": scale, "b": bias, "m": mean, "v": var}, outs,
                            {"training_mode": 1, "momentum": 0.8, "epsilon": 1e-3}, opset=15)
    got = mlc.compile(model, num_threads=1).run({"x": x, "s": scale, "b": bias, "m": mean, "v": var})
    axes = tuple(d for d in range(len(shape)) if d != 1)
    bshape = [1, C] + [1] * (len(shape) - 2)
    bm, bv = x.astype(np.float64).mean(axis=axes), x.astype(np.float64).var(axis=axes)
    want_y = (x - bm.reshape(bshape)) / np.sqrt(bv.reshape(bshape) + 1e-3) * scale.reshape(bshape) + \
        bias.reshape(bshape)
    np.testing.assert_allclose(got["y"], want_y, rtol=1e-4, atol=1e-5)
    if n_out == 3:
        np.testing.assert_allclose(got["rm"], mean * 0.8 + bm * 0.2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["rv"], var * 0.8 + bv * 0.2, rtol=1e-5, atol=1e-6)
