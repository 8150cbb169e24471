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
import statistics
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

    def through(self, f) -> Moments:
        """Moments of ``f(x)`` for an elementwise numpy function ``f``, taking
        x ~ N(mean, mean_square - mean^2) (Gauss-Hermite quadrature)."""
        z, w = np.polynomial.hermite_e.hermegauss(48)
        w = w / w.sum()
        sd = math.sqrt(max(self.mean_square - self.mean * self.mean, 1e-12))
        y = f(self.mean + sd * z)
        return Moments(float(w @ y), float(w @ (y * y)))

    def max_of(self, n: int) -> Moments:
        """Moments of the max of ``n`` samples (a pooling window), taking them as
        independent Gaussians: the mean moves up by the expected maximum of ``n``
        standard normals (Blom's approximation) and the spread shrinks to ~0.4 of it."""
        if n <= 1:
            return self
        sd = math.sqrt(max(self.mean_square - self.mean * self.mean, 1e-12))
        mean = self.mean + sd * statistics.NormalDist().inv_cdf((n - 0.375) / (n + 0.25))
        return Moments(mean, mean * mean + (0.4 * sd) ** 2)


def _broadcast(*shapes: Shape) -> Shape:
    return tuple(int(d) for d in np.broadcast_shapes(*shapes))


