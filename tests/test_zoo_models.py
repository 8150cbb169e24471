"""Tests of mlc.zoo: the offline-built reference models (ResNet-18, MobileNetV2, BERT, MLP;
the model families are in test_model_families.py).

Each full-size model is built once per session (module cache); the whole file runs in a
few seconds.
"""

from __future__ import annotations

import functools
import math
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import numpy_helper, shape_inference

from mlc import zoo
from mlc.zoo.flops import count_flops

ort = pytest.importorskip("onnxruntime")

# (name, builder kwargs, expected output shape): every full-size model plus reduced ones.
CASES = [
    ("resnet18", {}, (1, 1000)),
    ("resnet18", {"image": 64, "num_classes": 100, "batch": 2}, (2, 100)),
    ("mobilenetv2", {}, (1, 1000)),
    ("mobilenetv2", {"image": 64, "num_classes": 10}, (1, 10)),
    ("bert", {}, (1, 128, 256)),
    ("bert", {"layers": 1, "seq": 32, "vocab": 1000}, (1, 32, 256)),
    ("bert", {"layers": 2, "hidden": 64, "heads": 2, "ffn": 128, "seq": 16, "batch": 2,
              "vocab": 500}, (2, 16, 64)),
    ("mlp", {}, (1, 10)),
    ("mlp", {"sizes": (32, 16, 4), "batch": 3}, (3, 4)),
]
IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in kw.items()) or 'full'}" for n, kw, _ in CASES]
OUTPUT_NAMES = {"resnet18": "logits", "mobilenetv2": "logits", "bert": "last_hidden_state",
                "mlp": "logits"}


def _key(kwargs: dict) -> tuple:
    return tuple(sorted(kwargs.items()))


@functools.lru_cache(maxsize=None)
def _model(name: str, key: tuple) -> onnx.ModelProto:
    return zoo.build(name, **dict(key))


def model(name: str, **kwargs) -> onnx.ModelProto:
    return _model(name, _key(kwargs))


@functools.lru_cache(maxsize=None)
def _outputs(name: str, key: tuple) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(_model(name, key).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, zoo.example_inputs(name, **dict(key)))


def run(name: str, feed: dict[str, np.ndarray] | None = None, **kwargs) -> list[np.ndarray]:
    """Outputs of onnxruntime (1 thread) on the model, with the example feed by default."""
    if feed is None:
        return _outputs(name, _key(kwargs))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model(name, **kwargs).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


# ---------------------------------------------------------------- registry


def test_registry_lists_the_models():
    # the model families (yolo ... quantized) are tested in test_model_families.py
    assert set(zoo.ZOO) == {"resnet18", "mobilenetv2", "bert", "mlp",
                            "yolo", "dbnet", "svtr", "crnn", "vad", "quantized"}
    for name, entry in zoo.ZOO.items():
        assert entry.name == name
        assert entry.description
        assert entry.builder.__doc__


def test_unknown_model_and_unknown_keyword_are_rejected():
    with pytest.raises(KeyError, match="unknown zoo model 'resnet50'"):
        zoo.build("resnet50")
    with pytest.raises(TypeError):
        zoo.example_inputs("mlp", depth=3)
    with pytest.raises(TypeError):
        zoo.build("resnet18", widht=2)


# ---------------------------------------------------------------- validity


@pytest.mark.parametrize("name, kwargs, out_shape", CASES, ids=IDS)
def test_checker_full_check(name, kwargs, out_shape):
    m = model(name, **kwargs)
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == 8
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]


@pytest.mark.parametrize("name, kwargs, out_shape", CASES, ids=IDS)
def test_shape_inference_gives_output_shape(name, kwargs, out_shape):
    inferred = shape_inference.infer_shapes(model(name, **kwargs), strict_mode=True)
    (out,) = inferred.graph.output
    assert out.name == OUTPUT_NAMES[name]
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert tuple(d.dim_value for d in out.type.tensor_type.shape.dim) == out_shape
    # every intermediate value got a fully static shape too
    for vi in inferred.graph.value_info:
        assert all(d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim), vi.name


@pytest.mark.parametrize("name, kwargs, out_shape", CASES, ids=IDS)
def test_onnxruntime_output_is_finite_and_not_degenerate(name, kwargs, out_shape):
    (out,) = run(name, **kwargs)
    assert out.shape == out_shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.std() > 1e-3
    assert np.abs(out).max() < 1e3        # well-scaled, not just finite


