"""Elementwise operators (kernels/elementwise.py) against onnxruntime.

Each test compiles one model holding a node per case (shapes, dtypes, attribute variants;
see tests/_opcheck.py) and compares every output with onnxruntime run on that case alone.  Inputs mix ordinary values with the edge cases
the op defines behaviour for: zeros of both signs, halves for rounding, infinities, NaN,
values outside a function's domain.  Where onnxruntime has no CPU kernel for a dtype
(float64 Tan, Erf, ...), a numpy reference computed in float64 stands in.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

import mlc
from mlc.errors import UnsupportedError

from _opcheck import case, check, make, run_cases, values
from conftest import ort_run

NAN, INF = np.nan, np.inf


EDGE = (0.0, -0.0, NAN, INF, -INF, 1e30, -1e30, 1.0, -1.0, 0.5, -0.5)

# op -> (low, high, specials, attrs, opset)
UNARY = {
    "Relu": (-5, 5, EDGE, None, 14),
    "Abs": (-5, 5, EDGE, None, 13),
    "Neg": (-5, 5, EDGE, None, 13),
    "Sign": (-5, 5, EDGE, None, 13),
    "Sigmoid": (-30, 30, EDGE + (-88.0, 88.0, 100.0), None, 13),
    "Tanh": (-10, 10, EDGE + (1e-4, -20.0), None, 13),
    "Exp": (-90, 90, EDGE + (88.7, -103.0, 1e-3), None, 13),
    "Log": (0, 100, (0.0, -0.0, NAN, INF, -1.0, 1e-30, 1.0, 1e30, 0.1), None, 13),
    "Sqrt": (0, 100, (0.0, -0.0, NAN, INF, -1.0, 1e-30, 1e30, 2.0), None, 13),
    "Erf": (-5, 5, EDGE + (1e-3, 3.9, -4.0), None, 13),
    "Reciprocal": (-5, 5, EDGE + (1e-3, -3.0), None, 13),
    "Floor": (-10, 10, EDGE + (-2.5, 2.5, -0.2, 1e7 + 0.5), None, 13),
    "Ceil": (-10, 10, EDGE + (-2.5, 2.5, -0.2, 0.2), None, 13),
    "Round": (-10, 10, EDGE + (-2.5, -1.5, 1.5, 2.5, 3.5, 0.49999997, -3.5), None, 11),
    "Sin": (-10, 10, EDGE + (3.1415927, 1e5, -1e4), None, 7),
    "Cos": (-10, 10, EDGE + (1.5707964, 1e5, -1e4), None, 7),
    "Tan": (-1.5, 1.5, EDGE + (1.5707964, 3.0, -100.0), None, 7),
    "Asin": (-1, 1, (1.0, -1.0, 0.0, -0.0, NAN, 1.5, -2.0, INF, 0.999), None, 7),
    "Acos": (-1, 1, (1.0, -1.0, 0.0, -0.0, NAN, 1.5, -2.0, INF, 0.999), None, 7),
    "Atan": (-10, 10, EDGE + (1e10, -1e-10), None, 7),
    "Sinh": (-10, 10, (0.0, -0.0, NAN, INF, -INF, 1e-4, -1e-4, 80.0, -80.0, 100.0), None, 9),
    "Cosh": (-10, 10, (0.0, -0.0, NAN, INF, -INF, 1e-4, 80.0, -80.0, 100.0), None, 9),
    "Asinh": (-100, 100, EDGE + (1e-5, -1e-5, 1e20), None, 9),
    "Acosh": (1, 100, (1.0, NAN, INF, 0.5, -1.0, 1.0001, 1e20), None, 9),
    "Atanh": (-0.99, 0.99, (0.0, -0.0, NAN, 1.0, -1.0, 1.5, 1e-5, -0.9999), None, 9),
    "Softplus": (-20, 20, EDGE + (-100.0, 100.0, 30.0), None, 1),
    "Softsign": (-10, 10, EDGE, None, 1),
    "Mish": (-20, 20, EDGE + (-100.0, 100.0), None, 18),
    "Elu": (-5, 5, EDGE + (-1e-4,), None, 6),
    "Selu": (-5, 5, EDGE + (-1e-4,), None, 6),
    "Celu": (-5, 5, EDGE + (-1e-4,), None, 12),
    "HardSigmoid": (-6, 6, EDGE + (-2.5, 2.5, 3.0, -3.0), None, 6),
    "HardSwish": (-6, 6, EDGE + (-3.0, 3.0, -2.9, 2.9), None, 14),
    "LeakyRelu": (-5, 5, EDGE, None, 16),
    "ThresholdedRelu": (-5, 5, EDGE + (1.0, 1.0000001), None, 10),
    "Shrink": (-3, 3, EDGE + (0.5, -0.5, 0.5000001), None, 9),
    "IsNaN": (-5, 5, EDGE, None, 13),
    "IsInf": (-5, 5, EDGE, None, 10),
}

ATTR_VARIANTS = [
    ("LeakyRelu", {"alpha": 0.2}), ("LeakyRelu", {"alpha": -1.5}),
    ("Elu", {"alpha": 0.5}), ("Elu", {"alpha": 2.0}),
    ("Selu", {"alpha": 1.5, "gamma": 2.0}),
    ("Celu", {"alpha": 2.0}), ("Celu", {"alpha": 0.3}),
    ("HardSigmoid", {"alpha": 0.1, "beta": 0.3}), ("HardSigmoid", {"alpha": -0.5, "beta": 0.6}),
    ("ThresholdedRelu", {"alpha": 0.3}), ("ThresholdedRelu", {"alpha": -0.5}),
    ("Shrink", {"bias": 0.3, "lambd": 1.0}), ("Shrink", {"bias": -1.0, "lambd": 0.0}),
    ("IsInf", {"detect_positive": 0}), ("IsInf", {"detect_negative": 0}),
    ("IsInf", {"detect_positive": 0, "detect_negative": 0}),
]


def test_swish(rng):
    if not onnx.defs.has("Swish"):
        pytest.skip("this onnx version has no Swish")
    x = values(rng, (4, 33), -20, 20, EDGE)
    check("Swish", {"x": x}, None, 24)
    check("Swish", {"x": x}, {"alpha": 1.702}, 24)


def test_hard_swish_exact_formula():
    # y = x * max(0, min(1, x / 6 + 0.5)), around both kinks
    x = np.array([-4, -3, -2.999, -1, 0, 1, 2.999, 3, 4, 0.25, -0.25], np.float32)
    got = check("HardSwish", {"x": x}, None, 14)
    want = x * np.clip(x * np.float32(1 / 6) + np.float32(0.5), 0, 1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_hard_sigmoid_exact_formula():
    x = np.array([-3, -2.5, -2.4, 0, 2.4, 2.5, 3], np.float32)
    got = check("HardSigmoid", {"x": x}, {"alpha": 0.2, "beta": 0.5}, 6)
    np.testing.assert_allclose(got, np.clip(0.2 * x + 0.5, 0, 1), rtol=1e-6, atol=1e-7)


def test_round_half_to_even():
    x = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 0.49999997, 2.5000002], np.float32)
    got = check("Round", {"x": x}, None, 11)
    np.testing.assert_array_equal(got, np.round(x))


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


# numpy stand-ins where onnxruntime has no float64 / float16 CPU kernel
REFS = {
    "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan, "Sinh": np.sinh,
    "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh, "Atanh": np.arctanh,
    "Erf": _erf, "Sin": np.sin, "Cos": np.cos,
    "Celu": lambda x: np.where(x > 0, x, np.expm1(x.astype(np.float64))),
    "Softplus": lambda x: np.logaddexp(0, x.astype(np.float64)),
    "Mish": lambda x: x * np.tanh(np.logaddexp(0, x.astype(np.float64))),
    "IsInf": np.isinf, "IsNaN": np.isnan, "Softsign": lambda x: x / (1 + np.abs(x)),
    "Shrink": lambda x: np.where(x < -0.5, x, np.where(x > 0.5, x, 0)),
    "Sign": np.sign, "Relu": lambda x: np.maximum(x, 0),
    "Elu": lambda x: np.where(x < 0, np.expm1(x.astype(np.float64)), x),
    "Selu": lambda x: 1.05070102214813232421875 * np.where(
        x > 0, x, 1.67326319217681884765625 * np.expm1(x.astype(np.float64))),
    "HardSigmoid": lambda x: np.clip(np.float32(0.2) * x + 0.5, 0, 1),
    "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "ThresholdedRelu": lambda x: np.where(x > 1, x, 0),
}

VARIANTS_BY_OP = {op: [a for o, a in ATTR_VARIANTS if o == op] for op in UNARY}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(op, rng):
    """float32 (default and other attributes), float64, float16, one compile."""
    lo, hi, specials, attrs, opset = UNARY[op]
    cases = [case({"x": values(rng, (3, 5, 37), lo, hi, specials)})]
    cases += [case({"x": values(rng, (7, 13), lo, hi, specials)}, attrs=a) for a in VARIANTS_BY_OP[op]]
    for dtype in ("float64", "float16"):
        sp = specials
        if dtype == "float16":
            sp = tuple(v for v in sp if not np.isfinite(v) or abs(v) < 6e4)
            if op in ("Sin", "Cos"):
                sp = tuple(v for v in sp if abs(v) < 1e3)   # fp16 spacing too coarse
            if op == "Sign":
                # onnxruntime's float16 Sign gives 0 for NaN (its float/double Sign give NaN)
                sp = tuple(v for v in sp if not np.isnan(v))
        # onnxruntime's double Shrink computes in float; mlc keeps double precision
        cases.append(case({"x": values(rng, (5, 19), lo, hi, sp, dtype)},
                          force_ref=(op == "Shrink" and dtype == "float64")))
    run_cases(op, cases, attrs, opset, ref=REFS.get(op))


INT_UNARY = {"Abs": ("int8", "int32", "int64", "uint8"), "Neg": ("int8", "int32", "int64"),
             "Sign": ("int8", "int32", "int64", "uint8"), "Relu": ("int8", "int32", "int64")}


@pytest.mark.parametrize("op", sorted(INT_UNARY))
def test_unary_int(op, rng):
    cases = []
    for dtype in INT_UNARY[op]:
        info = np.iinfo(dtype)
        x = rng.integers(max(info.min, -1000), min(info.max, 1000), size=(3, 41)).astype(dtype)
        x.reshape(-1)[:3] = [0, info.max, info.min + (1 if op in ("Abs", "Neg") and info.min < 0 else 0)]
        cases.append(case({"x": x}))
    ref = {"Relu": lambda v: np.maximum(v, 0), "Abs": np.abs, "Neg": np.negative, "Sign": np.sign}[op]
    run_cases(op, cases, None, 14 if op == "Relu" else 13, ref=ref)


def test_shrink_int(rng):
    cases = [case({"x": rng.integers(-20, 20, size=(4, 11)).astype(dt)}) for dt in ("int32", "int64", "int8")]
    cases.append(case({"x": rng.integers(5, 200, size=(4, 11)).astype("uint8")}))
    run_cases("Shrink", cases, {"bias": 2.0, "lambd": 3.0}, 9)


# --- binary arithmetic with broadcasting -------------------------------------------------------

SHAPES = [((2, 3, 5, 7), (3, 1, 1)), ((5, 1), (1, 7)), ((4, 5, 17), (17,)), ((3, 19), ()),
          ((), (2, 11)), ((2, 1, 5), (3, 1)), ((6, 13), (6, 13)), ((1,), (4, 1, 3))]
BINARY_DTYPES = ("float32", "float64", "float16", "int32", "int64", "int8", "uint8")


def _operands(rng, dtype, sa, sb, op):
    if dtype.startswith("float"):
        a = rng.uniform(-10, 10, size=sa).astype(dtype)
        b = rng.uniform(-10, 10, size=sb).astype(dtype)
        if op == "Div":
            b = np.where(np.abs(b) < 0.1, np.asarray(0.5, dtype), b).astype(dtype)
        return a, b
    info = np.iinfo(dtype)
    lim = 11 if np.dtype(dtype).itemsize == 1 else 30000
    a = rng.integers(max(info.min, -lim), min(info.max, lim), size=sa).astype(dtype)
    b = rng.integers(max(info.min, -lim), min(info.max, lim), size=sb).astype(dtype)
    if op == "Div":
        b = np.asarray(np.where(b == 0, np.asarray(3, dtype), b), dtype)
    return a, b


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_binary_broadcast(op, rng):
    """Every dtype x scalar / [C,1,1] vs [N,C,H,W] / [1,W] vs [H,1] / rank-differing shapes."""
    cases = []
    for dtype in BINARY_DTYPES:
        for sa, sb in SHAPES:
            a, b = _operands(rng, dtype, sa, sb, op)
            cases.append(case({"a": a, "b": b}))
    run_cases(op, cases, None, 14)


def test_binary_constant_operand(rng):
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    cases = [case({"x": x}, {"c": rng.standard_normal(s).astype(np.float32)}) for s in ((3, 1, 1), (7,), ())]
    for op in ("Add", "Sub", "Mul", "Div"):
        run_cases(op, cases, None, 14)


def test_int_div_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 1, -1, 0, 100, -100, 2**31 - 1, -2**31, 5], np.int32)
    b = np.array([2, 2, -2, -2, 3, 3, 5, -7, 7, -1, 1, -5], np.int32)
    got = run_cases("Div", [case({"a": a, "b": b}), case({"a": a.astype(np.int64) * 3, "b": b.astype(np.int64)})],
                    None, 14)
    np.testing.assert_array_equal(got[0][:9], [3, -3, -3, 3, 0, 0, 0, -14, -14])


def test_int_div_by_zero_does_not_trap():
    # onnxruntime would crash (SIGFPE); mlc must return *something* without dying
    a = np.array([[5, -5, 0, 2**31 - 1, -2**31, 9, 4]], np.int32)
    b = np.array([[0, 0, 0, -1, -1, 0, 2]], np.int32)
    for op, fmod in (("Div", None), ("Mod", 0), ("Mod", 1)):
        model = make(op, {"a": a, "b": b}, {"fmod": fmod} if fmod is not None else None, 13)
        out = mlc.compile(model, num_threads=1).run({"a": a, "b": b})["out"]
        assert out.shape == a.shape
        if op == "Div":
            assert out[0, 3] == -(2**31 - 1) and out[0, 4] == -2**31 and out[0, 6] == 2
        else:
            assert out[0, 3] == 0 and out[0, 4] == 0 and out[0, 6] == 0


# --- Pow ----------------------------------------------------------------------------------------

def test_pow_float(rng):
    x = values(rng, (3, 29), 0, 5, (0.0, -0.0, INF, NAN, 1.0, 2.0, 1e-3))
    y = values(rng, (3, 29), -3, 3, (2.0, 0.0, -1.0, 0.5, NAN, 0.0, INF))
    # negative base with integral exponents (odd and even) and a broadcast exponent row
    xn = values(rng, (4, 7), -4, 4, (-2.0, -1.0, -0.0, -INF, -3.0))
    yn = np.array([0, 1, 2, 3, -1, -2, 5], np.float32)
    run_cases("Pow", [case({"x": x, "y": y}), case({"x": xn, "y": yn}),
                      case({"x": x.astype(np.float64), "y": y.astype(np.float64)}),
                      case({"x": x.astype(np.float16), "y": y.astype(np.float16)})], None, 15)


def test_pow_constant_exponent(rng):
    cases = []
    for e in (2.0, 3.0, 0.5, -1.0, 1.0, 0.0, 1.5, -0.5, 4.0, -2.0):
        specials = (0.0, INF, NAN, -2.0, -3.0)
        if float(e).is_integer() or e == 0.5:
            specials += (-0.0, -INF)
        cases.append(case({"x": values(rng, (5, 23), -4, 4, specials)}, {"e": np.array(e, np.float32)}))
    run_cases("Pow", cases, None, 15)


def test_pow_signed_zero_inf_base_non_integer_exponent():
    x = np.array([-0.0, -INF, 0.0, INF, -0.0, -INF, -0.0, -INF], np.float32)
    cases = [case({"x": x}, {"e": np.array(e, np.float32)}) for e in (1.5, -1.5, 2.5)]
    cases += [case({"x": x, "e": np.full_like(x, e)}) for e in (1.5, -1.5, 2.5)]
    run_cases("Pow", cases, None, 15)


POW_TYPES = [("float32", "int32"), ("float32", "int64"), ("float64", "int64"), ("int32", "int32"),
             ("int64", "int64"), ("int32", "int64"), ("int64", "int32"), ("int32", "float32"),
             ("int64", "float64"), ("float16", "float32"), ("float32", "float16")]


def test_pow_mixed_types(rng):
    cases = []
    for xt, yt in POW_TYPES:
        if xt.startswith("float"):
            x = rng.uniform(-4, 4, size=(3, 17)).astype(xt)
        else:
            x = rng.integers(-9, 10, size=(3, 17)).astype(xt)
        if yt.startswith("float"):
            y = rng.uniform(0, 4, size=(17,)).astype(yt)
            x = np.abs(x)
        else:
            y = rng.integers(0, 6, size=(17,)).astype(yt)
        cases.append(case({"x": x, "y": y}))
    run_cases("Pow", cases, None, 15)


def test_pow_int_constant_exponent(rng):
    x = rng.integers(-50, 50, size=(4, 9)).astype(np.int64)
    x32 = x.astype(np.int32)
    cases = [case({"x": x}, {"e": np.array(e, np.int64)}) for e in (2, 3, 1, 0, 4)]
    cases += [case({"x": x32}, {"e": np.array(e, np.int32)}) for e in (2, 3)]
    run_cases("Pow", cases, None, 15)


# --- Mod, BitShift ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_int(fmod, rng):
    cases = []
    for dtype in ("int32", "int64", "int8", "int16", "uint8", "uint32", "uint64"):
        info = np.iinfo(dtype)
        lim = min(info.max, 1000)
        a = rng.integers(max(info.min, -lim), lim, size=(3, 5, 7)).astype(dtype)
        b = rng.integers(max(info.min, -20), 20, size=(5, 1)).astype(dtype)
        b[b == 0] = 7
        cases.append(case({"a": a, "b": b}))
    a = np.array([7, -7, 7, -7, 0, 5, -5, 6, -6], np.int32)
    b = np.array([3, 3, -3, -3, 3, 5, 5, -3, 4], np.int32)
    cases.append(case({"a": a, "b": b}))
    run_cases("Mod", cases, {"fmod": fmod}, 13)


def test_mod_float_fmod(rng):
    cases = []
    for dtype in ("float32", "float64", "float16"):
        a = values(rng, (4, 23), -50, 50, (0.0, -0.0, -5.5, 5.5, INF, NAN, 1e30, -7.0, 1e-30), dtype)
        b = values(rng, (4, 23), -7, 7, (3.0, 3.0, 2.0, -2.0, 2.0, 1.0, 0.7, 3.5, 0.1), dtype)
        b[np.abs(b) < 1e-3] = 1.25
        cases.append(case({"a": a, "b": b}))
    run_cases("Mod", cases, {"fmod": 1}, 13,
              ref=lambda x, y: np.fmod(x.astype(np.float32), y.astype(np.float32)))


def test_mod_float_floor_needs_opset_28(rng):
    a = rng.uniform(-5, 5, (3, 4)).astype(np.float32)
    b = rng.uniform(1, 5, (3, 4)).astype(np.float32)
    model = make("Mod", {"a": a, "b": b}, {"fmod": 0}, 13)
    with pytest.raises(UnsupportedError, match="fmod"):
        mlc.compile(model)


def test_mod_float_floor_opset_28(rng):
    a = values(rng, (4, 23), -50, 50, (0.0, -5.5, 5.5, -7.0, 7.0))
    b = values(rng, (4, 23), -7, 7, (3.0, 3.0, -2.0, 3.5, -3.5))
    b[np.abs(b) < 1e-3] = 1.25
    check("Mod", {"a": a, "b": b}, {"fmod": 0}, 28, ref=np.mod)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift(direction, rng):
    cases = []
    for dtype in ("uint8", "uint16", "uint32", "uint64"):
        bits = np.dtype(dtype).itemsize * 8
        x = rng.integers(0, np.iinfo(dtype).max, size=(3, 21), dtype=dtype, endpoint=True)
        y = rng.integers(0, bits, size=(21,)).astype(dtype)
        cases += [case({"x": x, "y": y}), case({"x": x, "y": np.array(3, dtype)})]
    run_cases("BitShift", cases, {"direction": direction}, 11)


def test_bitshift_oversized_shift_is_zero():
    # uint8 / uint16 shift in int in C++, so shifting by >= the width gives 0 in onnxruntime
    x = np.array([1, 255, 128, 7], np.uint8)
    y = np.array([8, 9, 8, 15], np.uint8)
    run_cases("BitShift", [case({"x": x, "y": y}, attrs={"direction": d}) for d in ("LEFT", "RIGHT")], None, 11)


# --- variadic -----------------------------------------------------------------------------------

VAR_SHAPES = [[(3, 17)], [(3, 17), (17,)], [(2, 1, 5), (3, 1), (1, 1, 1)],
              [(4, 1, 6), (5, 1), (1, 6), ()], [(2, 3), (2, 3), (2, 3), (2, 3), (2, 3)]]


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
def test_variadic(op, rng):
    """1..5 inputs with broadcasting; Max/Min also on ints (Sum/Mean are float-only)."""
    dtypes = ("float32", "float64", "float16") + (("int32", "int64") if op in ("Max", "Min") else ())
    cases = []
    for dtype in dtypes:
        for shapes in VAR_SHAPES:
            ins = {}
            for k, s in enumerate(shapes):
                if dtype.startswith("float"):
                    ins[f"x{k}"] = rng.uniform(-10, 10, size=s).astype(dtype)
                else:
                    ins[f"x{k}"] = rng.integers(-1000, 1000, size=s).astype(dtype)
            cases.append(case(ins))
    ref = {"Mean": lambda *a: sum(x.astype(np.float64) for x in a) / len(a)}.get(op)
    run_cases(op, cases, None, 13, ref=ref)


def test_max_min_nan_propagation():
    a = np.array([NAN, 1.0, NAN, -INF, INF, 0.0, -0.0, 2.0], np.float32)
    b = np.array([1.0, NAN, NAN, 0.0, 1.0, -0.0, 0.0, 3.0], np.float32)
    c = np.array([0.5, 0.5, 0.5, NAN, 0.5, 0.5, 0.5, 0.5], np.float32)
    cases = [case({"a": a, "b": b}), case({"a": a, "b": b, "c": c})]
    for op in ("Max", "Min", "Sum"):
        run_cases(op, cases, None, 13)


def test_max_min_small_and_unsigned_ints(rng):
    cases = []
    for dtype in ("uint8", "int8", "uint32", "uint64", "int16"):
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=(3, 19), dtype=dtype, endpoint=True)
        b = rng.integers(info.min, info.max, size=(19,), dtype=dtype, endpoint=True)
        cases.append(case({"a": a, "b": b}))
    for op in ("Max", "Min"):
        run_cases(op, cases, None, 13)


# --- PRelu, Clip --------------------------------------------------------------------------------

PRELU_SHAPES = [((2, 3, 5, 7), (3, 1, 1)), ((2, 3, 5, 7), (1,)), ((4, 17), (17,)),
                ((2, 3, 5), (2, 3, 5)), ((3, 4, 5), (4, 1)), ((6,), ())]


def test_prelu(rng):
    cases = []
    for xs, ss in PRELU_SHAPES:
        x = values(rng, xs, -5, 5, (0.0, -0.0, NAN, INF, -INF, 1.0, -1.0))
        s = rng.uniform(-0.5, 1.5, size=ss).astype(np.float32)
        cases += [case({"x": x, "s": s}), case({"x": x}, {"s": s})]
    for dt in ("int32", "int64"):
        x = rng.integers(-100, 100, size=(2, 3, 4)).astype(dt)
        cases.append(case({"x": x, "s": rng.integers(-3, 4, size=(3, 1)).astype(dt)}))
    x = values(rng, (2, 3, 4), -5, 5, (0.0, -0.0, NAN, INF, -INF), "float64")
    cases.append(case({"x": x, "s": np.array([0.1, 0.2, 0.3], np.float64).reshape(3, 1)}))
    x16 = values(rng, (2, 3, 4), -5, 5, (0.0, -0.0, NAN, INF, -INF), "float16")
    cases.append(case({"x": x16, "s": np.array([0.25], np.float16)}))
    run_cases("PRelu", cases, None, 16)


CLIP_X = (0.0, -0.0, NAN, INF, -INF, 1.0, -1.0, 0.999, -1.001)


def test_clip_float(rng):
    """Bounds given, omitted, empty-named, as initializers and as run-time inputs; NaN and
    +-inf inputs (a missing bound is the type's lowest / max, so inf becomes FLT_MAX)."""
    lo, hi = np.array(-1.0, np.float32), np.array(1.0, np.float32)
    cases = []
    for names in (["x", "lo", "hi"], ["x", "lo"], ["x", "", "hi"], ["x"], ["x", "lo", ""]):
        used = {n: {"lo": lo, "hi": hi}[n] for n in names if n in ("lo", "hi")}
        x = values(rng, (3, 5, 7), -3, 3, CLIP_X)
        cases.append(case({"x": x, **used}, order=names))
        cases.append(case({"x": x}, used, order=names))
    # min > max: everything becomes max
    cases.append(case({"x": values(rng, (3, 11), -3, 3, CLIP_X)},
                      {"lo": np.array(1.0, np.float32), "hi": np.array(-1.0, np.float32)}))
    run_cases("Clip", cases, None, 13)


def test_clip_types(rng):
    cases = []
    for dtype in ("int32", "int64", "uint8", "int8", "float64", "float16"):
        if dtype.startswith("float"):
            x = values(rng, (4, 21), -300, 300, CLIP_X, dtype)
        else:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, size=(4, 21), dtype=dtype, endpoint=True)
        lo, hi = np.array(5, dtype), np.array(100, dtype)
        cases += [case({"x": x}, {"lo": lo, "hi": hi}), case({"x": x, "lo": lo, "hi": hi}),
                  case({"x": x, "hi": hi}, order=["x", "", "hi"]), case({"x": x})]
    run_cases("Clip", cases, None, 13)


def test_clip_legacy_attributes(rng):
    """Clip-6 (bounds as attributes; the frontend converts it to Clip-11)."""
    x = values(rng, (3, 11), -3, 3, CLIP_X)
    run_cases("Clip", [case({"x": x}, attrs={"min": -0.5, "max": 2.0}), case({"x": x}, attrs={"max": 0.25}),
                       case({"x": x})], None, 6)


# --- a fused chain ------------------------------------------------------------------------------

def test_fused_chain(rng):
    """Mul -> Add -> Clip -> Sigmoid -> Div, fused into one kernel, with broadcasting."""
    from onnx import TensorProto, helper, numpy_helper
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    nodes = [helper.make_node("Mul", ["x", "s"], ["a"]), helper.make_node("Add", ["a", "b"], ["c"]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["d"]), helper.make_node("Sigmoid", ["d"], ["e"]),
             helper.make_node("Div", ["e", "x"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((3, 1, 1)).astype(np.float32), "s"),
             numpy_helper.from_array(rng.standard_normal((7,)).astype(np.float32), "b"),
             numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(1.5, np.float32), "hi")]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    want = ort_run(model, {"x": x})[0]
    got = mlc.compile(model, num_threads=2).run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
