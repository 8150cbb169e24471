"""Quantized operators against onnxruntime: QuantizeLinear, DequantizeLinear,
DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv, and whole
quantized models (onnxruntime's dynamic quantization, a static QDQ model).

Integer results must match exactly.  Where onnxruntime rejects a case (per-channel
ConvInteger weight zero points, int8 x uint8 QLinearMatMul, sub-byte and blocked types it
has no kernel for), the reference is exact numpy integer arithmetic or, for the
quantization ops, the ONNX reference implementation.

The integer ops have two computations (see kernels/qlinear.py): AVX-512 VNNI (``vpdpbusd``)
on this machine, and plain int32 multiply-adds; every integer-op test runs both, the second
by compiling for "x86-avx512" (Skylake-AVX512: no VNNI).
"""
from __future__ import annotations

import itertools

import ml_dtypes  # noqa: F401  (numpy names for int4 / float8 / float4)
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from conftest import ort_run, single_op_model

import mlc
import mlc.kernels.qlinear as qlinear
import mlc.kernels.quantize  # noqa: F401
from mlc.errors import UnsupportedError

TARGETS = ["x86", "x86-avx512"]

_ONNX_T = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8, "uint16": TensorProto.UINT16,
           "int16": TensorProto.INT16, "int32": TensorProto.INT32, "float32": TensorProto.FLOAT,
           "float16": TensorProto.FLOAT16, "uint4": TensorProto.UINT4, "int4": TensorProto.INT4,
           "uint2": TensorProto.UINT2, "int2": TensorProto.INT2,
           "float8_e4m3fn": TensorProto.FLOAT8E4M3FN, "float8_e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ,
           "float8_e5m2": TensorProto.FLOAT8E5M2, "float8_e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ,
           "float4_e2m1fn": TensorProto.FLOAT4E2M1}
_IRANGE = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767),
           "uint4": (0, 15), "int4": (-8, 7), "uint2": (0, 3), "int2": (-2, 1)}


def grid(cases, types, targets=TARGETS, ids=None):
    """(target, case, types) parameters: every combination, the default run a Latin-square
    subset (each case with every type on this CPU's VNNI path, each case and each type
    at least once on the plain path); the rest is marked slow."""
    out = []
    for (ti, t), (ci, c), (yi, y) in itertools.product(enumerate(targets), enumerate(cases), enumerate(types)):
        fast = (ci + yi) % 2 == 0 if ti == 0 else (ci + yi) % len(types) == 0
        cid = ids(c) if ids else str(ci)
        out.append(pytest.param(t, c, y, id=f"{t}-{cid}-{y[0]}x{y[1]}", marks=() if fast else pytest.mark.slow))
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def rnd_int(rng, dt, shape):
    lo, hi = _IRANGE[dt]
    return rng.integers(lo, hi + 1, shape).astype(dt)


def make_model(op, inputs: dict, inits: dict, outputs: dict, attrs=None, opset=21, order=None):
    """A one-node model; ``inputs`` / ``inits``: name -> array (any ml_dtypes type);
    ``outputs``: name -> dtype name; ``order``: node inputs ("" = omitted)."""
    order = order if order is not None else list(inputs) + list(inits)
    node = helper.make_node(op, order, list(outputs), **(attrs or {}))
    g = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, _ONNX_T[a.dtype.name], a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, _ONNX_T[dt], None) for n, dt in outputs.items()],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def run_mlc(model, feeds, target="x86"):
    mod = mlc.compile(model, num_threads=1, target=target)
    out = mod.run(feeds)
    return [out[o.name] for o in model.graph.output]


def reference(model, feeds, prefer_ort=True):
    """onnxruntime's outputs, or the ONNX reference implementation's where onnxruntime
    has no kernel for the case."""
    if prefer_ort:
        try:
            return ort_run(model, feeds), "onnxruntime"
        except Exception:
            pass
    return ReferenceEvaluator(model).run(None, feeds), "onnx reference"


def same_bits(got, ref):
    """Exact equality of integer / small-float outputs (NaN == NaN for the small floats)."""
    if ref.dtype == np.uint8 and got.dtype.name in _ONNX_T and got.dtype.name.startswith("float"):
        ref = ref.view(got.dtype)         # onnxruntime returns float8 tensors as their bytes
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.dtype, ref.dtype, got.shape, ref.shape)
    if got.dtype.kind == "V" or got.dtype.name.startswith("float8") or got.dtype.name.startswith("float4"):
        gf, rf = got.astype(np.float32), ref.astype(np.float32)
        np.testing.assert_array_equal(np.isnan(gf), np.isnan(rf))
        np.testing.assert_array_equal(np.where(np.isnan(gf), 0, gf), np.where(np.isnan(rf), 0, rf))
        return
    np.testing.assert_array_equal(got, ref)


