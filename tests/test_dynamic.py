"""Dynamic input shapes: specialised per input signature at run time, cached."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
from mlc.runtime.dynamic import DynamicModel

from conftest import ort_run


def _conv_relu(dims):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, "d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_symbolic_dims_specialise_per_shape_and_cache(rng):
    model = _conv_relu(["N", 3, "H", "W"])
    mod = mlc.compile(model, num_threads=1)
    assert isinstance(mod, DynamicModel)
    for shape in [(1, 3, 20, 20), (2, 3, 17, 31), (1, 3, 20, 20), (1, 3, 7, 5)]:
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(mod(x), ort_run(model, {"x": x})[0], rtol=1e-4, atol=1e-5)
    assert mod.specializations_compiled == 3          # the repeated shape reused its code


def test_input_shapes_binding_gives_a_static_model():
    mod = mlc.compile(_conv_relu(["N", 3, "H", "W"]), input_shapes={"x": (1, 3, 16, 16)})
    assert not isinstance(mod, DynamicModel)
    assert mod.inputs[0].shape == (1, 3, 16, 16)


def test_dynamic_model_validates_fixed_dims_rank_and_dtype(rng):
    mod = mlc.compile(_conv_relu(["N", 3, "H", "W"]))
    with pytest.raises(mlc.InputError, match="dimension 1"):
        mod(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(mlc.InputError, match="rank"):
        mod(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(mlc.InputError, match="dtype"):
        mod(np.zeros((1, 3, 8, 8), np.float64))


def test_shapes_that_depend_on_input_values_specialise_on_them(rng):
    g = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "r",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]),
                           helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    mod = mlc.compile(model)
    x = rng.standard_normal((2, 6)).astype(np.float32)
    for s in ([3, 4], [4, 3], [-1, 2], [3, 4]):
        s = np.array(s, np.int64)
        np.testing.assert_array_equal(mod(x, s), ort_run(model, {"x": x, "s": s})[0])
    assert mod.specializations_compiled == 3


def test_values_an_op_needs_are_specialised_on(rng):
    """Static shapes, but Resize's scales (float) and a Cast-ed TopK K come in as graph
    inputs: the kernels need their values (ConstantRequiredError), so mlc.compile
    specialises on the inputs they are computed from, one compile per distinct value."""
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="linear"),
             helper.make_node("Cast", ["k32"], ["k"], to=TensorProto.INT64),
             helper.make_node("TopK", ["r", "k"], ["v", "i"], axis=-1)]
    g = helper.make_graph(nodes, "d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5]),
                                       helper.make_tensor_value_info("scales", TensorProto.FLOAT, [4]),
                                       helper.make_tensor_value_info("k32", TensorProto.INT32, [1])],
                          [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 2, 8, 3]),
                           helper.make_tensor_value_info("i", TensorProto.INT64, [1, 2, 8, 3])],
                          value_info=[helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 2, 8, 10])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    mod = mlc.compile(model, num_threads=1)
    assert isinstance(mod, DynamicModel)
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    k = np.array([3], np.int32)
    for scales in ([1, 1, 2, 2], [1, 1, 2, 2.01], [1, 1, 2, 2]):     # same output shape
        feeds = {"x": x, "scales": np.array(scales, np.float32), "k32": k}
        got, want = mod.run(feeds), ort_run(model, feeds)
        np.testing.assert_allclose(got["v"], want[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got["i"], want[1])
    assert mod.specializations_compiled == 2