@pytest.mark.parametrize("name, kwargs, out_shape", CASES, ids=IDS)
def test_example_inputs_match_model_inputs(name, kwargs, out_shape):
    feed = zoo.example_inputs(name, **kwargs)
    inputs = model(name, **kwargs).graph.input
    assert list(feed) == [i.name for i in inputs]
    for i in inputs:
        tt = i.type.tensor_type
        assert feed[i.name].dtype == onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        assert feed[i.name].shape == tuple(d.dim_value for d in tt.shape.dim)
    again = zoo.example_inputs(name, **kwargs)
    other = zoo.example_inputs(name, seed=1, **kwargs)
    first = next(iter(feed))
    assert all(np.array_equal(feed[k], again[k]) for k in feed)
    assert not np.array_equal(feed[first], other[first])


def test_input_and_output_names():
    def names(m):
        return [i.name for i in m.graph.input], [o.name for o in m.graph.output]
    assert names(model("resnet18")) == (["input"], ["logits"])
    assert names(model("mobilenetv2")) == (["input"], ["logits"])
    assert names(model("bert")) == (["input_ids", "attention_mask"], ["last_hidden_state"])
    assert names(model("mlp")) == (["x"], ["logits"])


def test_bert_example_ids_are_in_vocabulary():
    feed = zoo.example_inputs("bert")
    assert feed["input_ids"].dtype == np.int64
    assert 0 <= feed["input_ids"].min() and feed["input_ids"].max() < 30522
    assert set(np.unique(feed["attention_mask"])) == {0.0, 1.0}


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name, kwargs", [
    ("resnet18", {"image": 32, "num_classes": 10}),
    ("mobilenetv2", {"image": 32, "num_classes": 10}),
    ("bert", {"layers": 1, "seq": 16, "vocab": 100}),
    ("mlp", {}),
])
def test_builders_are_deterministic(name, kwargs):
    a = zoo.build(name, **kwargs).SerializeToString()
    b = zoo.build(name, **kwargs).SerializeToString()
    c = zoo.build(name, seed=1, **kwargs).SerializeToString()
    assert a == b
    assert a != c and len(a) == len(c)


# ---------------------------------------------------------------- FLOPs


def test_mlp_flops_exact():
    assert zoo.model_flops("mlp") == 2 * (784 * 1024 + 1024 * 1024 + 1024 * 10)
    assert zoo.ZOO["mlp"].flops == zoo.model_flops("mlp")
    assert zoo.model_flops("mlp", sizes=(8, 4), batch=5) == 2 * 5 * 8 * 4


def test_resnet18_flops_match_published():
    # torchvision: 1.81-1.82 G multiply-adds at 224x224 -> ~3.64 GFLOP
    assert zoo.model_flops("resnet18") == pytest.approx(3.64e9, rel=0.05)


def test_mobilenetv2_flops_match_published():
    # torchvision: 0.30 G multiply-adds at 224x224 (depthwise convs counted per group)
    assert zoo.model_flops("mobilenetv2") == pytest.approx(0.60e9, rel=0.05)


def test_bert_flops_analytic():
    L, H, F, S = 4, 256, 1024, 128
    macs = L * (4 * S * H * H + 2 * S * S * H + 2 * S * H * F)
    assert zoo.model_flops("bert") == 2 * macs


def test_model_flops_is_independent_of_seed_and_counts_the_built_model():
    assert zoo.model_flops("resnet18", image=64, seed=3) == zoo.model_flops("resnet18", image=64)
    assert zoo.model_flops("resnet18", image=64) == count_flops(model("resnet18", image=64, num_classes=1000))


# ---------------------------------------------------------------- architecture


def _params(m: onnx.ModelProto) -> int:
    """Trainable parameters the way torchvision counts them (no BN running stats)."""
    return sum(math.prod(t.dims) for t in m.graph.initializer
               if t.name.endswith((".weight", ".bias")))


def _ops(m: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in m.graph.node)