def tricky_floats(rng, n, scale):
    """Values around the rounding ties of a quantizer with ``scale`` plus range extremes."""
    k = rng.integers(-300, 300, n).astype(np.float32)
    ties = (k + 0.5) * scale                         # exactly representable halves: ties to even
    near = (k + rng.choice([0.49, 0.51], n)) * scale
    wide = rng.standard_normal(n).astype(np.float32) * 200 * scale
    return np.concatenate([ties, near, wide, np.float32([0, -0.0, 1e9, -1e9])]).astype(np.float32)


# --------------------------------------------------------------------------------------
# QuantizeLinear
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("out_dt", ["uint8", "int8", "uint16", "int16", "uint4", "int4", "uint2", "int2"])
@pytest.mark.parametrize("mode", ["tensor", "axis", "axis_neg", "blocked"])
def test_quantize_linear_integer(out_dt, mode, rng):
    shape = (2, 6, 5)
    x = rng.standard_normal(shape).astype(np.float32) * 40
    x.flat[:8] = np.float32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1e6, -1e6])      # ties, saturation
    attrs = {}
    if mode == "tensor":
        sshape = ()
    elif mode in ("axis", "axis_neg"):
        sshape = (6,)
        attrs["axis"] = 1 if mode == "axis" else -2
    else:
        sshape = (2, 3, 5)
        attrs.update(axis=1, block_size=2)
    scale = rng.uniform(0.2, 2.0, sshape).astype(np.float32)
    if mode == "tensor":
        scale = np.float32(1.0)
    zp = rnd_int(rng, out_dt, sshape).astype(out_dt)
    m = make_model("QuantizeLinear", {"x": x}, {"s": np.asarray(scale), "z": np.asarray(zp)}, {"y": out_dt}, attrs)
    ref, src = reference(m, {"x": x}, prefer_ort=out_dt not in ("uint2", "int2"))
    same_bits(run_mlc(m, {"x": x})[0], ref[0])


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
def test_quantize_linear_opsets_runtime_params(opset, rng):
    """Scale and zero point as run-time inputs (as the ONNX node tests give them)."""
    x = tricky_floats(rng, 40, 0.25).reshape(4, -1)
    per_axis = opset >= 13
    s = (rng.uniform(0.1, 0.5, x.shape[0]) if per_axis else np.array(0.25)).astype(np.float32)
    z = rnd_int(rng, "int8", s.shape)
    attrs = {"axis": 0} if per_axis else {}
    m = make_model("QuantizeLinear", {"x": x, "s": s, "z": z}, {}, {"y": "int8"}, attrs, opset=opset)
    feeds = {"x": x, "s": s, "z": z}
    same_bits(run_mlc(m, feeds)[0], ort_run(m, feeds)[0])


def test_quantize_linear_defaults(rng):
    """No zero point: uint8, or the output_dtype attribute (opset 21)."""
    x = tricky_floats(rng, 30, 0.1)
    s = np.float32(0.1)
    m = make_model("QuantizeLinear", {"x": x}, {"s": s}, {"y": "uint8"}, opset=13)
    same_bits(run_mlc(m, {"x": x})[0], ort_run(m, {"x": x})[0])
    m = make_model("QuantizeLinear", {"x": x}, {"s": s}, {"y": "int16"},
                   {"output_dtype": TensorProto.INT16}, opset=21)
    same_bits(run_mlc(m, {"x": x})[0], ort_run(m, {"x": x})[0])


def test_quantize_linear_float16_input(rng):
    x = (rng.standard_normal(64) * 30).astype(np.float16)
    s = np.float16(0.37)
    m = make_model("QuantizeLinear", {"x": x}, {"s": s, "z": np.uint8(128)}, {"y": "uint8"}, opset=19)
    same_bits(run_mlc(m, {"x": x})[0], ort_run(m, {"x": x})[0])


F8 = ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz"]


def _minifloat_probe(dtype):
    """Every finite value of the format, the midpoints between neighbours (ties to even),
    the floats just beside them, overflow, infinities, NaN and signed zeros."""
    codes = np.arange(16 if dtype == "float4_e2m1fn" else 256, dtype=np.uint8).view(dtype)
    v = np.unique(codes.astype(np.float32)[np.isfinite(codes.astype(np.float32))])
    mids = (v[:-1] + v[1:]) / 2
    side = np.concatenate([np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))])
    big = v.max()
    extra = np.float32([0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, big * 1.03, -big * 1.1, 3e38])
    return np.concatenate([v, mids, side, extra]).astype(np.float32)


