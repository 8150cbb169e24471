"""Resize / Upsample against onnxruntime: every (mode, coordinate mode, nearest mode) on small
odd-sized inputs, sizes and scales, up- and downsampling, opset variants, dtypes."""
from __future__ import annotations

import numpy as np
import pytest

import mlc
from conftest import assert_matches_ort, single_op_model, typed

R = np.random.default_rng(3)

COORD = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize",
         "half_pixel_symmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
ROI4 = np.array([0, 0, 0.2, -0.1, 1, 1, 0.9, 1.25], np.float32)   # extrapolates on the right of W

# (input shape, scales or None, sizes or None)
CASES = {
    "sizes_9x4": ((1, 2, 5, 7), None, (1, 2, 9, 4)),
    "up2": ((1, 2, 5, 7), (1, 1, 2, 2), None),
    "down_half": ((1, 2, 5, 7), (1, 1, 0.5, 0.5), None),
}


def data(shape, dtype="float32"):
    if np.dtype(dtype).kind == "f":
        return R.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return R.integers(max(info.min, -120), min(info.max, 120), size=shape, endpoint=True).astype(dtype)


def resize_model(x, attrs, scales=None, sizes=None, roi=None, opset=19):
    inits = {"roi": roi if roi is not None else np.zeros(0, np.float32),
             "scales": np.array(scales, np.float32) if scales is not None else np.zeros(0, np.float32)}
    order = ["x", "roi", "scales"]
    if sizes is not None:
        inits["sizes"] = np.array(sizes, np.int64)
        order.append("sizes")
    if opset >= 13:
        if roi is None:
            order[1] = ""
            del inits["roi"]
        if scales is None:
            order[2] = ""
            del inits["scales"]
    return typed(single_op_model("Resize", {"x": x}, {"y": None}, attrs, initializers=inits, opset=opset,
                                 input_order=order))


def check(x, attrs, scales=None, sizes=None, roi=None, opset=19, **kw):
    model = resize_model(x, attrs, scales, sizes, roi, opset)
    return assert_matches_ort(model, {"x": x}, **kw)


def _attrs(mode, coord, **extra):
    a = {"mode": mode, "coordinate_transformation_mode": coord}
    if coord == "tf_crop_and_resize":
        a["extrapolation_value"] = 7.5
    a.update(extra)
    return a


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("nearest_mode", NEAREST)
@pytest.mark.parametrize("coord", COORD)
def test_nearest(case, nearest_mode, coord):
    shape, scales, sizes = CASES[case]
    x = data(shape)
    roi = ROI4 if coord == "tf_crop_and_resize" else None
    check(x, _attrs("nearest", coord, nearest_mode=nearest_mode), scales, sizes, roi)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("coord", COORD)
def test_linear(case, coord):
    shape, scales, sizes = CASES[case]
    x = data(shape)
    roi = ROI4 if coord == "tf_crop_and_resize" else None
    check(x, _attrs("linear", coord), scales, sizes, roi)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("exclude", [0, 1])
@pytest.mark.parametrize("coord", COORD)
def test_cubic(case, exclude, coord):
    shape, scales, sizes = CASES[case]
    x = data(shape)
    roi = ROI4 if coord == "tf_crop_and_resize" else None
    check(x, _attrs("cubic", coord, exclude_outside=exclude), scales, sizes, roi)


@pytest.mark.parametrize("a", [-0.5, -0.75])
def test_cubic_coeff_a(a):
    x = data((1, 1, 6, 5))
    check(x, _attrs("cubic", "asymmetric", cubic_coeff_a=a), (1, 1, 1.7, 2.3))


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_tf_half_pixel_for_nn_opset11(mode):
    x = data((1, 2, 5, 7))
    check(x, _attrs(mode, "tf_half_pixel_for_nn"), (1, 1, 1.6, 0.6), opset=11)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("opset", [11, 13, 18])
def test_opsets_odd_scales(mode, opset):
    x = data((2, 3, 7, 11))
    check(x, {"mode": mode}, (1, 1, 1.37, 0.61), opset=opset)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_2d_input(mode):
    x = data((9, 6))
    check(x, {"mode": mode}, sizes=(4, 13))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_5d_and_3d(mode):
    check(data((1, 2, 3, 4, 5)), {"mode": mode}, (1, 1, 2, 1.5, 0.6))
    check(data((3, 4, 5)), {"mode": mode}, sizes=(5, 2, 9))


