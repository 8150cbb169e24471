"""ConvTranspose against onnxruntime: strides, pads, dilations, output_padding,
output_shape, auto_pad, groups (dense, depthwise, generic), bias, 1-D, run-time weights,
the blocked layout (inside a convolution region), and the ONNX backend node cases."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
import mlc.kernels.conv_transpose  # noqa: F401  (registers ConvTranspose)
from conftest import assert_matches_ort, single_op_model
from _nodecases import node_case_names, run_node_case

TOL = dict(rtol=1e-4, atol=1e-4)


def _model(xshape, wshape, attrs, bias=True, rng=None, weights_runtime=False, opset=17):
    rng = rng or np.random.default_rng(0)
    x = rng.standard_normal(xshape).astype(np.float32)
    w = rng.standard_normal(wshape).astype(np.float32)
    group = attrs.get("group", 1)
    inputs, inits, order = {"x": x}, {}, ["x", "w"]
    (inputs if weights_runtime else inits)["w"] = w
    if bias:
        inits["b"] = rng.standard_normal(wshape[1] * group).astype(np.float32)
        order.append("b")
    m = single_op_model("ConvTranspose", inputs, {"y": None}, attrs, initializers=inits, opset=opset,
                        input_order=order)
    return onnx.shape_inference.infer_shapes(m, strict_mode=True), inputs


CASES = [
    # (x shape, w shape, attrs, bias)
    ((1, 3, 5, 6), (3, 2, 3, 3), {}, True),
    ((1, 3, 5, 6), (3, 2, 3, 3), {"strides": [2, 2]}, False),
    ((2, 5, 7, 4), (5, 3, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, True),
    ((1, 20, 7, 9), (20, 17, 3, 2), {"strides": [3, 2], "pads": [1, 0, 2, 1], "output_padding": [1, 1]}, True),
    ((1, 4, 5, 5), (4, 3, 3, 3), {"strides": [2, 2], "dilations": [2, 2]}, True),
    ((1, 4, 5, 5), (4, 3, 3, 3), {"strides": [3, 2], "dilations": [2, 3], "pads": [2, 1, 0, 3]}, True),
    ((1, 7, 6, 5), (7, 5, 5, 3), {"strides": [4, 3], "pads": [3, 2, 1, 0]}, True),    # pads > kernel reach
    ((1, 3, 5, 6), (3, 2, 1, 1), {"strides": [2, 2]}, True),                           # phases with no tap
    ((1, 3, 10), (3, 5, 4), {"strides": [2]}, True),                                   # 1-D
    ((2, 17, 13), (17, 19, 3), {"strides": [3], "pads": [1, 2], "dilations": [2]}, True),
    ((1, 32, 6, 6), (32, 16, 2, 2), {"strides": [2, 2], "group": 2}, True),            # grouped, blocks fit
    ((1, 32, 6, 7), (32, 1, 4, 4), {"strides": [2, 2], "group": 32, "pads": [1, 1, 1, 1]}, True),  # depthwise
    ((1, 19, 5, 6), (19, 1, 3, 3), {"strides": [2, 2], "group": 19}, True),            # depthwise, partial block
    ((1, 6, 6, 6), (6, 2, 3, 3), {"strides": [2, 2], "group": 3}, True),               # generic grouping
    ((1, 3, 5, 6), (3, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, True),
    ((1, 3, 5, 6), (3, 2, 4, 4), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, True),
    ((1, 3, 5, 6), (3, 2, 3, 3), {"strides": [2, 2], "auto_pad": "VALID"}, True),
    ((1, 3, 4, 5), (3, 2, 3, 3), {"strides": [3, 3], "output_shape": [12, 14]}, True),   # larger: extends the end
    ((1, 3, 4, 5), (3, 2, 3, 3), {"strides": [3, 3], "output_shape": [12, 14], "auto_pad": "SAME_UPPER"}, True),
    ((1, 3, 5, 6), (3, 2, 3, 3), {"strides": [2, 2], "output_shape": [10, 13]}, True),
    ((1, 3, 5, 6), (3, 2, 4, 4), {"strides": [2, 2], "output_shape": [11, 12], "auto_pad": "SAME_UPPER"}, True),
    ((1, 3, 5, 6), (3, 2, 3, 3), {"strides": [2, 2], "output_shape": [10, 13], "auto_pad": "SAME_LOWER"}, True),
    ((1, 64, 11, 13), (64, 40, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, True),  # 40 = 2.5 blocks
    ((1, 16, 9, 9), (16, 1, 2, 2), {"strides": [2, 2]}, True),                          # one output channel
]


@pytest.mark.parametrize("xshape,wshape,attrs,bias", CASES,
                         ids=[f"{i}-{'x'.join(map(str, c[0]))}-{c[2]}" for i, c in enumerate(CASES)])
def test_conv_transpose(xshape, wshape, attrs, bias):
    m, feeds = _model(xshape, wshape, attrs, bias)
    assert_matches_ort(m, feeds, **TOL)


@pytest.mark.parametrize("attrs", [{"strides": [2, 2], "pads": [1, 0, 0, 1]}, {"group": 3, "strides": [2, 1]}])
def test_runtime_weights(attrs):
    wshape = (6, 2, 3, 3)
    m, feeds = _model((1, 6, 5, 4), wshape, attrs, weights_runtime=True)
    assert_matches_ort(m, feeds, **TOL)


def _chain(C, OC, K, s, pads, group=1, conv_first=True, convT_twice=False, H=9, W=11, rng=None):
    """Conv (blocked region) -> ConvTranspose -> Relu [-> ConvTranspose] -> output."""
    rng = rng or np.random.default_rng(1)
    nodes, inits = [], []
    src = "x"
    if conv_first:
        inits.append(numpy_helper.from_array(rng.standard_normal((C, 3, 3, 3)).astype(np.float32) * 0.3, "cw"))
        nodes.append(helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]))
        src = "c"
    inits.append(numpy_helper.from_array(rng.standard_normal((C, OC // group, K, K)).astype(np.float32) * 0.3, "tw"))
    inits.append(numpy_helper.from_array(rng.standard_normal((OC,)).astype(np.float32), "tb"))
    nodes.append(helper.make_node("ConvTranspose", [src, "tw", "tb"], ["t"], strides=[s, s], pads=pads, group=group))
    nodes.append(helper.make_node("Relu", ["t"], ["r"]))
    out = "r"
    if convT_twice:
        inits.append(numpy_helper.from_array(rng.standard_normal((OC, 5, 2, 2)).astype(np.float32) * 0.3, "tw2"))
        nodes.append(helper.make_node("ConvTranspose", ["r", "tw2"], ["t2"], strides=[2, 2]))
        out = "t2"
    cin = 3 if conv_first else C
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, cin, H, W))],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    m = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)],
                                                            ir_version=8))
    return m, {"x": rng.standard_normal((1, cin, H, W)).astype(np.float32)}


@pytest.mark.parametrize("kw", [
    dict(C=16, OC=16, K=2, s=2, pads=[0, 0, 0, 0]),
    dict(C=32, OC=20, K=4, s=2, pads=[1, 1, 1, 1]),
    dict(C=16, OC=16, K=3, s=2, pads=[1, 1, 1, 1], group=16),       # depthwise, blocked
    dict(C=32, OC=32, K=2, s=2, pads=[0, 0, 0, 0], group=2),
    dict(C=16, OC=16, K=2, s=2, pads=[0, 0, 0, 0], convT_twice=True),
    dict(C=16, OC=16, K=3, s=3, pads=[4, 4, 4, 4]),                  # sub-pixel crop: plain input
])
def test_blocked_region(kw):
    m, feeds = _chain(**kw)
    mod, _ = assert_matches_ort(m, feeds, **TOL)
    ops = [k.ops for k in mod.kernels]
    # the transposed convolution ran inside the blocked region: no conversion in between
    assert any("ConvTranspose" in o for o in ops)
    assert not any(o == ["FromBlocked"] and i < len(ops) - 1 for i, o in enumerate(ops)), ops


def test_two_threads():
    m, feeds = _chain(C=32, OC=32, K=4, s=2, pads=[1, 1, 1, 1], conv_first=False, H=20, W=23)
    assert_matches_ort(m, feeds, num_threads=2, **TOL)


def test_3d_unsupported():
    m, feeds = _model((1, 2, 3, 4, 5), (2, 2, 2, 2, 2), {"strides": [2, 2, 2]})
    with pytest.raises(mlc.UnsupportedError, match="3-D ConvTranspose"):
        mlc.compile(m)


def test_float64_unsupported():
    x = np.zeros((1, 2, 3, 3))
    m = single_op_model("ConvTranspose", {"x": x}, {"y": None}, {}, initializers={"w": np.zeros((2, 2, 2, 2))})
    with pytest.raises(mlc.UnsupportedError, match="float32 only"):
        mlc.compile(onnx.shape_inference.infer_shapes(m))


NODE_CASES = node_case_names(r"test_convtranspose.*")
NODE_UNSUPPORTED = {"test_convtranspose_3d"}


@pytest.mark.parametrize("name", NODE_CASES)
def test_node_cases(name):
    if name in NODE_UNSUPPORTED:
        with pytest.raises(mlc.UnsupportedError):
            run_node_case(name)
        return
    run_node_case(name, rtol=1e-4, atol=1e-4)