def _q_then_dq(x, dtype, saturate, scale=np.float32(1.0), axis=0):
    """QuantizeLinear to a float8 type, then DequantizeLinear back to float32 (onnxruntime's
    Python API cannot return most float8 types)."""
    s = np.asarray(scale, np.float32)
    z = np.zeros(s.shape if s.ndim else (1,), dtype)
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], saturate=saturate, axis=axis)
    d = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=axis)
    g = helper.make_graph([q, d], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)],
                          [numpy_helper.from_array(s, "s"), numpy_helper.from_array(z, "z")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("dtype", F8)
@pytest.mark.parametrize("saturate", [1, 0])
def test_quantize_linear_float8(dtype, saturate):
    """Round to nearest even, saturation / inf / NaN: bit-exact with the ONNX reference, and
    value-exact with onnxruntime except where onnxruntime itself departs from the ONNX
    spec (and its reference) without saturation: it turns e4m3fn values in [464, 512),
    which round (to nearest even) past the largest finite 448, into +-448 instead of NaN,
    and finite e5m2 values that round past 57344 into NaN instead of +-inf."""
    x = _minifloat_probe(dtype)
    m = make_model("QuantizeLinear", {"x": x}, {"s": np.float32(1.0), "z": np.zeros(1, dtype)},
                   {"y": dtype}, {"saturate": saturate, "axis": 0})
    got = run_mlc(m, {"x": x})[0]
    same_bits(got, ReferenceEvaluator(m).run(None, {"x": x})[0])
    ort = ort_run(_q_then_dq(x, dtype, saturate), {"x": x})[0]
    mine = got.astype(np.float32)
    keep = np.ones(x.shape, bool)
    if dtype == "float8_e4m3fn" and not saturate:
        keep = ~((np.abs(x) >= 464) & (np.abs(x) < 512))
    if dtype == "float8_e5m2" and not saturate:
        keep = ~(np.isfinite(x) & (np.abs(x) >= 61440))
    np.testing.assert_array_equal(mine[keep], ort[keep])


def test_quantize_linear_float8_scaled(rng):
    x = (rng.standard_normal((3, 40)) * 100).astype(np.float32)
    s = np.float32([0.5, 2.0, 0.03])
    for dtype in F8:
        m = _q_then_dq(x, dtype, 1, s)
        np.testing.assert_array_equal(run_mlc(m, {"x": x})[0], ort_run(m, {"x": x})[0])


def test_quantize_linear_float4():
    """float4 e2m1 (no onnxruntime kernel): the ONNX reference, zero point added."""
    x = np.concatenate([_minifloat_probe("float4_e2m1fn"), np.float32([2.3, -4.4, 7.0])])
    m = make_model("QuantizeLinear", {"x": x}, {"s": np.float32(0.5), "z": np.zeros(1, "float4_e2m1fn")},
                   {"y": "float4_e2m1fn"}, {"axis": 0}, opset=23)
    with np.errstate(over="ignore"):       # the reference divides inf by the scale
        ref = ReferenceEvaluator(m).run(None, {"x": x})[0]
    same_bits(run_mlc(m, {"x": x})[0], ref)


# --------------------------------------------------------------------------------------
# DequantizeLinear
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_dt", ["uint8", "int8", "uint16", "int16", "uint4", "int4", "int2", "int32"])
@pytest.mark.parametrize("mode", ["tensor", "axis", "blocked"])
def test_dequantize_linear(in_dt, mode, rng):
    shape = (3, 4, 7)
    x = rnd_int(rng, in_dt, shape) if in_dt != "int32" else rng.integers(-2**20, 2**20, shape).astype(np.int32)
    attrs, sshape = {}, ()
    if mode == "axis":
        sshape, attrs = (4,), {"axis": -2}
    elif mode == "blocked":
        sshape, attrs = (3, 4, 3), {"axis": 2, "block_size": 3}
    s = rng.uniform(0.01, 1.0, sshape).astype(np.float32)
    inits = {"s": s}
    if in_dt != "int32":
        inits["z"] = rnd_int(rng, in_dt, sshape)
    m = make_model("DequantizeLinear", {"x": x}, inits, {"y": "float32"}, attrs)
    ref, _ = reference(m, {"x": x}, prefer_ort=in_dt not in ("int2",))
    np.testing.assert_array_equal(run_mlc(m, {"x": x})[0], ref[0])


def test_dequantize_linear_runtime_params_and_float16(rng):
    x = rnd_int(rng, "uint8", (2, 5, 3))
    s = rng.uniform(0.01, 1.0, 5).astype(np.float16)
    z = rnd_int(rng, "uint8", (5,))
    m = make_model("DequantizeLinear", {"x": x, "s": s, "z": z}, {}, {"y": "float16"}, {"axis": 1}, opset=19)
    feeds = {"x": x, "s": s, "z": z}
    np.testing.assert_array_equal(run_mlc(m, feeds)[0], ort_run(m, feeds)[0])
    m = make_model("DequantizeLinear", {"x": x}, {"s": np.float32(0.5)}, {"y": "float32"}, opset=10)
    np.testing.assert_array_equal(run_mlc(m, {"x": x})[0], ort_run(m, {"x": x})[0])


@pytest.mark.parametrize("dtype", F8 + ["float4_e2m1fn"])
def test_dequantize_linear_minifloat(dtype):
    """Every code of the format (NaNs included), exactly."""
    x = np.arange(16 if dtype == "float4_e2m1fn" else 256, dtype=np.uint8).view(dtype)
    m = make_model("DequantizeLinear", {"x": x}, {"s": np.float32(0.75)}, {"y": "float32"}, opset=23)
    got = run_mlc(m, {"x": x})[0]
    ref, _ = reference(m, {"x": x}, prefer_ort=dtype != "float4_e2m1fn")
    np.testing.assert_array_equal(got, ref[0])


def test_qdq_roundtrip_int4_per_axis(rng):
    """QuantizeLinear -> DequantizeLinear (a fake-quant pair, as in QDQ models), int4 per axis."""
    x = rng.standard_normal((6, 10)).astype(np.float32)
    s = rng.uniform(0.05, 0.3, 6).astype(np.float32)
    z = rnd_int(rng, "int4", (6,))
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0)
    d = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=0)
    g = helper.make_graph([q, d], "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)],
                          [numpy_helper.from_array(s, "s"), numpy_helper.from_array(z, "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    np.testing.assert_array_equal(run_mlc(m, {"x": x})[0], ort_run(m, {"x": x})[0])


def test_quantize_unsupported(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    m = make_model("QuantizeLinear", {"x": x}, {"s": np.ones((2, 2), np.float32)}, {"y": "uint8"},
                   {"axis": 1}, opset=21)
    m.graph.node[0].attribute.append(helper.make_attribute("block_size", 5))     # does not fit
    with pytest.raises(Exception):
        mlc.compile(m, num_threads=1)


# --------------------------------------------------------------------------------------
# DynamicQuantizeLinear
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["mixed", "positive", "negative", "zeros", "ties"])
@pytest.mark.parametrize("shape", [(1,), (3, 17), (1, 128, 96),
                                   pytest.param((6,), marks=pytest.mark.slow),
                                   pytest.param((2, 3, 5, 7), marks=pytest.mark.slow)])
def test_dynamic_quantize_linear(kind, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32) * 3
    if kind == "positive":
        x = np.abs(x) + 0.5
    elif kind == "negative":
        x = -np.abs(x) - 0.5
    elif kind == "zeros":
        x = np.zeros(shape, np.float32)       # onnxruntime: scale 1 (the ONNX reference: 1/255)
    elif kind == "ties":
        x = (rng.integers(-50, 50, shape) / 2).astype(np.float32)
    m = make_model("DynamicQuantizeLinear", {"x": x}, {}, {"y": "uint8", "s": "float32", "z": "uint8"}, opset=11)
    got = run_mlc(m, {"x": x})
    ref = ort_run(m, {"x": x})
    for g_, r_ in zip(got, ref):
        assert g_.shape == r_.shape and g_.dtype == r_.dtype
        np.testing.assert_array_equal(g_, r_)


# --------------------------------------------------------------------------------------
# MatMulInteger / QLinearMatMul
# --------------------------------------------------------------------------------------

def matmul_int_ref(a, b, za, zb):
    return np.matmul(a.astype(np.int64) - za, b.astype(np.int64) - zb).astype(np.int32)


MM_SHAPES = [((1, 128, 256), (256, 1024)), ((7, 13), (13, 19)), ((2, 33, 64), (64, 50)),
             ((3, 5, 8), (3, 8, 6)), ((4, 1, 3), (2, 1, 3, 17))]


@pytest.mark.parametrize("target,shapes,types", grid(
    MM_SHAPES, [("uint8", "int8"), ("uint8", "uint8"), ("int8", "int8"), ("int8", "uint8")],
    ids=lambda s: f"{s[0]}x{s[1]}"))
def test_matmul_integer(target, shapes, types, rng):
    sa, sb = shapes
    adt, bdt = types
    a, b = rnd_int(rng, adt, sa), rnd_int(rng, bdt, sb)
    za, zb = rnd_int(rng, adt, ()), rnd_int(rng, bdt, (sb[-1],))
    m = single_op_model("MatMulInteger", {"a": a, "za": za}, {"y": ("int32", None)},
                        initializers={"b": b, "zb": zb}, opset=10, input_order=["a", "b", "za", "zb"])
    got = run_mlc(m, {"a": a, "za": za}, target)[0]
    np.testing.assert_array_equal(got, matmul_int_ref(a, b, za, zb))
    if len(sb) == 2:       # onnxruntime's per-column zero point needs a 2-D B
        np.testing.assert_array_equal(got, ort_run(m, {"a": a, "za": za})[0])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("zp", ["none", "scalar", "per_row_col", "runtime_b"])
def test_matmul_integer_zero_points(target, zp, rng):
    a, b = rnd_int(rng, "uint8", (2, 9, 23)), rnd_int(rng, "int8", (23, 31))
    inputs, inits, order = {"a": a}, {"b": b}, ["a", "b"]
    za, zb = 0, 0
    if zp == "scalar":
        za, zb = rnd_int(rng, "uint8", (1,)), rnd_int(rng, "int8", (1,))
        inits.update(za=za, zb=zb)
        order += ["za", "zb"]
    elif zp == "per_row_col":
        za, zb = rnd_int(rng, "uint8", (9, 1)), rnd_int(rng, "int8", (31,))
        inits.update(za=za, zb=zb)
        order += ["za", "zb"]
    elif zp == "runtime_b":
        inputs["b"] = inits.pop("b")
        za, zb = rnd_int(rng, "uint8", ()), rnd_int(rng, "int8", ())
        inputs.update(za=za, zb=zb)
        order += ["za", "zb"]
    m = single_op_model("MatMulInteger", inputs, {"y": ("int32", None)}, initializers=inits, opset=10,
                        input_order=order)
    got = run_mlc(m, inputs, target)[0]
    np.testing.assert_array_equal(got, matmul_int_ref(a, b, za, zb))


def _qmm_model(rng, sa, sb, adt, bdt, per_col, half=False, runtime_b=False):
    N = sb[-1]
    f = np.float16 if half else np.float32
    a, b = rnd_int(rng, adt, sa), rnd_int(rng, bdt, sb)
    inits = {"as": np.array([rng.uniform(0.01, 0.05)], f), "za": rnd_int(rng, adt, (1,)), "b": b,
             "bs": rng.uniform(0.002, 0.01, N if per_col else 1).astype(f),
             "zb": np.zeros(N if per_col else 1, bdt) if bdt == "int8" else rnd_int(rng, bdt, (N if per_col else 1,)),
             "ys": np.array([rng.uniform(0.05, 0.3)], f), "zy": rnd_int(rng, adt, (1,))}
    inputs = {"a": a}
    if runtime_b:
        inputs["b"] = inits.pop("b")
    m = single_op_model("QLinearMatMul", inputs, {"y": (adt, None)}, initializers=inits,
                        opset=21 if half else 10, input_order=["a", "as", "za", "b", "bs", "zb", "ys", "zy"])
    return m, inputs


def _qmm_params():
    out = []
    for p in grid([((7, 13), (13, 19)), ((2, 33, 64), (64, 50)), ((128, 256), (256, 96))],
                  [("uint8", "uint8"), ("uint8", "int8"), ("int8", "int8")], ids=lambda s: f"{s[0]}x{s[1]}"):
        for k, variant in enumerate(["per_tensor", "per_column", "float16_scales", "runtime_b"]):
            slow = bool(p.marks) or (k >= 2 and p.values[1][0] != (7, 13))
            out.append(pytest.param(*p.values, variant, id=f"{p.id}-{variant}",
                                    marks=pytest.mark.slow if slow else ()))
    return out


@pytest.mark.parametrize("target,shapes,types,variant", _qmm_params())
def test_qlinear_matmul(target, shapes, types, variant, rng):
    """Bit-exact with onnxruntime (requantization multiplier a_s * b_s / y_s in float32,
    float(acc) * multiplier rounded half to even).  The ONNX reference computes float16
    scales in float16 and the product in float64, which can differ by one step."""
    m, feeds = _qmm_model(rng, *shapes, *types, per_col=variant == "per_column",
                          half=variant == "float16_scales", runtime_b=variant == "runtime_b")
    np.testing.assert_array_equal(run_mlc(m, feeds, target)[0], ort_run(m, feeds)[0])


# --------------------------------------------------------------------------------------
# ConvInteger / QLinearConv
# --------------------------------------------------------------------------------------

def conv_int_ref(x, w, zx, zw, strides=None, pads=None, dilations=None, group=1, auto_pad="NOTSET"):
    """Exact integer convolution (NCHW / NCW) in int64."""
    one_d = x.ndim == 3
    if one_d:
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides, dilations = [1] + list(strides or [1]), [1] + list(dilations or [1])
        p = pads or [0, 0]
        pads = [0, p[0], 0, p[1]]
    strides, dilations, pads = strides or [1, 1], dilations or [1, 1], pads or [0, 0, 0, 0]
    N, C, H, W = x.shape
    OC, ICg, KH, KW = w.shape
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * 4
        for i, (n, k) in enumerate(((H, KH), (W, KW))):
            tot = max(0, (-(-n // strides[i]) - 1) * strides[i] + (k - 1) * dilations[i] + 1 - n)
            lo = tot // 2 if auto_pad == "SAME_UPPER" else tot - tot // 2
            pads[i], pads[i + 2] = lo, tot - lo
    zw = np.asarray(zw, np.int64)
    xi = np.pad(x.astype(np.int64) - np.int64(zx), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    wi = w.astype(np.int64) - (zw.reshape(-1, 1, 1, 1) if zw.size > 1 else zw.reshape(()))
    OH = (xi.shape[2] - (KH - 1) * dilations[0] - 1) // strides[0] + 1
    OW = (xi.shape[3] - (KW - 1) * dilations[1] - 1) // strides[1] + 1
    out = np.zeros((N, OC, OH, OW), np.int64)
    OCg = OC // group
    for gi in range(group):
        xs = xi[:, gi * ICg:(gi + 1) * ICg]
        for kh in range(KH):
            for kw in range(KW):
                h0, w0 = kh * dilations[0], kw * dilations[1]
                patch = xs[:, :, h0:h0 + (OH - 1) * strides[0] + 1:strides[0], w0:w0 + (OW - 1) * strides[1] + 1:strides[1]]
                out[:, gi * OCg:(gi + 1) * OCg] += np.einsum("nchw,oc->nohw", patch, wi[gi * OCg:(gi + 1) * OCg, :, kh, kw])
    return (out[:, :, 0, :] if one_d else out).astype(np.int32)


CONV_CASES = [
    ((1, 16, 17, 19), (8, 16, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1])),
    ((1, 16, 17, 19), (24, 16, 3, 3), dict()),
    ((2, 6, 9, 11), (5, 6, 3, 2), dict(pads=[1, 0, 2, 1], dilations=[2, 1])),
    ((1, 16, 17, 19), (16, 4, 3, 3), dict(group=4, pads=[1, 1, 1, 1])),
    ((1, 16, 17, 19), (16, 1, 3, 3), dict(group=16, pads=[1, 1, 1, 1], strides=[2, 2])),   # depthwise
    ((1, 16, 17, 19), (32, 8, 3, 3), dict(group=2, strides=[1, 2], auto_pad="SAME_UPPER")),
    ((1, 32, 9, 9), (64, 16, 3, 3), dict(group=2, pads=[1, 1, 1, 1])),        # blocks per group
    ((1, 5, 23), (7, 5, 3), dict(pads=[1, 1], strides=[2])),                    # 1-D
    ((1, 3, 10, 10), (4, 3, 1, 1), dict()),
    ((1, 64, 20, 20), (48, 64, 3, 3), dict(pads=[1, 1, 1, 1])),
]


def _conv_id(c):
    return f"{'x'.join(map(str, c[0]))}_{'x'.join(map(str, c[1]))}_{'_'.join(f'{k}{v}' for k, v in c[2].items())}"


@pytest.mark.parametrize("target,case,types", grid(
    CONV_CASES, [("uint8", "uint8"), ("uint8", "int8"), ("int8", "int8"), ("int8", "uint8")], ids=_conv_id))
def test_conv_integer(target, case, types, rng):
    xs, ws, attrs = case
    xdt, wdt = types
    x, w = rnd_int(rng, xdt, xs), rnd_int(rng, wdt, ws)
    zx, zw = rnd_int(rng, xdt, ()), rnd_int(rng, wdt, ())
    m = single_op_model("ConvInteger", {"x": x, "zx": zx}, {"y": ("int32", None)}, attrs=attrs,
                        initializers={"w": w, "zw": zw}, opset=10, input_order=["x", "w", "zx", "zw"])
    got = run_mlc(m, {"x": x, "zx": zx}, target)[0]
    np.testing.assert_array_equal(got, conv_int_ref(x, w, zx, zw, **attrs))
    if types == ("uint8", "uint8"):
        np.testing.assert_array_equal(got, ort_run(m, {"x": x, "zx": zx})[0])


@pytest.mark.parametrize("axis", ["ow", "oc"])
@pytest.mark.parametrize("zw_mode", ["per_channel", "none", "runtime_w"])
@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[2], CONV_CASES[6], CONV_CASES[7]], ids=_conv_id)
def test_conv_integer_variants(axis, zw_mode, case, rng, monkeypatch):
    """Both vectorisations of the VNNI convolution (output columns / output channels),
    per-channel weight zero points (onnxruntime has no kernel for those: numpy reference),
    no zero points, and run-time weights (the plain computation)."""
    monkeypatch.setattr(qlinear, "CONV_VECTOR_AXIS", axis)
    xs, ws, attrs = case
    x, w = rnd_int(rng, "uint8", xs), rnd_int(rng, "uint8", ws)
    inputs, inits, order = {"x": x}, {"w": w}, ["x", "w"]
    zx, zw = 0, 0
    if zw_mode == "per_channel":
        zx, zw = rnd_int(rng, "uint8", ()), rnd_int(rng, "uint8", (ws[0],))
        inits.update(zx=zx, zw=zw)
        order += ["zx", "zw"]
    elif zw_mode == "runtime_w":
        inputs["w"] = inits.pop("w")
    m = single_op_model("ConvInteger", inputs, {"y": ("int32", None)}, attrs=attrs, initializers=inits,
                        opset=10, input_order=order)
    np.testing.assert_array_equal(run_mlc(m, inputs)[0], conv_int_ref(x, w, zx, zw, **attrs))


def _qconv_model(rng, xs, ws, attrs, xdt, wdt, per_channel, bias, runtime_w=False):
    OC = ws[0]
    n = OC if per_channel else 1
    inits = {"xs": np.float32(rng.uniform(0.01, 0.05)), "zx": rnd_int(rng, xdt, ()), "w": rnd_int(rng, wdt, ws),
             "ws": rng.uniform(0.002, 0.01, n).astype(np.float32),
             "zw": np.zeros(n, wdt) if wdt == "int8" else rnd_int(rng, wdt, (n,)),
             "ys": np.float32(rng.uniform(0.05, 0.2)), "zy": rnd_int(rng, xdt, ())}
    order = ["x", "xs", "zx", "w", "ws", "zw", "ys", "zy"]
    if bias:
        inits["b"] = rng.integers(-5000, 5000, OC).astype(np.int32)
        order.append("b")
    inputs = {"x": rnd_int(rng, xdt, xs)}
    if runtime_w:
        inputs["w"] = inits.pop("w")
    m = single_op_model("QLinearConv", inputs, {"y": (xdt, None)}, attrs=attrs, initializers=inits, opset=10,
                        input_order=order)
    return m, inputs


@pytest.mark.parametrize("target,case,types", grid(
    [CONV_CASES[i] for i in (0, 2, 3, 4, 6, 7, 9)], [("uint8", "uint8"), ("uint8", "int8"), ("int8", "int8")],
    ids=_conv_id))
@pytest.mark.parametrize("variant", ["per_tensor", "per_channel_bias"])
def test_qlinear_conv(target, case, types, variant, rng):
    """Bit-exact with onnxruntime: the requantization multiplier x_s * w_s[c] / y_s in
    float32, (acc + bias) * multiplier rounded half to even, clamped, plus y_zero_point."""
    per_channel = variant == "per_channel_bias"
    m, feeds = _qconv_model(rng, *case, *types, per_channel=per_channel, bias=per_channel)
    np.testing.assert_array_equal(run_mlc(m, feeds, target)[0], ort_run(m, feeds)[0])


def test_qlinear_conv_runtime_weights(rng):
    m, feeds = _qconv_model(rng, *CONV_CASES[0], "uint8", "int8", per_channel=True, bias=True, runtime_w=True)
    np.testing.assert_array_equal(run_mlc(m, feeds)[0], ort_run(m, feeds)[0])


@pytest.mark.slow
@pytest.mark.parametrize("case", [((1, 64, 56, 56), (64, 64, 3, 3), dict(pads=[1, 1, 1, 1])),
                                  ((1, 256, 14, 14), (256, 256, 3, 3), dict(pads=[1, 1, 1, 1])),
                                  ((1, 128, 56, 56), (128, 128, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2]))],
                         ids=_conv_id)
def test_qlinear_conv_resnet_layers(case, rng):
    m, feeds = _qconv_model(rng, *case, "uint8", "int8", per_channel=True, bias=True)
    np.testing.assert_array_equal(run_mlc(m, feeds)[0], ort_run(m, feeds)[0])


def test_integer_ops_unsupported(rng):
    x, w = rnd_int(rng, "uint8", (1, 2, 4, 4, 4)), rnd_int(rng, "uint8", (2, 2, 1, 1, 1))
    m = single_op_model("ConvInteger", {"x": x}, {"y": ("int32", None)}, initializers={"w": w}, opset=10)
    with pytest.raises(UnsupportedError, match="3-D convolution"):
        mlc.compile(m, num_threads=1)
    a = rnd_int(rng, "uint8", (5,))
    m = single_op_model("MatMulInteger", {"a": a}, {"y": ("int32", None)},
                        initializers={"b": rnd_int(rng, "uint8", (5, 3))}, opset=10)
    with pytest.raises(UnsupportedError, match="rank"):
        mlc.compile(m, num_threads=1)


def test_tile_knobs():
    assert qlinear.tile_knobs(64, 56) == (8, 3)        # 48 + 8 columns: no guarded tail
    for t, v in [(7, 32), (14, 32), (1, 16), (3, 5), (500, 1000)]:
        mr, nv = qlinear.tile_knobs(t, v)
        assert 1 <= mr <= max(1, t) and 1 <= nv <= 4 and mr * nv <= 24


# --------------------------------------------------------------------------------------
# quantized models
# --------------------------------------------------------------------------------------

def _float_cnn(rng):
    """Conv -> Relu -> Conv(stride 2) -> Relu -> Flatten -> MatMul, float32."""
    W1 = (rng.standard_normal((16, 3, 3, 3)) * 0.3).astype(np.float32)
    B1 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    W2 = (rng.standard_normal((24, 16, 3, 3)) * 0.1).astype(np.float32)
    B2 = (rng.standard_normal(24) * 0.1).astype(np.float32)
    W3 = (rng.standard_normal((24 * 7 * 7, 10)) * 0.05).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]),
             helper.make_node("MatMul", ["f", "W3"], ["y"])]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 13, 13])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                          [numpy_helper.from_array(a, n) for n, a in
                           [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2), ("W3", W3)]])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("weight_type", ["QUInt8", "QInt8"])
