"""The model families deployed models come in must compile and match onnxruntime.

One zoo model per family (``mlc.zoo``), written with the patterns its exporters emit:

* ``yolo``   YOLOv8 detector: SiLU as Sigmoid * x, C2f Split/Concat, SPPF MaxPools,
             nearest Resize, anchors from Shape/Range/Expand/ConstantOfShape, DFL Softmax;
             symbolic height and width.
* ``dbnet``  DBNet on MobileNetV3: HardSwish as Add/Clip/Mul/Div, HardSigmoid SE gates
             on GlobalAveragePool, unfused BatchNormalization, Resize and ConvTranspose.
* ``svtr``   SVTR recogniser: conv stem, LayerNorm decomposed into ReduceMean/Sub/Pow/
             Sqrt/Div, MatMul attention with an additive -inf mask, Softmax,
             Transpose/Reshape juggling, AveragePool.
* ``crnn``   CRNN: conv stack, BiLSTMs with Shape-computed views, Gemm; symbolic width.
* ``vad``    Silero-style VAD: reflect Pad, strided STFT Conv1d, LSTM with state, Sigmoid.
* ``quantized``  a float zoo model through onnxruntime's ``quantize_dynamic``:
             DynamicQuantizeLinear + ConvInteger / MatMulInteger + Cast + Mul.

Float families are compared at rtol 1e-4 / atol 1e-5 (conftest), the dynamic ones at two
input sizes through one compiled model. The int8 model is compared integer tensor by
integer tensor (see the quantized section for where onnxruntime itself rounds apart).
The whole file runs in well under a minute.
"""
from __future__ import annotations

import functools
from collections import Counter

import numpy as np
import onnx
import pytest

import mlc
from conftest import ATOL, RTOL, assert_matches_ort
from mlc import zoo
from mlc.runtime.dynamic import DynamicModel

ort = pytest.importorskip("onnxruntime")

FAMILIES = ("yolo", "dbnet", "svtr", "crnn", "vad", "quantized")


@functools.lru_cache(maxsize=None)
def _model(name: str) -> onnx.ModelProto:
    return zoo.build(name)


