"""Shared test helpers: build one-op ONNX models, run onnxruntime as the reference."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

RTOL, ATOL = 1e-4, 1e-5

_NP_TO_ONNX = {np.dtype(k): v for k, v in {
    "float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "float16": TensorProto.FLOAT16,
    "int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int16": TensorProto.INT16,
    "uint16": TensorProto.UINT16, "int32": TensorProto.INT32, "uint32": TensorProto.UINT32,
    "int64": TensorProto.INT64, "uint64": TensorProto.UINT64, "bool": TensorProto.BOOL}.items()}


def onnx_dtype(dtype) -> int:
    return _NP_TO_ONNX[np.dtype(dtype)]


def single_op_model(op: str, inputs: dict, outputs: dict, attrs: dict | None = None,
                    initializers: dict | None = None, opset: int = 17, domain: str = "",
                    input_order: list | None = None) -> onnx.ModelProto:
    """A model with one node.

    ``inputs``: name -> array (run-time inputs); ``initializers``: name -> array (constants);
    ``outputs``: name -> (dtype, shape) or None for unknown; the node's inputs are
    ``input_order`` (default: inputs then initializers; "" marks an omitted one).
    """
    initializers = initializers or {}
    order = input_order if input_order is not None else list(inputs) + list(initializers)
    node = helper.make_node(op, order, list(outputs), domain=domain or None, **(attrs or {}))
    g_in = [helper.make_tensor_value_info(n, onnx_dtype(a.dtype), a.shape) for n, a in inputs.items()]
    g_out = []
    for n, spec in outputs.items():
        if spec is None:
            g_out.append(helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None))
        else:
            g_out.append(helper.make_tensor_value_info(n, onnx_dtype(spec[0]), spec[1]))
    inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers.items()]
    graph = helper.make_graph([node], f"{op}_test", g_in, g_out, inits)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def typed(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its output types filled in by onnx shape inference (for builders
    that leave an output's element type 0)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    outs = [known.get(o.name, o) if o.type.tensor_type.elem_type == 0 else o for o in model.graph.output]
    del model.graph.output[:]
    model.graph.output.extend(outs)
    return model


def ort_run(model: onnx.ModelProto, feeds: dict, threads: int = 1) -> list:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_matches_ort(model: onnx.ModelProto, feeds: dict, rtol: float = RTOL, atol: float = ATOL,
                       num_threads: int = 1, **compile_kwargs):
    """Compile ``model`` with mlc, run both, compare every output (shape, dtype, values)."""
    import mlc
    ref = ort_run(model, feeds)
    mod = mlc.compile(model, num_threads=num_threads, **compile_kwargs)
    got = mod.run(feeds)
    names = [o.name for o in model.graph.output]
    for name, r in zip(names, ref):
        g = got[name]
        assert g.shape == r.shape, f"{name}: shape {g.shape} != onnxruntime {r.shape}"
        assert g.dtype == r.dtype, f"{name}: dtype {g.dtype} != onnxruntime {r.dtype}"
        if r.dtype.kind in "fc":
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=f"output {name}")
        else:
            np.testing.assert_array_equal(g, r, err_msg=f"output {name}")
    return mod, got


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