def test_dynamically_quantized_model(weight_type, rng, tmp_path):
    """onnxruntime's quantize_dynamic: DynamicQuantizeLinear + ConvInteger / MatMulInteger
    + Cast + Mul by the scales (+ bias Add, Relu).  The integer parts are exact; the float
    epilogue (int32 -> float, times x_scale * w_scale) is the same float32 arithmetic."""
    ortq = pytest.importorskip("onnxruntime.quantization")
    onnx.save(_float_cnn(rng), tmp_path / "f.onnx")
    ortq.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", weight_type=getattr(ortq.QuantType, weight_type))
    q = onnx.load(tmp_path / "q.onnx")
    ops = {n.op_type for n in q.graph.node}
    assert {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"} <= ops
    mod = mlc.compile(q, num_threads=1)
    for _ in range(3):
        x = rng.standard_normal((1, 3, 13, 13)).astype(np.float32)
        np.testing.assert_allclose(mod.run({"x": x})["y"], ort_run(q, {"x": x})[0], rtol=1e-5, atol=1e-6)


def _static_qdq(rng, tmp_path, activation, weight, per_channel):
    ortq = pytest.importorskip("onnxruntime.quantization")

    class Reader(ortq.CalibrationDataReader):
        def __init__(self):
            self.data = iter([{"x": rng.standard_normal((1, 3, 13, 13)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.data, None)

    onnx.save(_float_cnn(rng), tmp_path / "f.onnx")
    ortq.quantize_static(tmp_path / "f.onnx", tmp_path / "q.onnx", Reader(), quant_format=ortq.QuantFormat.QDQ,
                         activation_type=getattr(ortq.QuantType, activation),
                         weight_type=getattr(ortq.QuantType, weight), per_channel=per_channel)
    return onnx.load(tmp_path / "q.onnx")


QDQ_CONFIGS = [("QUInt8", "QInt8", False), ("QInt8", "QInt8", True), ("QUInt8", "QUInt8", True)]


@pytest.mark.parametrize("activation,weight,per_channel", QDQ_CONFIGS)
def test_static_qdq_model(activation, weight, per_channel, rng, tmp_path):
    """A static QDQ model (QuantizeLinear -> DequantizeLinear around Conv / MatMul).

    mlc.compile rewrites each DQ -> Conv/MatMul -> Q into QLinearConv / QLinearMatMul
    (``qdq_to_qlinear``, as onnxruntime's QDQ transformer does) and computes them in
    integer arithmetic: the result is exact."""
    from mlc.frontend.qdq import qdq_to_qlinear
    q = _static_qdq(rng, tmp_path, activation, weight, per_channel)
    fused = qdq_to_qlinear(q)
    onnx.checker.check_model(fused)
    assert {"QLinearConv", "QLinearMatMul"} <= {n.op_type for n in fused.graph.node}
    assert "Conv" not in {n.op_type for n in fused.graph.node}
    compiled, integer = mlc.compile(q, num_threads=1), mlc.compile(fused, num_threads=1)
    kernel_ops = {op for k in compiled.kernels for op in k.ops}
    assert {"QLinearConv", "QLinearMatMul"} <= kernel_ops and "Conv" not in kernel_ops
    for _ in range(3):
        x = rng.standard_normal((1, 3, 13, 13)).astype(np.float32)
        ref = ort_run(q, {"x": x})[0]
        np.testing.assert_array_equal(compiled.run({"x": x})["y"], ref)
        np.testing.assert_array_equal(integer.run({"x": x})["y"], ref)


def test_qdq_to_qlinear_leaves_other_patterns(rng):
    """A float bias (not int32 at scale x_s * w_s), or a Conv read by more than its
    QuantizeLinear, stays as it is."""
    from mlc.frontend.qdq import qdq_to_qlinear
    w = rnd_int(rng, "int8", (4, 3, 1, 1))
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("xs", np.float32(0.1)), ("xz", np.uint8(3)), ("w", w), ("ws", np.float32(0.02)), ("wz", np.int8(0)),
        ("b", np.ones(4, np.float32)), ("ys", np.float32(0.2)), ("yz", np.uint8(0))]]
    nodes = [helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd", "b"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("xq", TensorProto.UINT8, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert [n.op_type for n in qdq_to_qlinear(m).graph.node] == [n.op_type for n in nodes]