def test_nearest_1d_and_3d_any_axes():
    check(data((11,)), {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"}, (2.5,))
    check(data((3, 4, 5)), {"mode": "nearest"}, (2, 1, 0.6))


def test_linear_nhwc():
    check(data((1, 5, 7, 3)), {"mode": "linear"}, (1, 1.6, 0.7, 1))


def test_only_one_axis_resized():
    check(data((1, 2, 5, 7)), {"mode": "linear"}, (1, 1, 1, 1.5))
    check(data((1, 2, 5, 7)), {"mode": "cubic"}, (1, 1, 2.2, 1))
    check(data((1, 2, 5, 7)), {"mode": "nearest"}, (1, 1, 1, 0.5))


def test_identity_copy():
    check(data((1, 2, 5, 7)), {"mode": "linear"}, sizes=(1, 2, 5, 7))
    check(data((1, 2, 5, 7)), {"mode": "cubic", "coordinate_transformation_mode": "tf_crop_and_resize"},
          sizes=(1, 2, 5, 7), roi=ROI4)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32"])
def test_integer_data(mode, dtype):
    x = data((1, 2, 5, 7), dtype)
    check(x, {"mode": mode}, sizes=(1, 2, 9, 4))
    check(x, {"mode": mode, "coordinate_transformation_mode": "align_corners"}, (1, 1, 1.6, 2.3))


def test_integer_extrapolation():
    x = data((1, 2, 5, 7), "uint8")
    check(x, _attrs("linear", "tf_crop_and_resize", extrapolation_value=300.7), sizes=(1, 2, 4, 9), roi=ROI4)
    check(x, _attrs("nearest", "tf_crop_and_resize", extrapolation_value=-3.0), sizes=(1, 2, 4, 9), roi=ROI4)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_float16(mode):
    x = data((1, 2, 5, 7), "float16")
    check(x, {"mode": mode}, sizes=(1, 2, 9, 4), rtol=0, atol=0)


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
def test_keep_aspect_ratio(policy):
    x = data((1, 2, 5, 7))
    model = typed(single_op_model("Resize", {"x": x}, {"y": None},
                                  {"mode": "linear", "keep_aspect_ratio_policy": policy, "axes": [2, 3]},
                                  initializers={"sizes": np.array([9, 4], np.int64)},
                                  input_order=["x", "", "", "sizes"], opset=18))
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_axes_opset18(mode):
    x = data((1, 2, 5, 7))
    model = typed(single_op_model("Resize", {"x": x}, {"y": None}, {"mode": mode, "axes": [-1, 2]},
                                  initializers={"scales": np.array([0.6, 1.6], np.float32)},
                                  input_order=["x", "", "scales"], opset=18))
    assert_matches_ort(model, {"x": x})


def test_axes_roi_opset18():
    x = data((1, 2, 5, 7))
    model = typed(single_op_model("Resize", {"x": x}, {"y": None},
                                  {"mode": "linear", "axes": [2, 3],
                                   "coordinate_transformation_mode": "tf_crop_and_resize",
                                   "extrapolation_value": -1.0},
                                  initializers={"roi": np.array([0.1, -0.2, 0.8, 1.1], np.float32),
                                                "sizes": np.array([6, 8], np.int64)},
                                  input_order=["x", "roi", "", "sizes"], opset=18))
    assert_matches_ort(model, {"x": x})


def test_larger_image_threads():
    x = data((2, 3, 37, 45))
    for mode in ("nearest", "linear", "cubic"):
        model = resize_model(x, {"mode": mode}, (1, 1, 2, 2))
        assert_matches_ort(model, {"x": x}, num_threads=2)


# --- legacy opsets: Upsample-7/9 and Resize-10 (converted to Resize-13 by the frontend) -----

@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_opset9(mode):
    x = data((1, 2, 5, 7))
    model = typed(single_op_model("Upsample", {"x": x}, {"y": None}, {"mode": mode},
                                  initializers={"scales": np.array([1, 1, 2, 1.5], np.float32)}, opset=9))
    assert_matches_ort(model, {"x": x})


def test_upsample_opset7():
    x = data((1, 2, 5, 7))
    model = typed(single_op_model("Upsample", {"x": x}, {"y": None}, {"mode": "nearest", "scales": [1., 1., 3., 2.]},
                                  opset=7))
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [(1, 1, 0.5, 0.6), (1, 1, 1.7, 2.5), (1, 1, 0.6, 1.8)])
def test_resize_opset10(mode, scales):
    x = data((1, 2, 5, 7))
    model = typed(single_op_model("Resize", {"x": x}, {"y": None}, {"mode": mode},
                                  initializers={"scales": np.array(scales, np.float32)}, opset=10))
    assert_matches_ort(model, {"x": x})


def test_output_shape_disagreement_unsupported():
    """1.8f * 5 is 9 in float32 (onnxruntime's output has 9 rows) but ONNX shape inference
    says 8: mlc refuses rather than return a differently shaped result."""
    x = data((1, 2, 5, 7))
    model = resize_model(x, {"mode": "nearest"}, (1, 1, 1.8, 2.3))
    with pytest.raises(mlc.UnsupportedError, match="shape"):
        mlc.compile(model)


@pytest.mark.parametrize("mode,exclude", [("linear", 0), ("cubic", 0), ("cubic", 1)])
@pytest.mark.parametrize("shape,scales,sizes", [
    ((1, 2, 17, 23), (1, 1, 0.4, 0.3), None),
    ((1, 1, 9, 10), (1, 1, 0.75, 1.5), None),       # one axis down (filtered), one up
    ((2, 3, 12, 11), None, (2, 3, 5, 4)),
])
def test_antialias(mode, exclude, shape, scales, sizes):
    """antialias=1 stretches the filter over 1/scale input pixels when downscaling."""
    x = data(shape)
    model = resize_model(x, {"mode": mode, "antialias": 1, "exclude_outside": exclude}, scales, sizes)
    assert_matches_ort(model, {"x": x}, rtol=1e-4, atol=1e-5)


def test_antialias_integer_unsupported():
    x = (data((1, 1, 6, 6)) * 10).astype(np.uint8)
    model = resize_model(x, {"mode": "linear", "antialias": 1}, (1, 1, 0.5, 0.5))
    with pytest.raises(mlc.UnsupportedError, match="antialias"):
        mlc.compile(model)


def test_upsample_kernel_direct():
    """The Upsample kernel itself (the frontend converts Upsample models to Resize-13, so
    build the graph directly): opset 7 scales attribute and opset 9 scales input."""
    from mlc.compiler.pipeline import CompileOptions, compile_graph
    from mlc.graph.ir import Graph, Node, Tensor
    from mlc.graph.passes import default_passes
    from mlc.runtime.compiled_model import CompiledModel
    from mlc.target import Target
    import mlc.api  # noqa: F401  (registers the kernels)

    x = data((1, 2, 3, 4))
    for opset, mode in ((7, "nearest"), (9, "linear")):
        scales = np.array([1, 1, 2, 1.5], np.float32)
        onnx_model = typed(single_op_model("Upsample", {"x": x}, {"y": None}, {"mode": mode},
                                           initializers={"scales": scales}, opset=9))
        want = __import__("conftest").ort_run(onnx_model, {"x": x})[0]
        attrs = {"mode": mode} if opset == 9 else {"mode": mode, "scales": scales.tolist()}
        inputs = ("x", "scales") if opset == 9 else ("x",)
        tensors = {"x": Tensor("x", "float32", x.shape), "y": Tensor("y", "float32", want.shape),
                   "scales": Tensor("scales", "float32", (4,), scales)}
        node = Node("Upsample", inputs, ("y",), attrs, name="up", opset=opset)
        graph = Graph((node,), ("x",), ("y",), tensors, opsets={"": opset})
        exe = compile_graph(graph, CompileOptions(target=Target.from_string("x86"), passes=default_passes))
        got = CompiledModel(exe, num_threads=1).run({"x": x})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_runtime_sizes_with_static_output():
    """sizes computed at run time (here a graph input) while the output shape is static:
    the kernel takes the sizes from the output shape."""
    from onnx import TensorProto, helper
    x = data((1, 2, 5, 7))
    sizes = np.array([1, 2, 9, 4], np.int64)
    node = helper.make_node("Resize", ["x", "", "", "s"], ["y"], mode="linear")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
                                            helper.make_tensor_value_info("s", TensorProto.INT64, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 9, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert_matches_ort(model, {"x": x, "s": sizes})