def _ort(model: onnx.ModelProto, feeds: dict, optimize: bool = True) -> list[np.ndarray]:
    """onnxruntime, one thread; ``optimize=False`` runs the graph node by node as written."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _compare(model: onnx.ModelProto, got: dict, ref: list, rtol: float = RTOL, atol: float = ATOL):
    for out, r in zip(model.graph.output, ref):
        g = got[out.name]
        assert g.shape == r.shape and g.dtype == r.dtype, (out.name, g.shape, r.shape)
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=f"output {out.name}")


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def _attr(node: onnx.NodeProto, name: str, default=None):
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else onnx.helper.get_attribute_value(a)


def _input_dims(model: onnx.ModelProto) -> dict[str, list]:
    return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input}


# ---------------------------------------------------------------- the models are what they claim


@pytest.mark.parametrize("name", FAMILIES)
def test_family_model_is_valid_deterministic_and_well_scaled(name):
    model = _model(name)
    onnx.checker.check_model(model, full_check=True)
    assert zoo.ZOO[name].builder.__doc__ and zoo.ZOO[name].description
    if name != "quantized":    # quantize_dynamic's output is checked by its own test below
        assert zoo.build(name).SerializeToString() == model.SerializeToString()
        assert zoo.build(name, seed=1).SerializeToString() != model.SerializeToString()
    feeds = zoo.example_inputs(name)
    assert list(feeds) == [i.name for i in model.graph.input]
    out = _ort(model, feeds)[0]
    assert np.isfinite(out).all() and out.std() > 1e-2 and np.abs(out).max() < 1e3


def test_yolo_patterns():
    m = _model("yolo")
    ops = Counter(n.op_type for n in m.graph.node)
    assert _input_dims(m) == {"images": [1, 3, "height", "width"]}
    for op in ("Split", "Concat", "Resize", "Shape", "Gather", "Range", "Expand", "ConstantOfShape",
               "Softmax", "Transpose"):
        assert ops[op] > 0, op
    assert "BatchNormalization" not in ops                  # ultralytics fuses BN at export
    prod = _producers(m)
    silu = [n for n in m.graph.node if n.op_type == "Mul" and len(n.input) == 2 and n.input[1] in prod
            and prod[n.input[1]].op_type == "Sigmoid" and prod[n.input[1]].input[0] == n.input[0]]
    assert len(silu) == ops["Sigmoid"] - 1                 # every SiLU; the last Sigmoid scores classes
    resizes = [n for n in m.graph.node if n.op_type == "Resize"]
    assert all(_attr(n, "mode") == b"nearest" and n.input[1] == "" and len(n.input) == 3 for n in resizes)
    pools = [n for n in m.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 3 and all(_attr(n, "kernel_shape") == [5, 5] and _attr(n, "strides") == [1, 1]
                                   for n in pools)
    assert prod[pools[1].input[0]] is pools[0] and prod[pools[2].input[0]] is pools[1]   # SPPF chain
    (dfl,) = [n for n in m.graph.node if n.op_type == "Softmax"]
    assert _attr(dfl, "axis") == 1


def test_dbnet_patterns():
    m = _model("dbnet")
    ops = Counter(n.op_type for n in m.graph.node)
    for op in ("HardSigmoid", "Clip", "Div", "GlobalAveragePool", "ConvTranspose", "Resize",
               "BatchNormalization", "Sigmoid"):
        assert ops[op] > 0, op
    assert "HardSwish" not in ops
    prod = _producers(m)
    # HardSwish as x * Clip(x + 3, 0, 6) / 6
    divs = [n for n in m.graph.node if n.op_type == "Div" and prod[n.input[0]].op_type == "Mul"
            and prod[prod[n.input[0]].input[1]].op_type == "Clip"
            and prod[prod[prod[n.input[0]].input[1]].input[0]].op_type == "Add"]
    assert len(divs) == ops["Div"]
    gates = [n for n in m.graph.node if n.op_type == "HardSigmoid"]
    assert all(_attr(n, "alpha") == pytest.approx(0.2) for n in gates)
    assert len(gates) == ops["GlobalAveragePool"]          # one squeeze-excite gate per pool
    alt = zoo.build("dbnet", hardswish="hardsigmoid")
    assert "Clip" not in Counter(n.op_type for n in alt.graph.node)


def test_svtr_patterns():
    m = _model("svtr")
    ops = Counter(n.op_type for n in m.graph.node)
    assert "LayerNormalization" not in ops
    for op in ("Conv", "ReduceMean", "Sub", "Pow", "Sqrt", "Div", "MatMul", "Softmax", "Transpose",
               "Reshape", "AveragePool", "Gather", "Erf"):
        assert ops[op] > 0, op
    assert ops["ReduceMean"] == 2 * ops["Sqrt"]             # two per decomposed LayerNorm
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    masks = [v for v in inits.values() if v.ndim == 4 and np.isneginf(v).any()]
    assert masks                                          # the local mixers' -inf attention mask
    assert any(0 in v and -1 in v for k, v in inits.items() if v.dtype == np.int64 and v.ndim == 1)


def test_crnn_and_vad_patterns():
    c = _model("crnn")
    ops = Counter(n.op_type for n in c.graph.node)
    assert _input_dims(c) == {"input": [1, 3, 32, "width"]}
    assert ops["LSTM"] == 2 and ops["Gemm"] == 2 and ops["Conv"] == 7 and ops["ConstantOfShape"] == 2
    assert all(_attr(n, "direction") == b"bidirectional" for n in c.graph.node if n.op_type == "LSTM")
    v = _model("vad")
    (pad,) = [n for n in v.graph.node if n.op_type == "Pad"]
    assert _attr(pad, "mode") == b"reflect"
    stft = next(n for n in v.graph.node if n.op_type == "Conv")
    assert _attr(stft, "strides") == [64] and _attr(stft, "kernel_shape") == [256]
    ops = Counter(n.op_type for n in v.graph.node)
    assert ops["LSTM"] == 2 and ops["Sigmoid"] == 1


def test_quantized_patterns():
    m = _model("quantized")
    ops = Counter(n.op_type for n in m.graph.node)
    for op in ("DynamicQuantizeLinear", "ConvInteger", "MatMulInteger", "Cast", "Mul"):
        assert ops[op] > 0, op
    assert "Conv" not in ops                              # every Conv was quantized
    weights = {t.name: t for t in m.graph.initializer}
    qnodes = [n for n in m.graph.node if n.op_type in ("ConvInteger", "MatMulInteger")]
    assert all(weights[n.input[1]].data_type == onnx.TensorProto.INT8 for n in qnodes)


# ---------------------------------------------------------------- static shapes


@pytest.mark.parametrize("name", ["dbnet", "svtr", "vad"])
def test_static_family_matches_onnxruntime(name):
    assert_matches_ort(_model(name), zoo.example_inputs(name))


# ---------------------------------------------------------------- dynamic shapes


def _run_sizes(name: str, sizes: list, feed_for) -> DynamicModel:
    """Run one compiled dynamic model at each size, comparing every output with
    onnxruntime, and check that only new sizes compile."""
    model = _model(name)
    mod = mlc.compile(model, num_threads=1)
    assert isinstance(mod, DynamicModel)
    seen = []
    for i, size in enumerate(sizes):
        feeds = feed_for(size, i)
        got = mod.run(feeds)
        _compare(model, got, _ort(model, feeds))
        if size not in seen:
            seen.append(size)
        assert mod.specializations_compiled == len(seen), (size, mod.specializations_compiled)
    return mod


def test_yolo_dynamic_height_and_width():
    """Three calls, two sizes: the anchors (and the output's anchor count) come from each
    feature map's run-time shape."""
    def feed(hw, i):
        h, w = hw
        return {"images": np.random.default_rng(i).random((1, 3, h, w), dtype=np.float32)}
    mod = _run_sizes("yolo", [(128, 128), (96, 160), (128, 128)], feed)
    out = mod.run(feed((96, 160), 0))["output0"]
    anchors = sum((96 // s) * (160 // s) for s in (8, 16, 32))
    assert out.shape == (1, 84, anchors)
    # the first level's anchor centres are (x + 0.5, y + 0.5) * 8: boxes sit near them
    centres = out[0, :2, :12 * 20].reshape(2, 12, 20)
    assert np.abs(centres[0] - (np.arange(20) + 0.5) * 8).mean() < 64
    assert np.abs(centres[1] - (np.arange(12)[:, None] + 0.5) * 8).mean() < 64
    assert mod.specializations_compiled == 2


def test_crnn_dynamic_width():
    def feed(width, i):
        return {"input": np.random.default_rng(i).uniform(-1, 1, (1, 3, 32, width)).astype(np.float32)}
    mod = _run_sizes("crnn", [100, 160, 160], feed)
    assert mod.run(feed(160, 0))["output"].shape == (160 // 4 + 1, 1, 37)


# ---------------------------------------------------------------- int8, dynamically quantized


def _integer_tensors(model: onnx.ModelProto) -> list[str]:
    """Outputs of every DynamicQuantizeLinear (y, scale, zero point) and of every
    ConvInteger / MatMulInteger (int32 accumulators), in graph order."""
    return [o for n in model.graph.node if n.op_type in ("DynamicQuantizeLinear", "ConvInteger",
                                                         "MatMulInteger") for o in n.output]


@pytest.mark.parametrize("base", ["svtr", pytest.param("dbnet", marks=pytest.mark.slow)])
def test_quantized_integer_tensors_match_onnxruntime(base):
    """Every integer tensor of the int8 model equals onnxruntime's.

    Exactly, with one caveat: a DynamicQuantizeLinear scale is (max - min) / 255 of its
    input, and where that input comes out of a reduction whose summation order onnxruntime
    leaves to its kernel (GlobalAveragePool, the ReduceMeans of a decomposed LayerNorm) it
    may differ by an ulp. A scale may then differ by a few ulps and a quantized value by
    one step (where x / scale lies at a rounding boundary); the accumulators fed the very
    same quantized values must still be equal.
    """
    model = _model("quantized") if base == "svtr" else zoo.build("quantized", base=base)
    feeds = zoo.example_inputs("quantized", base=base)
    names = _integer_tensors(model)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    probe.graph.output.extend(inferred[n] for n in names)
    ref = dict(zip([o.name for o in probe.graph.output], _ort(probe, feeds, optimize=False)))
    got = mlc.compile(probe, num_threads=1).run(feeds)
    producers = _producers(model)
    exact_inputs: set[str] = set(feeds)
    for n in model.graph.node:
        if n.op_type == "DynamicQuantizeLinear":
            y, scale, zp = n.output
            np.testing.assert_allclose(got[scale], ref[scale], rtol=4 * 2.0 ** -23, err_msg=scale)
            if np.array_equal(got[scale], ref[scale]):
                np.testing.assert_array_equal(got[zp], ref[zp], err_msg=zp)
            else:
                assert abs(int(got[zp][()]) - int(ref[zp][()])) <= 1, zp
            steps = np.abs(got[y].astype(np.int32) - ref[y].astype(np.int32))
            assert steps.max() <= 1, f"{y}: {steps.max()} quantization steps apart"
            if steps.max() == 0 and np.array_equal(got[zp], ref[zp]):
                exact_inputs.update((y, zp))
        elif n.op_type in ("ConvInteger", "MatMulInteger"):
            (acc,) = n.output
            activation_inputs = [i for i in n.input[::2] if i in producers]
            if all(i in exact_inputs for i in activation_inputs):
                np.testing.assert_array_equal(got[acc], ref[acc], err_msg=acc)
    # for these seeds everything is in fact bit-identical but some scales
    assert sum(np.array_equal(got[n], ref[n]) for n in names) >= len(names) - 25


def test_quantized_model_matches_onnxruntime():
    """The int8 SVTR end to end. Against onnxruntime run node by node as the graph is
    written, the fp32 tolerance holds. onnxruntime's default session differs from that
    itself -- its optimizer fuses each decomposed LayerNorm into one LayerNormalization
    kernel that rounds differently, and the quantizers after them turn ulps into whole
    quantization steps -- so against it mlc must be no farther off than onnxruntime's own
    two runs are from each other."""
    model = _model("quantized")
    feeds = zoo.example_inputs("quantized")
    got = mlc.compile(model, num_threads=1).run(feeds)
    node_by_node = _ort(model, feeds, optimize=False)
    _compare(model, got, node_by_node)
    optimized = _ort(model, feeds)
    for out, r_opt, r_plain in zip(model.graph.output, optimized, node_by_node):
        own = np.abs(r_opt - r_plain).max()
        assert np.abs(got[out.name] - r_opt).max() <= own + ATOL + RTOL * np.abs(r_opt).max()
