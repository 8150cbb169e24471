"""Shared machinery for the zoo's model builders.

:class:`GraphBuilder` accumulates ONNX nodes and initializers, gives every value, node
and parameter a unique name, tracks the static shape and dtype of every value it makes
(so a layer such as :meth:`GraphBuilder.conv` only needs the *output* channel count),
and draws every random weight from one seeded :class:`numpy.random.Generator`, so that
a builder called twice with the same seed produces byte-identical models.

To keep activations O(1) through deep networks the builder also carries a rough estimate
of every activation's mean and mean square (:class:`Moments`, :meth:`GraphBuilder.moments`):
He-normal layers scale the mean square by their gain, ReLU is treated as acting on a
Gaussian, residual Adds sum, and :meth:`GraphBuilder.bn` sets its running statistics from
the estimate -- BatchNorm statistics that roughly match the activations, as in a trained
network, rather than arbitrary ones that would let the residual stream grow unchecked.

Naming follows what ``torch.onnx.export`` emits: parameters are named like the PyTorch
``state_dict`` (``layer1.0.conv1.weight``, ``layer1.0.bn1.running_var``), nodes by
module path and op (``/layer1.0/conv1/Conv``) and their outputs ``<node>_output_0``.
Use :meth:`GraphBuilder.scope` to enter a sub-module.

Every layer is written the way the PyTorch exporter writes it (opset 17): Conv without
a bias when followed by BatchNormalization, BatchNormalization left unfused (eval mode,
``epsilon=1e-5, momentum=0.9``), ``nn.Linear`` on 2-D input as ``Gemm(transB=1)`` and on
3-D input as ``MatMul`` + ``Add``, ReLU6 as ``Clip`` with min/max given as inputs, and so on.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: Opset the zoo's models are written for (``LayerNormalization`` needs 17).
OPSET = 17
#: IR version ``torch.onnx.export`` writes for opset 17; every onnxruntime since 1.12 reads it.
IR_VERSION = 8

Shape = tuple[int, ...]


class Moments(NamedTuple):
    """Rough estimate of an activation's statistics over its elements."""

    mean: float = 0.0
    mean_square: float = 1.0

    def relu(self) -> Moments:
        """Moments of ReLU(x), taking x ~ N(mean, mean_square - mean^2)."""
        m = self.mean
        sd = math.sqrt(max(self.mean_square - m * m, 1e-12))
        a = m / sd
        cdf = 0.5 * (1.0 + math.erf(a / math.sqrt(2.0)))
        pdf = math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
        return Moments(m * cdf + sd * pdf, self.mean_square * cdf + m * sd * pdf)

    def scaled(self, gain: float) -> Moments:
        """Moments after a zero-mean random linear map of the given He gain."""
        return Moments(0.0, gain * self.mean_square)


def _broadcast(*shapes: Shape) -> Shape:
    return tuple(int(d) for d in np.broadcast_shapes(*shapes))


def _conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