def test_resnet18_architecture():
    m = model("resnet18")
    assert _params(m) == 11_689_512        # torchvision.models.resnet18().parameters()
    assert _ops(m) == Counter({"Conv": 20, "BatchNormalization": 20, "Relu": 17, "Add": 8,
                               "MaxPool": 1, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1})
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert all(len(n.input) == 2 for n in convs)           # bias-free convs before BN
    assert [n.op_type for n in m.graph.node[-3:]] == ["GlobalAveragePool", "Flatten", "Gemm"]
    assert sum(1 for n in convs if "downsample" in n.name) == 3
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    assert all((v > 0).all() for k, v in inits.items() if k.endswith("running_var"))


def test_mobilenetv2_architecture():
    m = model("mobilenetv2")
    assert _params(m) == 3_504_872        # torchvision.models.mobilenet_v2().parameters()
    ops = _ops(m)
    assert ops == Counter({"Conv": 52, "BatchNormalization": 52, "Clip": 35, "Add": 10,
                           "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1})
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Clip":               # ReLU6, opset-11+ form: min/max are inputs
            assert len(n.input) == 3 and not n.attribute
            assert (inits[n.input[1]], inits[n.input[2]]) == (0.0, 6.0)
    groups = {n.name: next(a.i for a in n.attribute if a.name == "group")
              for n in m.graph.node if n.op_type == "Conv"}
    depthwise = [g for g in groups.values() if g > 1]
    assert len(depthwise) == 17                              # one per inverted residual
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    last = convs[-1]
    assert inits[last.input[1]].shape == (1280, 320, 1, 1)


def test_bert_architecture():
    m = model("bert")
    ops = _ops(m)
    assert ops["LayerNormalization"] == 2 * 4 + 1
    assert ops["Softmax"] == 4 and ops["Erf"] == 4 and ops["MatMul"] == 4 * 8
    assert ops["Gather"] == 3
    for n in m.graph.node:
        if n.op_type == "Softmax":
            assert onnx.helper.get_attribute_value(n.attribute[0]) == -1
    # erf-GELU exactly as exported: Div -> Erf -> Add -> Mul -> Mul
    seq = [n.op_type for n in m.graph.node]
    i = seq.index("Erf")
    assert seq[i - 1:i + 4] == ["Div", "Erf", "Add", "Mul", "Mul"]
    shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
              for vi in shape_inference.infer_shapes(m).graph.value_info}
    scores = [shapes[n.output[0]] for n in m.graph.node if n.op_type == "Softmax"]
    assert scores == [(1, 4, 128, 128)] * 4
    # weights ~ N(0, 0.02) as BERT initializes them
    w = numpy_helper.to_array(next(t for t in m.graph.initializer
                                   if t.name == "encoder.layer.0.attention.self.query.weight"))
    assert w.shape == (256, 256) and abs(w.std() - 0.02) < 0.002


def test_mlp_matches_numpy_reference():
    m = model("mlp")
    w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    assert [n.op_type for n in m.graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    x = zoo.example_inputs("mlp")["x"]
    h = x
    for i in range(3):
        h = h @ w[f"layers.{2 * i}.weight"].T + w[f"layers.{2 * i}.bias"]   # transB=1
        if i < 2:
            h = np.maximum(h, 0)
    (out,) = run("mlp")
    np.testing.assert_allclose(out, h, rtol=1e-4, atol=1e-4)


def test_bert_attention_mask_hides_padding():
    kwargs = {"layers": 1, "seq": 32, "vocab": 1000}
    feed = zoo.example_inputs("bert", **kwargs)
    mask = feed["attention_mask"][0].astype(bool)
    assert not mask.all()
    (base,) = run("bert", **kwargs)
    # changing tokens at padded positions leaves every attended position unchanged ...
    changed = dict(feed, input_ids=feed["input_ids"].copy())
    changed["input_ids"][0, ~mask] = (changed["input_ids"][0, ~mask] + 1) % 1000
    (out,) = run("bert", changed, **kwargs)
    np.testing.assert_allclose(out[0, mask], base[0, mask], atol=1e-5)
    assert not np.allclose(out[0, ~mask], base[0, ~mask])
    # ... while attending to everything changes them: the mask input is really used
    (full,) = run("bert", dict(feed, attention_mask=np.ones_like(feed["attention_mask"])), **kwargs)
    assert not np.allclose(full[0, mask], base[0, mask])
