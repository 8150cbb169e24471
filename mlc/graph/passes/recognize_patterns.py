"""Recognise decomposed operators that exporters emit and replace each by the one op.

    ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div[/Mul/Add]   -> LayerNormalization
    x * 0.5 * (1 + Erf(x / sqrt 2))                         -> Gelu (approximate="none")
    0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3)))   -> Gelu (approximate="tanh")
    x * Sigmoid(a * x)                                      -> Swish (alpha=a; SiLU is a=1)
    x * HardSigmoid(x) (alpha 1/6, beta 1/2)                -> HardSwish
    x * Clip(x + 3, 0, 6) / 6   (or * (1/6))                -> HardSwish
    x * Tanh(Softplus(x)), x * Tanh(Log(Exp(x) + 1))        -> Mish
    Clip(x, 0, +inf) / Clip(x, 0) / Max(x, 0)               -> Relu

Why: one op is one kernel with one pass over memory (the decomposed LayerNorm is two
reductions and five elementwise kernels), and its kernel computes the function directly
(Gelu's and Mish's vectorised math rather than a chain of rounded steps).

How products are matched: a tree of Mul / Div-by-constant nodes is flattened into a
constant coefficient and its non-constant *factors*, whatever the exporter's
association order — ``(x * 0.5) * (1 + erf)``, ``x * (0.5 * (1 + erf))``,
``(x * (1 + erf)) * 0.5``, ``x * (1 + erf) / 2`` are all ``0.5 * [x, 1 + erf]``.  Arguments
of the nonlinearities are read as polynomials in ``x`` (``x / 1.4142135`` is
``0.7071 x``; ``x + 0.044715 * x * x * x`` and ``x + 0.044715 * Pow(x, 3)`` are the same
polynomial), so the constants are checked by value, to float32 rounding (relative 1e-5).

Every tensor inside a matched pattern must be read only by the pattern (not by another
node, not a graph output, not read by a subgraph body) and have ``x``'s shape and dtype;
the new node writes the pattern's last output under its original name.  Ops are only
introduced when the operator library registers them.
"""
from __future__ import annotations

import math
from itertools import permutations

import numpy as np

from ..ir import Graph, Node
from ...registry import lookup
from .dce import eliminate_dead_code
from .rewrite import Rewriter, Uses, close, const_value, node_opset, scalar_value

_FLOATS = ("float32", "float64", "float16", "bfloat16")
# the first ONNX opset of each op the pass introduces (the kernels read node.opset)
_SINCE = {"LayerNormalization": 17, "Gelu": 20, "Swish": 24, "HardSwish": 14, "Mish": 18, "Relu": 14}
_MAX_POWER = 4


def recognize_patterns(graph: Graph) -> Graph:
    m = _Matcher(graph)
    for node in graph.nodes:
        if id(node) in m.claimed:
            continue
        m.try_node(node)
    if not m.rw.changed:
        return graph
    return eliminate_dead_code(m.rw.finish())


class _NoMatch(Exception):
    pass