def _conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def _tuple(v, n: int) -> tuple[int, ...]:
    """``v`` repeated ``n`` times if it is a number, else ``v`` as a tuple of ``n`` ints."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(i) for i in v)
    if len(v) != n:
        raise ValueError(f"expected {n} values, got {v}")
    return v


def _pads(pad, n: int) -> tuple[int, ...]:
    """ONNX ``pads`` (all begins, then all ends) from one number, ``n`` symmetric
    per-axis values, or the full ``2 n`` list."""
    if not isinstance(pad, (int, np.integer)) and len(pad) == 2 * n:
        return tuple(int(p) for p in pad)
    p = _tuple(pad, n)
    return p + p


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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

    def input(self, name: str, shape: Sequence[int], dtype: type = np.float32,
              dims: Sequence[int | str] | None = None) -> str:
        """Declare a graph input of shape ``shape``. ``dims``, if given, is the shape
        declared in the model instead, a string being a symbolic dimension (``dim_param``,
        as in an export with dynamic axes); ``shape`` then gives nominal sizes for the
        builder's bookkeeping, and the layers after it must not bake those sizes in."""
        name = self._fresh(name)
        self.inputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(dims if dims is not None else shape)))
        return self._record(name, shape, dtype)

    def output(self, x: str, name: str, dims: Sequence[int | str] | None = None) -> str:
        """Make value ``x`` a graph output called ``name`` (renaming it where it is made);
        ``dims`` as in :meth:`input`."""
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
            name, helper.np_dtype_to_tensor_dtype(self._dtypes[name]),
            list(dims if dims is not None else self._shapes[name])))
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
        (out,) = self.multi_node(op, inputs, [shape], dtypes=None if dtype is None else [dtype],
                                 name=name, moments=None if moments is None else [moments], **attrs)
        return out

    def multi_node(self, op: str, inputs: Sequence[str], shapes: Sequence[Sequence[int]], *,
                   dtypes: Sequence[type | np.dtype] | None = None, name: str | None = None,
                   moments: Sequence[Moments] | None = None, **attrs) -> list[str]:
        """Append one node with ``len(shapes)`` outputs (Split, LSTM, ...), named
        ``<node>_output_<i>``; as :meth:`node` otherwise. ``""`` in ``inputs`` marks an
        omitted optional input."""
        path = "".join(f"/{part}" for part in [*self._scope, *([name] if name else [])])
        node_name = self._fresh(f"{path}/{op}")
        outs = [self._fresh(f"{node_name}_output_{i}") for i in range(len(shapes))]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=node_name, **attrs))
        for i, (out, shape) in enumerate(zip(outs, shapes)):
            self._moments[out] = self.moments(inputs[0]) if moments is None else moments[i]
            self._record(out, shape, dtypes[i] if dtypes is not None else self._dtypes[inputs[0]])
        return outs

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

    def sub(self, a, b, name: str | None = None, moments: Moments | None = None) -> str:
        return self._binary("Sub", self._operand(a), self._operand(b), name, moments=moments)

    def mul(self, a, b, name: str | None = None, moments: Moments | None = None) -> str:
        """``a * b``; the moments are those of ``a`` unless given."""
        return self._binary("Mul", self._operand(a), self._operand(b), name, moments=moments)

    def div(self, a, b, name: str | None = None, moments: Moments | None = None) -> str:
        return self._binary("Div", self._operand(a), self._operand(b), name, moments=moments)

    def pow(self, a, b, name: str | None = None, moments: Moments | None = None) -> str:
        return self._binary("Pow", self._operand(a), self._operand(b), name, moments=moments)

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

    def sigmoid(self, x: str, name: str | None = None) -> str:
        return self.node("Sigmoid", [x], self.shape(x), name=name,
                         moments=self.moments(x).through(_sigmoid))

    def silu(self, x: str, name: str | None = None) -> str:
        """``nn.SiLU`` as exported below opset 22 (and by ultralytics): ``x * Sigmoid(x)``."""
        s = self.sigmoid(x, name)
        return self.mul(x, s, name, moments=self.moments(x).through(lambda v: v * _sigmoid(v)))

    def hardsigmoid(self, x: str, alpha: float = 0.2, beta: float = 0.5,
                    name: str | None = None) -> str:
        """``HardSigmoid``: ``clip(alpha * x + beta, 0, 1)``. Paddle's default (and the
        squeeze-excite gate of PaddleOCR's MobileNetV3) is slope 0.2, offset 0.5; PyTorch's
        ``nn.Hardsigmoid`` is slope 1/6."""
        return self.node("HardSigmoid", [x], self.shape(x), name=name, alpha=float(alpha), beta=float(beta),
                         moments=self.moments(x).through(lambda v: np.clip(alpha * v + beta, 0.0, 1.0)))

    def hardswish(self, x: str, form: str = "clip", name: str | None = None) -> str:
        """HardSwish ``x * relu6(x + 3) / 6`` the two ways exporters decompose it:
        ``form="clip"``: Add(x, 3), Clip(0, 6), Mul(x, .), Div(., 6) (paddle2onnx);
        ``form="hardsigmoid"``: HardSigmoid(x, alpha=1/6, beta=0.5), Mul(x, .) (PyTorch
        below opset 14)."""
        out = self.moments(x).through(lambda v: v * np.clip(v + 3.0, 0.0, 6.0) / 6.0)
        if form == "clip":
            t = self.node("Clip", [self.add(x, 3.0, name), self.const(0.0), self.const(6.0)],
                          self.shape(x), name=name)
            return self.div(self.mul(x, t, name), 6.0, name, moments=out)
        if form == "hardsigmoid":
            return self.mul(x, self.hardsigmoid(x, 1.0 / 6.0, 0.5, name), name, moments=out)
        raise ValueError(f"unknown HardSwish form {form!r} (clip, hardsigmoid)")

    def layernorm_decomposed(self, x: str, eps: float = 1e-5, name: str | None = None) -> str:
        """``nn.LayerNorm`` over the last axis the way exporters without the fused op write
        it (PyTorch below opset 17, paddle2onnx): ReduceMean, Sub, Pow(2), ReduceMean,
        Add(eps), Sqrt, Div, Mul(gamma), Add(beta)."""
        s = self.shape(x)
        reduced = s[:-1] + (1,)
        mod = self._module(name, "LayerNorm")
        with self.scope(mod):
            gamma = self.param("weight", self.normal((s[-1],), 0.05, mean=1.0))
            beta = self.param("bias", self.normal((s[-1],), 0.05))
        mean = self.node("ReduceMean", [x], reduced, name=mod, axes=[-1], keepdims=1)
        d = self.sub(x, mean, mod)
        var = self.node("ReduceMean", [self.pow(d, 2.0, mod)], reduced,
                        name=mod, axes=[-1], keepdims=1)
        y = self.div(d, self.unary("Sqrt", self.add(var, eps, mod), mod), mod, moments=Moments(0.0, 1.0))
        return self.add(self.mul(y, gamma, mod), beta, mod)

    # ------------------------------------------------------------------ shape ops

    def reshape(self, x: str, shape: Sequence[int], name: str | None = None) -> str:
        """Reshape to the constant ``shape``; as in ONNX, 0 keeps the input's size on that
        axis and one -1 is inferred (how exporters keep a batch or sequence size dynamic)."""
        spec = tuple(int(d) for d in shape)
        src = self.shape(x)
        out = [src[i] if d == 0 else d for i, d in enumerate(spec)]
        if -1 in out:
            known = math.prod(d for d in out if d != -1)
            out[out.index(-1)] = math.prod(src) // known if known else 0
        if math.prod(out) != math.prod(src) or any(d < 0 for d in out):
            raise ValueError(f"cannot reshape {src} to {spec}")
        return self.node("Reshape", [x, self.const(spec, np.int64)], out, name=name)

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

    def squeeze(self, x: str, axes: Sequence[int], name: str | None = None) -> str:
        """Squeeze with ``axes`` as an input (opset >= 13)."""
        s = self.shape(x)
        drop = {a % len(s) for a in axes}
        return self.node("Squeeze", [x, self.const(list(axes), np.int64)],
                         [d for i, d in enumerate(s) if i not in drop], name=name)

    def concat(self, xs: Sequence[str], axis: int, name: str | None = None) -> str:
        """Concat along ``axis``; the moments are the size-weighted mean of the parts'."""
        shapes = [self.shape(x) for x in xs]
        axis %= len(shapes[0])
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        sizes = [s[axis] for s in shapes]
        ms = [self.moments(x) for x in xs]
        total = max(sum(sizes), 1)
        mom = Moments(sum(n * m.mean for n, m in zip(sizes, ms)) / total,
                      sum(n * m.mean_square for n, m in zip(sizes, ms)) / total)
        return self.node("Concat", list(xs), out, name=name, moments=mom, axis=axis)

    def split(self, x: str, sizes: Sequence[int], axis: int, name: str | None = None) -> list[str]:
        """``torch.split`` / ``chunk`` as exported at opset 13+: Split with the sizes as an input."""
        s = self.shape(x)
        axis %= len(s)
        if sum(sizes) != s[axis]:
            raise ValueError(f"split sizes {list(sizes)} do not add up to {s[axis]}")
        shapes = [s[:axis] + (int(n),) + s[axis + 1:] for n in sizes]
        return self.multi_node("Split", [x, self.const(list(sizes), np.int64)], shapes, name=name, axis=axis)

    def slice(self, x: str, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int],
              name: str | None = None) -> str:
        """Basic indexing ``x[..., a:b, ...]`` as exported: Slice with constant starts, ends, axes."""
        out = list(self.shape(x))
        for a, lo, hi in zip(axes, starts, ends):
            out[a] = len(range(*slice(lo, hi).indices(out[a])))
        return self.node("Slice", [x, self.const(list(starts), np.int64), self.const(list(ends), np.int64),
                                   self.const(list(axes), np.int64)], out, name=name)

    def shape_of(self, x: str, name: str | None = None) -> str:
        """``Shape(x)``: the run-time shape as an int64 vector (start of every dynamic-shape
        computation an exporter writes)."""
        return self.node("Shape", [x], (len(self.shape(x)),), dtype=np.int64, name=name)

    def dim(self, x: str, axis: int, name: str | None = None) -> str:
        """``x.shape[axis]`` as traced: Shape, then Gather of a scalar index -> a 0-d int64."""
        return self.node("Gather", [self.shape_of(x, name), self.const(axis, np.int64)], (),
                         dtype=np.int64, name=name, axis=0)

    def resize(self, x: str, scale: float | Sequence[float], mode: str = "nearest",
               name: str | None = None) -> str:
        """``nn.Upsample(scale_factor=scale)`` as exported at opset 11+: ``Resize(x, "",
        scales)`` with constant scales [1, 1, s, s]; nearest uses asymmetric coordinates
        and floor rounding, linear PyTorch's half-pixel rule (``align_corners=False``)."""
        n, c, *spatial = self.shape(x)
        scales = ((float(scale),) * len(spatial) if isinstance(scale, (int, float))
                  else tuple(float(f) for f in scale))
        out = (n, c, *(int(math.floor(d * f)) for d, f in zip(spatial, scales)))
        ctm = "asymmetric" if mode == "nearest" else "pytorch_half_pixel"
        return self.node("Resize", [x, "", self.const([1.0, 1.0, *map(float, scales)], np.float32)], out,
                         name=name, coordinate_transformation_mode=ctm, cubic_coeff_a=-0.75,
                         mode=mode, nearest_mode="floor")

    def pad(self, x: str, pads: Sequence[int], mode: str = "constant", name: str | None = None) -> str:
        """``F.pad`` as exported: Pad with constant ``pads`` (all begins, then all ends)
        and ``mode`` (constant, reflect, edge)."""
        s = self.shape(x)
        pads = tuple(int(p) for p in pads)
        out = [d + pads[i] + pads[i + len(s)] for i, d in enumerate(s)]
        return self.node("Pad", [x, self.const(list(pads), np.int64)], out, name=name, mode=mode)

    # ------------------------------------------------------------------ CNN layers

    def conv(self, x: str, out_ch: int, k: int | Sequence[int], stride: int | Sequence[int] = 1,
             pad: int | Sequence[int] = 0, groups: int = 1, *, bias: bool = False, gain: float = 2.0,
             bias_std: float = 0.01, name: str | None = None) -> str:
        """``nn.Conv1d`` / ``nn.Conv2d`` (channels first; the spatial rank is the input's):
        He-normal weight of fan-in ``in_ch / groups * prod(k)``; a bias ~ N(0, bias_std^2)
        only if ``bias`` (none before a BatchNorm). ``k``, ``stride``: one number or one
        per spatial axis; ``pad``: one number, one per axis, or the ONNX begins+ends list."""
        n, c, *spatial = self.shape(x)
        r = len(spatial)
        ks, ss, ps = _tuple(k, r), _tuple(stride, r), _pads(pad, r)
        if c % groups or out_ch % groups:
            raise ValueError(f"channels {c}->{out_ch} not divisible by groups={groups}")
        mod = self._module(name, "conv")
        fan_in = c // groups * math.prod(ks)
        with self.scope(mod):
            ins = [x, self.param("weight", self.he_normal((out_ch, c // groups, *ks), fan_in, gain))]
            if bias:
                ins.append(self.param("bias", self.normal((out_ch,), bias_std)))
        out = [(d + ps[i] + ps[i + r] - ks[i]) // ss[i] + 1 for i, d in enumerate(spatial)]
        return self.node("Conv", ins, (n, out_ch, *out),
                         name=mod, moments=self.moments(x).scaled(gain), dilations=[1] * r, group=groups,
                         kernel_shape=list(ks), pads=list(ps), strides=list(ss))

    def conv_transpose(self, x: str, out_ch: int, k: int, stride: int = 1, pad: int = 0, *,
                       bias: bool = True, gain: float = 2.0, name: str | None = None) -> str:
        """``nn.ConvTranspose2d`` (square kernel, no groups): weight [in_ch, out_ch, k, k],
        He-normal over the taps that reach one output (``in_ch * (k / stride)^2``)."""
        n, c, h, w = self.shape(x)
        mod = self._module(name, "conv_transpose")
        fan_in = max(1, c * k * k // (stride * stride))
        with self.scope(mod):
            ins = [x, self.param("weight", self.he_normal((c, out_ch, k, k), fan_in, gain))]
            if bias:
                ins.append(self.param("bias", self.normal((out_ch,), 0.01)))
        size = lambda d: (d - 1) * stride - 2 * pad + k
        return self.node("ConvTranspose", ins, (n, out_ch, size(h), size(w)), name=mod,
                         moments=self.moments(x).scaled(gain), dilations=[1, 1], group=1,
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

    def maxpool(self, x: str, k: int | Sequence[int], stride: int | Sequence[int], pad: int | Sequence[int] = 0,
                name: str | None = None, moments: Moments | None = None) -> str:
        """MaxPool (any spatial rank; ``k``, ``stride``, ``pad`` as in :meth:`conv`). The
        max of a 3x3 window of ReLU'd N(0, 1) values has about 5x their mean square and a
        std of ~0.4x its rms; those factors are the estimate used for any window unless
        ``moments`` is given (e.g. :meth:`Moments.max_of`)."""
        n, c, *spatial = self.shape(x)
        r = len(spatial)
        ks, ss, ps = _tuple(k, r), _tuple(stride, r), _pads(pad, r)
        if moments is None:
            ms = 5.0 * self.moments(x).mean_square
            moments = Moments(math.sqrt(0.84 * ms), ms)
        out = [(d + ps[i] + ps[i + r] - ks[i]) // ss[i] + 1 for i, d in enumerate(spatial)]
        return self.node("MaxPool", [x], (n, c, *out), name=name, moments=moments, ceil_mode=0,
                         kernel_shape=list(ks), pads=list(ps), strides=list(ss))

    def avgpool(self, x: str, k: int | Sequence[int], stride: int | Sequence[int], pad: int | Sequence[int] = 0,
                name: str | None = None) -> str:
        """AveragePool as exported from ``nn.AvgPool2d`` (``count_include_pad=1``, PyTorch's
        default) or from a divisible adaptive pool (paddle2onnx)."""
        n, c, *spatial = self.shape(x)
        r = len(spatial)
        ks, ss, ps = _tuple(k, r), _tuple(stride, r), _pads(pad, r)
        m = self.moments(x)
        var = max(m.mean_square - m.mean * m.mean, 0.0)
        out = [(d + ps[i] + ps[i + r] - ks[i]) // ss[i] + 1 for i, d in enumerate(spatial)]
        return self.node("AveragePool", [x], (n, c, *out), name=name,
                         moments=Moments(m.mean, m.mean * m.mean + var / math.prod(ks)), ceil_mode=0,
                         count_include_pad=1, kernel_shape=list(ks), pads=list(ps), strides=list(ss))

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

    def lstm(self, x: str, hidden: int, *, bidirectional: bool = False, initial_h: str | None = None,
             initial_c: str | None = None, name: str | None = None) -> tuple[str, str, str]:
        """One layer of ``nn.LSTM`` (sequence first) as exported: ``LSTM(X, W, R, B, "",
        initial_h, initial_c)``, gates in ONNX's i, o, f, c order. The weights are scaled
        the way training leaves them rather than PyTorch's tiny uniform init (which gives
        h ~ 0.1 and near-linear gates): input weights N(0, 1 / (features * E[x^2])) and
        recurrent weights N(0, 1 / hidden), so every gate's pre-activation is O(1) and
        the sigmoids and tanhs work over their whole range; biases N(0, 0.1^2).

        Returns ``(Y, Y_h, Y_c)``: Y [seq, directions, batch, hidden], Y_h and Y_c
        [directions, batch, hidden]."""
        seq, batch, features = self.shape(x)
        dirs = 2 if bidirectional else 1
        mod = self._module(name, "rnn")
        with self.scope(mod):
            ins = [x, self.param("weight_ih", self.normal((dirs, 4 * hidden, features),
                                                          math.sqrt(1.0 / (features * self.moments(x).mean_square)))),
                   self.param("weight_hh", self.normal((dirs, 4 * hidden, hidden), math.sqrt(1.0 / hidden))),
                   self.param("bias", self.normal((dirs, 8 * hidden), 0.1)), "",
                   initial_h or "", initial_c or ""]
        while ins[-1] == "":
            ins.pop()
        h, c = Moments(0.0, 0.06), Moments(0.0, 0.4)    # measured on random inputs, 5-30 steps
        return tuple(self.multi_node(
            "LSTM", ins, [(seq, dirs, batch, hidden), (dirs, batch, hidden), (dirs, batch, hidden)],
            name=mod, moments=[h, h, c],
            direction="bidirectional" if bidirectional else "forward", hidden_size=hidden))

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