class GraphBuilder:
    """Accumulates one ONNX graph; every ``x`` argument and return value is a value name.

    Args:
        name: the graph's name.
        seed: seed of the Generator (:attr:`rng`) every weight is drawn from.
        dtype: the floating-point type of activations and weights.
    """

    def __init__(self, name: str, *, seed: int = 0, dtype: type = np.float32) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.dtype = np.dtype(dtype)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._shapes: dict[str, Shape] = {}
        self._dtypes: dict[str, np.dtype] = {}
        self._moments: dict[str, Moments] = {}
        self._used: set[str] = set()
        self._scope: list[str] = []
        self._consts: dict[tuple, str] = {}
        self._anon = 0

    # ------------------------------------------------------------------ naming

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Enter sub-module ``name``; parameters made inside are named ``<scope>.<name>.*``."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    def _fresh(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``... whichever is unused; reserves it."""
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def _module(self, name: str | None, op: str) -> str:
        """Local name of a layer with parameters; unnamed layers get ``<op>_<n>``."""
        if name is None:
            self._anon += 1
            name = f"{op}_{self._anon}"
        return name

    # ------------------------------------------------------------------ values

    def shape(self, x: str) -> Shape:
        """Static shape of value ``x``."""
        return self._shapes[x]

    def dtype_of(self, x: str) -> np.dtype:
        """Element type of value ``x``."""
        return self._dtypes[x]

    def moments(self, x: str) -> Moments:
        """Rough estimate of the mean and mean square of value ``x`` (0, 1 for inputs)."""
        return self._moments.get(x, Moments())

    def _record(self, name: str, shape: Sequence[int], dtype: np.dtype) -> str:
        self._shapes[name] = tuple(int(d) for d in shape)
        self._dtypes[name] = np.dtype(dtype)
        return name

    def input(self, name: str, shape: Sequence[int], dtype: type = np.float32) -> str:
        """Declare a graph input."""
        name = self._fresh(name)
        self.inputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(shape)))
        return self._record(name, shape, dtype)

    def output(self, x: str, name: str) -> str:
        """Make value ``x`` a graph output called ``name`` (renaming it where it is made)."""
        if name != x:
            if name in self._used:
                raise ValueError(f"output name {name!r} is already taken")
            self._used.add(name)
            for node in self.nodes:
                for seq in (node.input, node.output):
                    for i, v in enumerate(seq):
                        if v == x:
                            seq[i] = name
            self._record(name, self._shapes[x], self._dtypes[x])
            self._moments[name] = self.moments(x)
        self.outputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(self._dtypes[name]), list(self._shapes[name])))
        return name

    def param(self, name: str, array: np.ndarray) -> str:
        """A module parameter (initializer) named ``<scope>.<name>`` like a state_dict key."""
        full = self._fresh(".".join([*self._scope, name]))
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), full))
        return self._record(full, array.shape, array.dtype)

    def const(self, value, dtype: type | None = None) -> str:
        """A constant initializer (a scalar, or any array); equal constants are shared."""
        arr = np.asarray(value, dtype=dtype if dtype is not None else self.dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self._fresh(f"onnx::Constant_{len(self._consts)}")
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._record(name, arr.shape, arr.dtype)
            self._consts[key] = name
        return self._consts[key]

    def node(self, op: str, inputs: Sequence[str], shape: Sequence[int], *,
             dtype: type | np.dtype | None = None, name: str | None = None,
             moments: Moments | None = None, **attrs) -> str:
        """Append one single-output node; the caller states the output's shape (and dtype,
        by default that of the first input) and its :class:`Moments` (by default those of
        the first input). ``name`` is the local module name used in the node's name;
        ``attrs`` are the ONNX attributes."""
        path = "".join(f"/{part}" for part in [*self._scope, *([name] if name else [])])
        node_name = self._fresh(f"{path}/{op}")
        out = self._fresh(f"{node_name}_output_0")
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=node_name, **attrs))
        self._moments[out] = self.moments(inputs[0]) if moments is None else moments
        return self._record(out, shape, dtype if dtype is not None else self._dtypes[inputs[0]])

    # ------------------------------------------------------------------ weight init

    def normal(self, shape: Sequence[int], std: float, mean: float = 0.0) -> np.ndarray:
        """Samples of N(mean, std^2) in the builder's dtype."""
        return (mean + std * self.rng.standard_normal(tuple(shape))).astype(self.dtype)

    def he_normal(self, shape: Sequence[int], fan_in: int, gain: float = 2.0) -> np.ndarray:
        """Kaiming-normal weights, N(0, gain / fan_in): keep activations O(1) through ReLUs."""
        return self.normal(shape, math.sqrt(gain / fan_in))

    # ------------------------------------------------------------------ elementwise

    def _binary(self, op: str, a: str, b: str, name: str | None, **kw) -> str:
        return self.node(op, [a, b], _broadcast(self.shape(a), self.shape(b)), name=name, **kw)

    def _operand(self, v) -> str:
        return v if isinstance(v, str) else self.const(v)

    def add(self, a, b, name: str | None = None) -> str:
        """``a + b``; either side may be a Python number (becomes a shared constant).
        Moments add as for independent terms (as in a residual connection)."""
        a, b = self._operand(a), self._operand(b)
        ma, mb = self.moments(a), self.moments(b)
        return self._binary("Add", a, b, name, moments=Moments(
            ma.mean + mb.mean, ma.mean_square + mb.mean_square + 2 * ma.mean * mb.mean))

    def sub(self, a, b, name: str | None = None) -> str:
        return self._binary("Sub", self._operand(a), self._operand(b), name)

    def mul(self, a, b, name: str | None = None) -> str:
        return self._binary("Mul", self._operand(a), self._operand(b), name)

    def div(self, a, b, name: str | None = None) -> str:
        return self._binary("Div", self._operand(a), self._operand(b), name)

    def unary(self, op: str, x: str, name: str | None = None, **attrs) -> str:
        """A shape-preserving one-input op (Relu, Erf, Softmax, ...)."""
        return self.node(op, [x], self.shape(x), name=name, **attrs)

    def relu(self, x: str, name: str | None = None) -> str:
        return self.node("Relu", [x], self.shape(x), name=name, moments=self.moments(x).relu())

    def relu6(self, x: str, name: str | None = None) -> str:
        """``nn.ReLU6`` as the exporter writes it: ``Clip(x, 0, 6)``, min/max as inputs."""
        return self.node("Clip", [x, self.const(0.0), self.const(6.0)], self.shape(x), name=name,
                         moments=self.moments(x).relu())

    def softmax(self, x: str, axis: int = -1, name: str | None = None) -> str:
        return self.unary("Softmax", x, name, axis=axis)

    def gelu(self, x: str, name: str | None = None) -> str:
        """Exact (erf) GELU as exported from ``nn.GELU()`` / HF ``gelu``:
        ``x * 0.5 * (1 + erf(x / sqrt(2)))`` -> Div, Erf, Add, Mul, Mul."""
        t = self.div(x, math.sqrt(2.0), name)
        t = self.unary("Erf", t, name)
        t = self.add(t, 1.0, name)
        t = self.mul(x, t, name)
        return self.mul(t, 0.5, name)

    # ------------------------------------------------------------------ shape ops

    def reshape(self, x: str, shape: Sequence[int], name: str | None = None) -> str:
        """Reshape to a constant, fully static ``shape``."""
        shape = tuple(int(d) for d in shape)
        if math.prod(shape) != math.prod(self.shape(x)):
            raise ValueError(f"cannot reshape {self.shape(x)} to {shape}")
        return self.node("Reshape", [x, self.const(shape, np.int64)], shape, name=name)

    def transpose(self, x: str, perm: Sequence[int], name: str | None = None) -> str:
        s = self.shape(x)
        return self.node("Transpose", [x], [s[p] for p in perm], name=name, perm=list(perm))

    def unsqueeze(self, x: str, axes: Sequence[int], name: str | None = None) -> str:
        """Unsqueeze with ``axes`` as an input (opset >= 13)."""
        out = list(self.shape(x))
        rank = len(out) + len(axes)
        for a in sorted(a % rank for a in axes):
            out.insert(a, 1)
        return self.node("Unsqueeze", [x, self.const(list(axes), np.int64)], out, name=name)

    def flatten(self, x: str, axis: int = 1, name: str | None = None) -> str:
        s = self.shape(x)
        return self.node("Flatten", [x], [math.prod(s[:axis]), math.prod(s[axis:])],
                         name=name, axis=axis)

    def gather(self, table: str, indices: str, axis: int = 0, name: str | None = None) -> str:
        t, i = self.shape(table), self.shape(indices)
        return self.node("Gather", [table, indices], t[:axis] + i + t[axis + 1:],
                         dtype=self.dtype_of(table), name=name, axis=axis)

    # ------------------------------------------------------------------ CNN layers

    def conv(self, x: str, out_ch: int, k: int, stride: int = 1, pad: int = 0,
             groups: int = 1, *, bias: bool = False, gain: float = 2.0,
             name: str | None = None) -> str:
        """``nn.Conv2d`` (NCHW, square kernel): He-normal weight of fan-in
        ``in_ch / groups * k * k``; a bias only if ``bias`` (none before a BatchNorm)."""
        n, c, h, w = self.shape(x)
        if c % groups or out_ch % groups:
            raise ValueError(f"channels {c}->{out_ch} not divisible by groups={groups}")
        mod = self._module(name, "conv")
        fan_in = c // groups * k * k
        with self.scope(mod):
            ins = [x, self.param("weight", self.he_normal((out_ch, c // groups, k, k), fan_in, gain))]
            if bias:
                ins.append(self.param("bias", self.normal((out_ch,), 0.01)))
        return self.node("Conv", ins, (n, out_ch, _conv_out(h, k, stride, pad), _conv_out(w, k, stride, pad)),
                         name=mod, moments=self.moments(x).scaled(gain), dilations=[1, 1], group=groups,
                         kernel_shape=[k, k], pads=[pad] * 4, strides=[stride, stride])

    def bn(self, x: str, eps: float = 1e-5, name: str | None = None) -> str:
        """``nn.BatchNorm2d`` in eval mode, unfused, with random but sane parameters:
        gamma ~ N(1, 0.1^2), beta ~ N(0, 0.1^2), running mean and variance (positive)
        within noise of the estimated :class:`Moments` of ``x``, so the output is roughly
        normalized."""
        c = self.shape(x)[1]
        mean, ms = self.moments(x)
        var = max(ms - mean * mean, 1e-3)
        mod = self._module(name, "bn")
        with self.scope(mod):
            ins = [x,
                   self.param("weight", self.normal((c,), 0.1, mean=1.0)),
                   self.param("bias", self.normal((c,), 0.1)),
                   self.param("running_mean", self.normal((c,), 0.1 * math.sqrt(var), mean=mean)),
                   self.param("running_var", (var * np.exp(self.rng.uniform(-0.22, 0.22, (c,))))
                              .astype(self.dtype))]
        return self.node("BatchNormalization", ins, self.shape(x), name=mod, moments=Moments(0.0, 1.0),
                         epsilon=eps, momentum=0.9)

    def maxpool(self, x: str, k: int, stride: int, pad: int = 0, name: str | None = None) -> str:
        """MaxPool (square window). The max of a 3x3 window of ReLU'd N(0, 1) values has
        about 5x their mean square and a std of ~0.4x its rms; those factors are the
        estimate used for any window."""
        n, c, h, w = self.shape(x)
        ms = 5.0 * self.moments(x).mean_square
        return self.node("MaxPool", [x], (n, c, _conv_out(h, k, stride, pad), _conv_out(w, k, stride, pad)),
                         name=name, moments=Moments(math.sqrt(0.84 * ms), ms), ceil_mode=0,
                         kernel_shape=[k, k], pads=[pad] * 4, strides=[stride, stride])

    def global_avg_pool(self, x: str, name: str | None = None) -> str:
        """``AdaptiveAvgPool2d((1, 1))`` as exported: GlobalAveragePool."""
        n, c = self.shape(x)[:2]
        return self.node("GlobalAveragePool", [x], (n, c, 1, 1), name=name)

    # ------------------------------------------------------------------ dense layers

    def gemm(self, x: str, out_features: int, *, gain: float = 1.0,
             name: str | None = None) -> str:
        """``nn.Linear`` on a 2-D input as exported: ``Gemm(x, W[out,in], b, transB=1)``,
        He-normal weight (``gain=2`` before a ReLU, 1 for a final projection)."""
        n, k = self.shape(x)
        mod = self._module(name, "linear")
        with self.scope(mod):
            ins = [x, self.param("weight", self.he_normal((out_features, k), k, gain)),
                   self.param("bias", self.normal((out_features,), 0.01))]
        return self.node("Gemm", ins, (n, out_features), name=mod, moments=self.moments(x).scaled(gain),
                         alpha=1.0, beta=1.0, transB=1)

    def matmul(self, a: str, b: str, name: str | None = None,
               moments: Moments | None = None) -> str:
        """``a @ b`` between two values (numpy broadcasting over leading dimensions)."""
        sa, sb = self.shape(a), self.shape(b)
        if sa[-1] != sb[-2]:
            raise ValueError(f"matmul {sa} @ {sb}: inner dimensions differ")
        out = _broadcast(sa[:-2], sb[:-2]) + (sa[-2], sb[-1])
        return self.node("MatMul", [a, b], out, name=name, moments=moments)

    def linear(self, x: str, out_features: int, *, std: float = 0.02,
               name: str | None = None) -> str:
        """``nn.Linear`` on an N-D (N > 2) input as exported: ``MatMul(x, W^T) + b`` with
        the weight stored pre-transposed [in, out]; weights ~ N(0, std^2) (BERT init)."""
        k = self.shape(x)[-1]
        mod = self._module(name, "linear")
        with self.scope(mod):
            w = self.param("weight", self.normal((k, out_features), std))
            b = self.param("bias", self.normal((out_features,), std))
        y = self.matmul(x, w, name=mod, moments=self.moments(x).scaled(k * std * std))
        return self.add(b, y, name=mod)

    def layernorm(self, x: str, eps: float = 1e-12, name: str | None = None) -> str:
        """``nn.LayerNorm`` over the last axis as the opset-17 ``LayerNormalization`` op
        (gamma ~ 1, beta ~ 0, slightly perturbed)."""
        h = self.shape(x)[-1]
        mod = self._module(name, "LayerNorm")
        with self.scope(mod):
            ins = [x, self.param("weight", self.normal((h,), 0.05, mean=1.0)),
                   self.param("bias", self.normal((h,), 0.05))]
        return self.node("LayerNormalization", ins, self.shape(x), name=mod,
                         moments=Moments(0.0, 1.0), axis=-1, epsilon=eps)

    # ------------------------------------------------------------------ finish

    def build(self, doc: str = "") -> onnx.ModelProto:
        """The accumulated graph as an opset-17, IR-8 ModelProto."""
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs,
                                  initializer=self.initializers)
        return helper.make_model(graph, producer_name="mlc.zoo", producer_version="1",
                                 opset_imports=[helper.make_opsetid("", OPSET)],
                                 ir_version=IR_VERSION, doc_string=doc)

