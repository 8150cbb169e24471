"""LSTM, GRU and RNN against onnxruntime: directions, initial states, sequence_lens
(including a zero length), peepholes, input_forget, linear_before_reset, clip, the
activation functions with their alpha / beta, layout=1 (batch-major; onnxruntime has no
such kernel, so the reference runs the transposed layout-0 model), optional outputs,
threads, and the ONNX backend node cases."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import mlc
import mlc.kernels.rnn  # noqa: F401  (registers LSTM, GRU, RNN)
from conftest import ort_run, single_op_model
from _nodecases import node_case_names, run_node_case

NG = {"LSTM": 4, "GRU": 3, "RNN": 1}


def build(op, S, B, I, H, attrs=None, seq_lens=None, init=False, bias=True, peep=False, layout=0,
          outs=("Y", "Y_h", "Y_c"), seed=0, scale=None):
    """(model, feeds, reference outputs) for one recurrent node."""
    rng = np.random.default_rng(seed)
    attrs = dict(attrs or {})
    ng = NG[op]
    D = 2 if attrs.get("direction") == "bidirectional" else 1
    scale = scale if scale is not None else 1.0 / np.sqrt(H)
    batch_major = (lambda a: a.transpose(1, 0, 2)) if layout else (lambda a: a)
    X = rng.standard_normal((S, B, I)).astype(np.float32)
    feeds0 = {"X": X}
    inits = {"W": (rng.standard_normal((D, ng * H, I)) * scale).astype(np.float32),
             "R": (rng.standard_normal((D, ng * H, H)) * scale).astype(np.float32)}
    order = ["X", "W", "R"]
    if bias:
        inits["B"] = (rng.standard_normal((D, 2 * ng * H)) * 0.5).astype(np.float32)
        order.append("B")
    else:
        order.append("")
    if seq_lens is not None:
        feeds0["sl"] = np.array(seq_lens, np.int32)
        order.append("sl")
    else:
        order.append("")
    if init:
        feeds0["h0"] = rng.standard_normal((D, B, H)).astype(np.float32)
        order.append("h0")
        if op == "LSTM":
            feeds0["c0"] = rng.standard_normal((D, B, H)).astype(np.float32)
            order.append("c0")
    elif op == "LSTM":
        order += ["", ""]
    else:
        order.append("")
    if peep:
        inits["P"] = rng.standard_normal((D, 3 * H)).astype(np.float32)
        order.append("P")
    while order and order[-1] == "":
        order.pop()
    outs = [o for o in outs if not (o == "Y_c" and op != "LSTM")]
    a = dict(hidden_size=H, **attrs)

    def make(feeds, extra, opset):
        m = single_op_model(op, feeds, {o: None for o in outs}, {**a, **extra}, initializers=inits,
                            input_order=order, opset=opset)
        return onnx.shape_inference.infer_shapes(m, strict_mode=True)

    m0 = make(feeds0, {}, 17)
    ref = ort_run(m0, feeds0)
    if not layout:
        return m0, feeds0, dict(zip(outs, ref))
    # batch-major: the same computation with X, initial states and outputs transposed
    feeds = {k: (batch_major(v) if v.ndim == 3 else v) for k, v in feeds0.items()}
    m = make(feeds, {"layout": 1}, 14)
    ref = [r.transpose(2, 0, 1, 3) if r.ndim == 4 else r.transpose(1, 0, 2) for r in ref]
    return m, feeds, dict(zip(outs, ref))


def check(m, feeds, ref, num_threads=1, rtol=1e-4, atol=2e-5):
    mod = mlc.compile(m, num_threads=num_threads)
    got = mod.run(feeds)
    for name, r in ref.items():
        assert got[name].shape == r.shape, name
        np.testing.assert_allclose(got[name], r, rtol=rtol, atol=atol, err_msg=name)
    return mod


CASES = [
    ("RNN", 5, 1, 3, 4, {}, {}),
    ("LSTM", 5, 1, 3, 4, {}, {}),
    ("GRU", 5, 1, 3, 4, {}, {}),
    ("GRU", 5, 1, 3, 4, {"linear_before_reset": 1}, {}),
    ("LSTM", 7, 3, 5, 17, {"direction": "bidirectional"}, dict(init=True, peep=True)),
    ("LSTM", 7, 3, 5, 17, {"direction": "reverse"}, dict(seq_lens=[7, 3, 5], init=True)),
    ("GRU", 7, 3, 5, 20, {"direction": "bidirectional"}, dict(seq_lens=[2, 7, 5], init=True)),
    ("GRU", 6, 2, 7, 33, {"direction": "reverse", "linear_before_reset": 1}, dict(seq_lens=[6, 4])),
    ("RNN", 6, 2, 5, 33, {"direction": "bidirectional"}, dict(seq_lens=[6, 1], init=True, layout=1)),
    ("LSTM", 6, 2, 5, 33, {"direction": "bidirectional"}, dict(seq_lens=[4, 6], init=True, layout=1, peep=True)),
    ("GRU", 6, 3, 5, 16, {"direction": "bidirectional"}, dict(layout=1, init=True)),
    ("LSTM", 6, 2, 5, 9, {"clip": 0.5, "input_forget": 1}, dict(scale=1.0)),
    ("GRU", 6, 2, 5, 9, {"clip": 0.3, "linear_before_reset": 1}, dict(scale=1.0)),
    ("RNN", 6, 2, 5, 9, {"clip": 0.2, "direction": "bidirectional"}, dict(scale=1.0)),
    ("LSTM", 3, 3, 3, 5, {"direction": "bidirectional"}, dict(seq_lens=[0, 3, 1], init=True)),
    ("GRU", 3, 2, 3, 5, {"direction": "bidirectional"}, dict(seq_lens=[0, 3], init=True)),
    ("RNN", 3, 2, 3, 5, {}, dict(seq_lens=[3, 0], init=True)),
    ("LSTM", 4, 2, 6, 10, {}, dict(bias=False, outs=("Y_h",))),
    ("LSTM", 4, 2, 6, 10, {}, dict(outs=("Y_c",))),
    ("GRU", 4, 2, 6, 10, {"direction": "bidirectional"}, dict(outs=("Y_h",))),
    # activations (alpha / beta consumed in order; defaults where none is left)
    ("LSTM", 6, 2, 5, 9, {"activations": ["HardSigmoid", "LeakyRelu", "ScaledTanh"],
                          "activation_alpha": [0.3, 0.2, 1.5], "activation_beta": [0.4, 0.7]}, {}),
    ("LSTM", 6, 2, 5, 9, {"activations": ["HardSigmoid", "Relu", "Tanh"]}, {}),
    ("GRU", 6, 2, 5, 9, {"direction": "bidirectional",
                         "activations": ["Sigmoid", "Relu", "HardSigmoid", "Tanh"]}, {}),
    ("RNN", 6, 2, 5, 9, {"activations": ["Relu"]}, {}),
    ("RNN", 6, 2, 5, 9, {"activations": ["Affine"], "activation_alpha": [0.5], "activation_beta": [0.1]}, {}),
    ("RNN", 6, 2, 5, 9, {"activations": ["Elu"], "activation_alpha": [0.5]}, {}),
    ("RNN", 6, 2, 5, 9, {"activations": ["ThresholdedRelu"], "activation_alpha": [0.2]}, {}),
    ("RNN", 6, 2, 5, 9, {"activations": ["Softsign"]}, {}),
    ("RNN", 6, 2, 5, 9, {"activations": ["Softplus"]}, {}),
    ("RNN", 6, 2, 5, 9, {"direction": "bidirectional", "activations": ["Sigmoid", "LeakyRelu"]}, {}),
    # sizes of the target models: several register blocks, hidden sizes not a lane multiple
    ("LSTM", 9, 1, 40, 96, {"direction": "bidirectional"}, {}),
    ("GRU", 11, 1, 24, 70, {}, {}),
]


@pytest.mark.parametrize("op,S,B,I,H,attrs,kw", CASES,
                         ids=[f"{i}-{c[0]}-{c[1]}x{c[2]}x{c[3]}x{c[4]}" for i, c in enumerate(CASES)])
def test_recurrent(op, S, B, I, H, attrs, kw):
    m, feeds, ref = build(op, S, B, I, H, attrs, **kw)
    check(m, feeds, ref)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_two_threads(op):
    m, feeds, ref = build(op, 12, 3, 16, 40, {"direction": "bidirectional"}, seq_lens=[12, 5, 9], init=True)
    check(m, feeds, ref, num_threads=2)


@pytest.mark.parametrize("op,H,attrs", [
    ("LSTM", 7, {"direction": "bidirectional"}),
    ("GRU", 32, {"linear_before_reset": 1}),            # z, r and h columns adjoin (2H = a block)
    ("GRU", 9, {"linear_before_reset": 1, "direction": "reverse"}),
    ("GRU", 32, {}),
    ("RNN", 5, {}),
])
def test_runtime_weights(op, H, attrs):
    """W, R, B (and P) fed at run time: re-laid out by stages of the kernel."""
    m, feeds, ref = build(op, 5, 2, 4, H, attrs, init=True, peep=op == "LSTM", seq_lens=[5, 3])
    g = m.graph
    for init in list(g.initializer):
        arr = onnx.numpy_helper.to_array(init)
        feeds[init.name] = arr
        g.input.append(onnx.helper.make_tensor_value_info(init.name, onnx.TensorProto.FLOAT, arr.shape))
    del g.initializer[:]
    check(m, feeds, ref)
    # and the same with constants: GRU column segments adjoin or not
    m2, feeds2, ref2 = build(op, 5, 2, 4, H, attrs, init=True, peep=op == "LSTM", seq_lens=[5, 3])
    check(m2, feeds2, ref2)


def test_float64_unsupported():
    X = np.zeros((2, 1, 3))
    m = single_op_model("RNN", {"X": X}, {"Y": None}, {"hidden_size": 4},
                        initializers={"W": np.zeros((1, 4, 3)), "R": np.zeros((1, 4, 4))})
    with pytest.raises(mlc.UnsupportedError, match="float32 only"):
        mlc.compile(onnx.shape_inference.infer_shapes(m))


def test_unknown_activation():
    m, feeds, _ = build("RNN", 3, 1, 2, 3, {"activations": ["Tanh"]})
    for a in m.graph.node[0].attribute:
        if a.name == "activations":
            a.strings[0] = b"Swish"
    with pytest.raises(mlc.UnsupportedError, match="activation 'Swish'"):
        mlc.compile(m)


NODE_CASES = node_case_names(r"test_(lstm|gru|rnn|simple_rnn)_.*")


@pytest.mark.parametrize("name", NODE_CASES)
def test_node_cases(name):
    run_node_case(name, rtol=1e-4, atol=1e-5)