class _Matcher:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.uses = Uses(graph)
        self.rw = Rewriter(graph)
        self.producer = graph.producers()
        self.claimed: set[int] = set()

    # --- basic queries -------------------------------------------------------------------
    def shape(self, name: str) -> tuple:
        return tuple(self.graph.tensors[name].shape)

    def dtype(self, name: str) -> str:
        return self.graph.tensors[name].dtype

    def scalar(self, name: str) -> float | None:
        return scalar_value(self.graph, name) if name else None

    def inner(self, name: str, reader: Node, *ops: str) -> Node:
        """The node making ``name``, which only ``reader`` reads; its op one of ``ops``."""
        node = self.producer.get(name)
        if node is None or id(node) in self.claimed or node.domain not in ("", "ai.onnx"):
            raise _NoMatch
        if ops and node.op not in ops:
            raise _NoMatch
        if not self.uses.only_reader(name, reader):
            raise _NoMatch
        return node

    def emit(self, root: Node, op: str, inputs: tuple, attrs: dict, members: list[Node]) -> None:
        if lookup(op) is None:
            return
        new = Node(op, inputs, (root.outputs[0],), attrs, name=root.name,
                   opset=max(_SINCE.get(op, 1), node_opset(root, self.graph)))
        self.rw.replace(root, [new])
        self.producer[root.outputs[0]] = new
        self.claimed.update(id(n) for n in members)
        self.claimed.add(id(root))

    # --- dispatch ------------------------------------------------------------------------
    def try_node(self, node: Node) -> None:
        if node.domain not in ("", "ai.onnx") or not node.outputs or not node.outputs[0]:
            return
        out = node.outputs[0]
        if out not in self.graph.tensors or self.dtype(out) not in _FLOATS:
            return
        try:
            if node.op in ("Div", "Mul"):
                if self._layernorm(node):
                    return
                self._product(node)
            elif node.op in ("Clip", "Max"):
                self._relu(node)
        except _NoMatch:
            pass

    # --- products ------------------------------------------------------------------------
    def flatten(self, node: Node, members: list[Node]) -> tuple[float, list[tuple[str, Node]]]:
        """``node`` (Mul/Div) as coefficient * product of factors (name, reader)."""
        coef = 1.0
        factors: list[tuple[str, Node]] = []
        operands = [(node.inputs[0], 1), (node.inputs[1], 1 if node.op == "Mul" else -1)]
        for name, sign in operands:
            s = self.scalar(name)
            if s is not None:
                if sign < 0:
                    if s == 0:
                        raise _NoMatch
                    s = 1.0 / s
                coef *= s
                continue
            if sign < 0:
                raise _NoMatch          # division by a tensor
            try:
                sub = self.inner(name, node, "Mul", "Div")
            except _NoMatch:
                factors.append((name, node))
                continue
            members.append(sub)
            c, f = self.flatten(sub, members)
            coef *= c
            factors.extend(f)
        return coef, factors

    def poly(self, name: str, x: str, reader: Node, members: list[Node]) -> dict[int, float]:
        """``name`` as a polynomial in ``x`` ({power: coefficient}) through nodes only the
        pattern reads."""
        if name == x:
            return {1: 1.0}
        s = self.scalar(name)
        if s is not None:
            return {0: s}
        node = self.inner(name, reader, "Mul", "Div", "Add", "Sub", "Neg", "Pow", "Sum")
        members.append(node)
        if node.op == "Sum":
            out: dict = {}
            for term in node.inputs:
                for k, v in self.poly(term, x, node, members).items():
                    out[k] = out.get(k, 0.0) + v
            return {k: v for k, v in out.items() if v != 0.0}
        a = self.poly(node.inputs[0], x, node, members)
        if node.op == "Neg":
            return {k: -v for k, v in a.items()}
        if node.op == "Pow":
            e = self.scalar(node.inputs[1])
            if e is None or e != int(e) or not 0 <= e <= _MAX_POWER:
                raise _NoMatch
            out = {0: 1.0}
            for _ in range(int(e)):
                out = _pmul(out, a)
            return out
        if node.op == "Div":
            d = self.scalar(node.inputs[1])
            if not d:
                raise _NoMatch
            return {k: v / d for k, v in a.items()}
        b = self.poly(node.inputs[1], x, node, members)
        if node.op == "Mul":
            return _pmul(a, b)
        sign = 1.0 if node.op == "Add" else -1.0
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + sign * v
        return {k: v for k, v in out.items() if v != 0.0}

    def _product(self, root: Node) -> None:
        members: list[Node] = []
        coef, factors = self.flatten(root, members)
        if len(factors) != 2:
            return
        for (x, _), (f, reader) in permutations(factors):
            if self.graph.is_constant(x) or self.shape(x) != self.shape(root.outputs[0]) or \
                    self.dtype(x) != self.dtype(root.outputs[0]):
                continue
            for matcher in (self._gelu_erf, self._gelu_tanh, self._swish, self._hardswish_hs,
                            self._hardswish_clip, self._mish):
                inner_members: list[Node] = []
                try:
                    result = matcher(coef, x, f, reader, inner_members)
                except _NoMatch:
                    continue
                if result is None:
                    continue
                if not self._same_type(x, [n.outputs[0] for n in members + inner_members]):
                    continue
                op, attrs = result
                self.emit(root, op, (x,), attrs, members + inner_members)
                return

    def _same_type(self, x: str, names: list[str]) -> bool:
        return all(self.shape(n) == self.shape(x) and self.dtype(n) == self.dtype(x) for n in names)

    def _one_plus(self, f: str, reader: Node, members: list[Node], op: str) -> Node:
        """``f`` = 1 + op(...): returns the ``op`` node."""
        add = self._add_of_two(f, reader)
        members.append(add)
        a, b = add.inputs
        if close(self.scalar(a), 1.0):
            a, b = b, a
        if not close(self.scalar(b), 1.0):
            raise _NoMatch
        node = self.inner(a, add, op)
        members.append(node)
        return node

    def _add_of_two(self, name: str, reader: Node) -> Node:
        """An Add, or a Sum of two inputs (how ONNX's function bodies add), making ``name``."""
        node = self.inner(name, reader, "Add", "Sum")
        if len(node.inputs) != 2 or not all(node.inputs):
            raise _NoMatch
        return node

    def _gelu_erf(self, coef, x, f, reader, members):
        if not close(coef, 0.5):
            return None
        erf = self._one_plus(f, reader, members, "Erf")
        p = self.poly(erf.inputs[0], x, erf, members)
        if set(p) == {1} and close(p[1], 1 / math.sqrt(2)):
            return "Gelu", {"approximate": "none"}
        return None

    def _gelu_tanh(self, coef, x, f, reader, members):
        if not close(coef, 0.5):
            return None
        tanh = self._one_plus(f, reader, members, "Tanh")
        p = self.poly(tanh.inputs[0], x, tanh, members)
        a = math.sqrt(2 / math.pi)
        if set(p) == {1, 3} and close(p[1], a) and close(p[3], a * 0.044715):
            return "Gelu", {"approximate": "tanh"}
        return None

    def _swish(self, coef, x, f, reader, members):
        if not close(coef, 1.0):
            return None
        sig = self.inner(f, reader, "Sigmoid")
        members.append(sig)
        p = self.poly(sig.inputs[0], x, sig, members)
        if set(p) == {1}:
            return "Swish", {"alpha": float(p[1])}
        return None

    def _hardswish_hs(self, coef, x, f, reader, members):
        if not close(coef, 1.0):
            return None
        hs = self.inner(f, reader, "HardSigmoid")
        members.append(hs)
        if hs.inputs[0] != x:
            return None
        if close(float(hs.attrs.get("alpha", 0.2)), 1 / 6) and close(float(hs.attrs.get("beta", 0.5)), 0.5):
            return "HardSwish", {}
        return None

    def _hardswish_clip(self, coef, x, f, reader, members):
        if not close(coef, 1 / 6):
            return None
        clip = self.inner(f, reader, "Clip")
        members.append(clip)
        lo, hi = self._clip_bounds(clip)
        if lo != 0.0 or hi != 6.0:
            return None
        p = self.poly(clip.inputs[0], x, clip, members)
        if set(p) == {0, 1} and close(p[0], 3.0) and close(p[1], 1.0):
            return "HardSwish", {}
        return None

    def _mish(self, coef, x, f, reader, members):
        if not close(coef, 1.0):
            return None
        tanh = self.inner(f, reader, "Tanh")
        members.append(tanh)
        sp = self.inner(tanh.inputs[0], tanh, "Softplus", "Log")
        members.append(sp)
        if sp.op == "Softplus":
            return ("Mish", {}) if sp.inputs[0] == x else None
        add = self._add_of_two(sp.inputs[0], sp)      # Log(Exp(x) + 1)
        members.append(add)
        a, b = add.inputs
        if close(self.scalar(a), 1.0):
            a, b = b, a
        if not close(self.scalar(b), 1.0):
            return None
        exp = self.inner(a, add, "Exp")
        members.append(exp)
        return ("Mish", {}) if exp.inputs[0] == x else None

    # --- Relu ----------------------------------------------------------------------------
    def _clip_bounds(self, clip: Node) -> tuple[float | None, float | None]:
        """(min, max) of a Clip with constant bounds; None for an absent bound; raises
        _NoMatch for run-time bounds."""
        if node_opset(clip, self.graph) < 11:
            lo, hi = clip.attrs.get("min"), clip.attrs.get("max")
            return (None if lo is None else float(lo)), (None if hi is None else float(hi))
        bounds = []
        for k in (1, 2):
            name = clip.inputs[k] if len(clip.inputs) > k else ""
            if not name:
                bounds.append(None)
                continue
            v = self.scalar(name)
            if v is None:
                raise _NoMatch
            bounds.append(v)
        return bounds[0], bounds[1]

    def _relu(self, node: Node) -> None:
        """Clip(x, 0) and Clip(x, 0, +inf) and Max(x, 0) are Relu.  (ONNX's Clip without a
        max clamps +inf to the type's largest finite value; Relu keeps +inf — the only
        difference, on inputs that have already overflowed.)"""
        x = node.inputs[0]
        out = node.outputs[0]
        if node.op == "Clip":
            if not x or self.shape(x) != self.shape(out) or self.dtype(x) != self.dtype(out):
                return
            lo, hi = self._clip_bounds(node)
            if lo == 0.0 and (hi is None or hi == math.inf):
                self.emit(node, "Relu", (x,), {}, [])
            return
        live = [i for i in node.inputs if i]
        if len(live) != 2:
            return
        for a, b in (live, live[::-1]):
            if self.scalar(b) == 0.0 and not self.graph.is_constant(a) and \
                    self.shape(a) == self.shape(out) and self.dtype(a) == self.dtype(out):
                self.emit(node, "Relu", (a,), {}, [])
                return

    # --- LayerNorm -------------------------------------------------------------------------
    def _layernorm(self, norm: Node) -> bool:
        """``norm`` = Div(d, Sqrt(var + eps)) or Mul(d, Reciprocal(Sqrt(var + eps))) with
        d = x - ReduceMean(x), var = ReduceMean(d^2 or d*d) over the trailing axes."""
        members: list[Node] = []
        try:
            if norm.op == "Div":
                d, s = norm.inputs
                sqrt = self.inner(s, norm, "Sqrt")
            else:
                for d, s in (norm.inputs, norm.inputs[::-1]):
                    try:
                        rec = self.inner(s, norm, "Reciprocal")
                        break
                    except _NoMatch:
                        continue
                else:
                    return False
                members.append(rec)
                sqrt = self.inner(rec.inputs[0], rec, "Sqrt")
        except _NoMatch:
            return False
        try:
            members.append(sqrt)
            add = self.inner(sqrt.inputs[0], sqrt, "Add")
            members.append(add)
            var_name, eps_name = add.inputs
            if self.scalar(var_name) is not None:
                var_name, eps_name = eps_name, var_name
            eps = self.scalar(eps_name)
            if eps is None or eps < 0:
                return False
            var = self.inner(var_name, add, "ReduceMean")
            members.append(var)
            sq = self.inner(var.inputs[0], var, "Pow", "Mul")
            members.append(sq)
            if sq.op == "Pow":
                if sq.inputs[0] != d or self.scalar(sq.inputs[1]) != 2.0:
                    return False
            elif sq.inputs[0] != d or sq.inputs[1] != d:
                return False
            sub = self.producer.get(d)
            if sub is None or sub.op != "Sub" or id(sub) in self.claimed:
                return False
            readers = self.uses.readers.get(d, [])
            if len(readers) != 2 or {id(r) for r in readers} != {id(sq), id(norm)} or not self.uses.is_free(d):
                return False
            members.append(sub)
            x, mean_name = sub.inputs
            mean = self.inner(mean_name, sub, "ReduceMean")
            members.append(mean)
            if mean.inputs[0] != x:
                return False
        except _NoMatch:
            return False
        shape = self.shape(x)
        rank = len(shape)
        axis = self._trailing_axes(mean, rank)
        if axis is None or self._trailing_axes(var, rank) != axis:
            return False
        if self.dtype(x) not in _FLOATS or not self._same_type(x, [d, norm.outputs[0]]):
            return False
        # the optional affine tail: * scale, + bias (constants over the normalised axes)
        root, scale, bias = norm, None, None
        out = norm.outputs[0]
        nxt = self._only_reader_of(out)
        if nxt is not None and nxt.op == "Mul":
            scale = self._affine_const(nxt, out, shape, axis)
            if scale is not None:
                members.append(root)
                root, out = nxt, nxt.outputs[0]
                nxt = self._only_reader_of(out)
        if nxt is not None and nxt.op == "Add":
            bias = self._affine_const(nxt, out, shape, axis)
            if bias is not None:
                members.append(root)
                root, out = nxt, nxt.outputs[0]
        if self.shape(out) != shape:
            return False
        if lookup("LayerNormalization") is None:
            return False
        dt = self.dtype(x)
        tail = shape[axis:]
        if scale is None:
            scale = np.ones(tail, dtype=dt)
        scale_name = self.rw.constant(f"{out}__ln_scale", np.ascontiguousarray(scale.astype(dt)))
        inputs = (x, scale_name)
        if bias is not None:
            inputs += (self.rw.constant(f"{out}__ln_bias", np.ascontiguousarray(bias.astype(dt))),)
        self.emit(root, "LayerNormalization", inputs, {"axis": axis, "epsilon": float(eps)}, members)
        return True

    def _only_reader_of(self, name: str) -> Node | None:
        readers = self.uses.readers.get(name, [])
        if len(readers) == 1 and self.uses.is_free(name) and id(readers[0]) not in self.claimed and \
                readers[0].domain in ("", "ai.onnx"):
            return readers[0]
        return None

    def _affine_const(self, node: Node, operand: str, shape: tuple, axis: int) -> np.ndarray | None:
        """The other operand of ``node`` broadcast to the normalised shape, if it is a
        constant that varies only along the normalised axes and keeps ``shape``."""
        other = node.inputs[1] if node.inputs[0] == operand else node.inputs[0]
        if other == operand:
            return None
        v = const_value(self.graph, other)
        if v is None or v.ndim > len(shape):
            return None
        padded = v.reshape((1,) * (len(shape) - v.ndim) + v.shape)
        if any(d != 1 for d in padded.shape[:axis]):
            return None
        try:
            if tuple(np.broadcast_shapes(padded.shape, shape)) != tuple(shape):
                return None
        except ValueError:
            return None
        return np.broadcast_to(padded.reshape(padded.shape[axis:]), shape[axis:]).copy()

    def _trailing_axes(self, reduce: Node, rank: int) -> int | None:
        """The first reduced axis when ``reduce`` is a keepdims ReduceMean over trailing axes."""
        if int(reduce.attrs.get("keepdims", 1)) != 1:
            return None
        if node_opset(reduce, self.graph) >= 18:
            if len(reduce.inputs) > 1 and reduce.inputs[1]:
                axes = const_value(self.graph, reduce.inputs[1])
                if axes is None:
                    return None
                axes = [int(a) for a in np.asarray(axes).reshape(-1)]
            else:
                if int(reduce.attrs.get("noop_with_empty_axes", 0)):
                    return None
                axes = list(range(rank))
        else:
            axes = reduce.attrs.get("axes")
            axes = list(range(rank)) if axes is None else [int(a) for a in axes]
        axes = sorted(a % rank for a in axes) if rank else []
        if not axes or axes != list(range(rank - len(axes), rank)):
            return None
        return axes[0]


def _pmul(a: dict, b: dict) -> dict:
    out: dict = {}
    for ka, va in a.items():
        for kb, vb in b.items():
            out[ka + kb] = out.get(ka + kb, 0.0) + va * vb
    if max(out, default=0) > _MAX_POWER:
        raise _NoMatch
    return out
