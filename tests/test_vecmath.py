"""Accuracy, special values and codegen checks for mlc.codegen.vecmath.

Each math function is wrapped in a kernel ``void f(T* in, [T* in2,] T* out, i64 n)`` that walks
the arrays one vector (or scalar) at a time, JIT-compiled for the host CPU at -O3, called
through ctypes and compared with numpy evaluated in float64.
"""
from __future__ import annotations

import ctypes
import math
import time

import numpy as np
import pytest

import llvmlite.binding as llvm
import llvmlite.ir as ir

from mlc.codegen.vecmath import SUPPORTED, emit_math

llvm.initialize_native_target()
llvm.initialize_native_asmprinter()

F32 = ir.FloatType()
F64 = ir.DoubleType()
I64 = ir.IntType(64)


# ----------------------------------------------------------------------------------------------
# JIT helper
# ----------------------------------------------------------------------------------------------

def _kernel_name(fn: str, elem: ir.Type, width: int) -> str:
    return f"k_{fn}_{'f32' if isinstance(elem, ir.FloatType) else 'f64'}_w{width}"


def _add_kernel(module: ir.Module, fn: str, elem: ir.Type, width: int, nargs: int) -> None:
    """void k(T* in0, [T* in1,] T* out, i64 n): out[i] = fn(in[i]) one width-wide vector at
    a time (n must be a multiple of width); width 1 uses scalars."""
    ptr = ir.PointerType()
    func = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (nargs + 1) + [I64]),
                       name=_kernel_name(fn, elem, width))
    *ins, out, n = func.args
    vty = elem if width == 1 else ir.VectorType(elem, width)
    entry = func.append_basic_block("entry")
    loop = func.append_basic_block("loop")
    done = func.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(I64)
    i.add_incoming(ir.Constant(I64, 0), entry)
    align = 4 if isinstance(elem, ir.FloatType) else 8
    vals = [b.load(b.gep(p, [i], source_etype=elem), typ=vty, align=align) for p in ins]
    b.store(emit_math(b, fn, vals), b.gep(out, [i], source_etype=elem), align=align)
    nxt = b.add(i, ir.Constant(I64, width))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()


def _arity(fn: str) -> int:
    return 2 if fn in ("pow", "atan2") else 1


def _target_machine(cpu: str | None = None, features: str | None = None):
    if cpu is None:
        cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features().flatten()
    return llvm.Target.from_default_triple().create_target_machine(
        cpu=cpu, features=features or "", opt=3)


def _optimize(module: ir.Module, tm):
    mod = llvm.parse_assembly(str(module))
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


class Jit:
    """Kernels for (fn, element type, width) triples, compiled together into one object
    (for the host CPU, or for an older x86 CPU by name)."""

    def __init__(self, specs, cpu: str | None = None):
        module = ir.Module(name="vecmath_test")
        for fn, elem, width in specs:
            _add_kernel(module, fn, elem, width, _arity(fn))
        self.tm = _target_machine(cpu, "") if cpu else _target_machine()
        mod = _optimize(module, self.tm)
        obj = self.tm.emit_object(mod)
        self.ee = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.tm)
        self.ee.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.ee.finalize_object()
        self._cache = {}

    def run(self, fn: str, elem: ir.Type, width: int, *inputs: np.ndarray) -> np.ndarray:
        """fn elementwise on float arrays (padded to a multiple of width)."""
        name = _kernel_name(fn, elem, width)
        if name not in self._cache:
            addr = self.ee.get_function_address(name)
            assert addr, name
            proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (len(inputs) + 1)), ctypes.c_int64)
            self._cache[name] = proto(addr)
        dtype = np.float32 if isinstance(elem, ir.FloatType) else np.float64
        n = inputs[0].size
        padded = -(-n // width) * width
        bufs = []
        for a in inputs:
            buf = np.ones(padded, dtype=dtype)
            buf[:n] = a
            bufs.append(buf)
        out = np.empty(padded, dtype=dtype)
        self._cache[name](*[x.ctypes.data for x in bufs], out.ctypes.data, padded)
        return out[:n]


# ----------------------------------------------------------------------------------------------
# float64 references and error measure
# ----------------------------------------------------------------------------------------------

_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid64(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


REF = {
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "erf": _erf64,
    "tanh": np.tanh, "sigmoid": _sigmoid64, "softplus": lambda x: np.logaddexp(0.0, x),
    "pow": np.power, "sin": np.sin, "cos": np.cos, "tan": np.tan, "atan": np.arctan,
    "asin": np.arcsin, "acos": np.arccos, "sinh": np.sinh, "cosh": np.cosh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "atan2": np.arctan2,
}
assert set(REF) == SUPPORTED


def reference(fn, *xs32):
    with np.errstate(all="ignore"):
        return REF[fn](*[np.asarray(x, np.float64) for x in xs32])


def ulp_error(got32: np.ndarray, ref64: np.ndarray) -> np.ndarray:
    """|got - ref| in float32 ulps of ref (ulp of FLT_MIN for subnormal refs, so flushing a
    subnormal result to zero costs at most 1); where ref rounds to inf or nan in float32 the
    result must be exactly that (else the error is inf)."""
    got = got32.astype(np.float64)
    with np.errstate(all="ignore"):
        ref64 = np.where(np.isfinite(ref64.astype(np.float32)), ref64,
                         ref64.astype(np.float32).astype(np.float64))
        finite = np.isfinite(ref64)
        mag = np.maximum(np.abs(ref64), 2.0 ** -126)
        ulp = 2.0 ** (np.floor(np.log2(np.where(finite, mag, 1.0))) - 23)
        err = np.where(finite, np.abs(got - ref64) / ulp, 0.0)
    special_ok = np.where(np.isnan(ref64), np.isnan(got), got == ref64)
    err = np.where(finite, err, np.where(special_ok, 0.0, np.inf))
    return np.where(np.isnan(err), np.inf, err)


def _f32(x):
    return np.asarray(x, dtype=np.float32)


def _logspace32(lo, hi, n, rng):
    """Positive float32 samples spread evenly in log scale over [lo, hi]."""
    return _f32(np.exp(rng.uniform(np.log(lo), np.log(hi), n)))


def _inputs(fn: str, n: int, seed: int = 0):
    """Test inputs for fn: uniform over a wide range plus log-spaced tiny/huge values."""
    rng = np.random.default_rng(seed)
    u = lambda lo, hi, k=n: _f32(rng.uniform(lo, hi, k))  # noqa: E731
    ls = lambda lo, hi, k=n: _logspace32(lo, hi, k, rng)  # noqa: E731
    sl = lambda lo, hi, k=n: ls(lo, hi, k) * rng.choice(_f32([-1, 1]), k)  # noqa: E731
    cat = lambda *a: (np.concatenate(a),)  # noqa: E731
    if fn == "exp":
        return cat(u(-104, 89), u(-1, 1), sl(1e-30, 1))
    if fn == "expm1":
        return cat(u(-20, 89), u(-1, 1), sl(1e-30, 1))
    if fn in ("log",):
        return cat(ls(1e-45, 3e38), u(0.5, 2), ls(1e-38, 1e38))
    if fn == "log1p":
        return cat(ls(1e-30, 3e38), -ls(1e-30, 1), u(-1, 2))
    if fn in ("erf", "tanh"):
        return cat(u(-10, 10), u(-1, 1), sl(1e-30, 1), sl(1e-38, 10))
    if fn in ("sigmoid", "softplus"):
        return cat(u(-110, 110), u(-5, 5), sl(1e-30, 1))
    if fn == "pow":
        x = np.concatenate([ls(1e-3, 1e3), ls(1e-38, 1e38), u(0.9, 1.1)])
        y = np.concatenate([u(-12, 12), u(-2, 2), u(-800, 800)])
        xi = -ls(1e-2, 1e2, 2 * n)
        yi = _f32(rng.integers(-20, 21, 2 * n))
        return np.concatenate([x, xi]), np.concatenate([y, yi])
    if fn in ("sin", "cos", "tan"):
        return cat(u(-10, 10), u(-1e4, 1e4), sl(1e-30, 1), sl(1, 1e6), sl(1e6, 3e38))
    if fn == "atan":
        return cat(u(-10, 10), sl(1e-30, 1e30))
    if fn in ("asin", "acos"):
        return cat(u(-1, 1), sl(1e-30, 1), 1 - ls(1e-7, 1e-1), -1 + ls(1e-7, 1e-1))
    if fn in ("sinh", "cosh"):
        return cat(u(-89, 89), u(-2, 2), sl(1e-30, 1))
    if fn == "asinh":
        return cat(u(-10, 10), sl(1e-30, 3e38))
    if fn == "acosh":
        return cat(1 + ls(1e-7, 1), ls(1, 3e38), u(1, 10))
    if fn == "atanh":
        return cat(u(-1, 1), sl(1e-30, 1), 1 - ls(6e-8, 1e-1))
    if fn == "atan2":
        y = np.concatenate([u(-10, 10), sl(1e-30, 1e30), u(-1, 1), sl(1e37, 3e38)])
        x = np.concatenate([u(-10, 10), sl(1e-30, 1e30), sl(1e-3, 1e3), sl(1e37, 3e38)])
        return y, x
    raise KeyError(fn)


# Bound on the max error in float32 ulps, per function; measured values are well below
# (see the module docstring of vecmath and test_report_errors).
MAX_ULP = {fn: 4.0 for fn in SUPPORTED}

# (args, expected) special values, C99 semantics
SPECIALS = {
    "exp": [((0.0,), 1.0), ((-math.inf,), 0.0), ((math.inf,), math.inf), ((89.0,), math.inf),
            ((1000.0,), math.inf), ((-200.0,), 0.0), ((math.nan,), math.nan)],
    "expm1": [((0.0,), 0.0), ((-math.inf,), -1.0), ((math.inf,), math.inf), ((100.0,), math.inf),
              ((-100.0,), -1.0), ((math.nan,), math.nan)],
    "log": [((0.0,), -math.inf), ((-0.0,), -math.inf), ((-1.0,), math.nan),
            ((-math.inf,), math.nan), ((math.inf,), math.inf), ((1.0,), 0.0),
            ((math.nan,), math.nan)],
    "log1p": [((0.0,), 0.0), ((-1.0,), -math.inf), ((-2.0,), math.nan), ((math.inf,), math.inf),
              ((math.nan,), math.nan)],
    "erf": [((0.0,), 0.0), ((math.inf,), 1.0), ((-math.inf,), -1.0), ((10.0,), 1.0),
            ((-5.0,), -1.0), ((math.nan,), math.nan)],
    "tanh": [((0.0,), 0.0), ((math.inf,), 1.0), ((-math.inf,), -1.0), ((50.0,), 1.0),
             ((-20.0,), -1.0), ((math.nan,), math.nan)],
    "sigmoid": [((0.0,), 0.5), ((math.inf,), 1.0), ((-math.inf,), 0.0), ((100.0,), 1.0),
                ((math.nan,), math.nan)],
    "softplus": [((0.0,), math.log(2.0)), ((math.inf,), math.inf), ((-math.inf,), 0.0),
                 ((1e30,), 1e30), ((100.0,), 100.0), ((math.nan,), math.nan)],
    "pow": [((2.0, 0.0), 1.0), ((math.nan, 0.0), 1.0), ((1.0, math.nan), 1.0),
            ((0.0, 2.0), 0.0), ((0.0, -1.0), math.inf), ((-0.0, 3.0), -0.0),
            ((-0.0, -3.0), -math.inf), ((-2.0, 3.0), -8.0), ((-2.0, 2.0), 4.0),
            ((-2.0, -3.0), -0.125), ((-2.0, 0.5), math.nan), ((-1.0, math.inf), 1.0),
            ((-1.0, -math.inf), 1.0), ((0.5, math.inf), 0.0), ((2.0, math.inf), math.inf),
            ((0.5, -math.inf), math.inf), ((2.0, -math.inf), 0.0), ((math.inf, 2.0), math.inf),
            ((math.inf, -1.0), 0.0), ((-math.inf, 3.0), -math.inf), ((-math.inf, 2.0), math.inf),
            ((-math.inf, -3.0), -0.0), ((-math.inf, 0.5), math.inf), ((2.0, 200.0), math.inf),
            ((2.0, -200.0), 0.0), ((math.nan, 1.0), math.nan), ((2.0, math.nan), math.nan),
            ((3.0, 2.0), 9.0), ((2.0, 10.0), 1024.0), ((4.0, 0.5), 2.0), ((1e-40, 0.5), 1e-20)],
    "sin": [((0.0,), 0.0), ((math.inf,), math.nan), ((math.nan,), math.nan)],
    "cos": [((0.0,), 1.0), ((math.inf,), math.nan), ((math.nan,), math.nan)],
    "tan": [((0.0,), 0.0), ((-math.inf,), math.nan), ((math.nan,), math.nan)],
    "atan": [((0.0,), 0.0), ((math.inf,), math.pi / 2), ((-math.inf,), -math.pi / 2),
             ((math.nan,), math.nan)],
    "asin": [((0.0,), 0.0), ((1.0,), math.pi / 2), ((-1.0,), -math.pi / 2), ((1.5,), math.nan),
             ((math.nan,), math.nan)],
    "acos": [((1.0,), 0.0), ((-1.0,), math.pi), ((0.0,), math.pi / 2), ((-1.5,), math.nan),
             ((math.nan,), math.nan)],
    "sinh": [((0.0,), 0.0), ((math.inf,), math.inf), ((-math.inf,), -math.inf),
             ((100.0,), math.inf), ((math.nan,), math.nan)],
    "cosh": [((0.0,), 1.0), ((math.inf,), math.inf), ((-math.inf,), math.inf),
             ((-100.0,), math.inf), ((math.nan,), math.nan)],
    "asinh": [((0.0,), 0.0), ((math.inf,), math.inf), ((-math.inf,), -math.inf),
              ((math.nan,), math.nan)],
    "acosh": [((1.0,), 0.0), ((0.5,), math.nan), ((-2.0,), math.nan), ((math.inf,), math.inf),
              ((math.nan,), math.nan)],
    "atanh": [((0.0,), 0.0), ((1.0,), math.inf), ((-1.0,), -math.inf), ((1.5,), math.nan),
              ((math.nan,), math.nan)],
    "atan2": [((0.0, 0.0), 0.0), ((-0.0, 0.0), -0.0), ((0.0, -0.0), math.pi),
              ((-0.0, -0.0), -math.pi), ((1.0, 0.0), math.pi / 2), ((-1.0, -0.0), -math.pi / 2),
              ((1.0, math.inf), 0.0), ((1.0, -math.inf), math.pi),
              ((math.inf, math.inf), math.pi / 4), ((math.inf, -math.inf), 3 * math.pi / 4),
              ((-math.inf, 1.0), -math.pi / 2), ((math.nan, 1.0), math.nan),
              ((1.0, math.nan), math.nan)],
}
assert set(SPECIALS) == SUPPORTED

# widths exercised for every function, and extra odd/narrow/wide ones for a few
MAIN_WIDTHS = (16, 8, 1)
EXTRA_WIDTHS = (2, 3, 4, 32)
EXTRA_FNS = ("exp", "log", "erf", "tanh", "sigmoid", "softplus", "pow", "sin", "atan2", "log1p")
F64_WIDTHS = (1, 4)


@pytest.fixture(scope="module")
def jit():
    specs = [(fn, F32, w) for fn in sorted(SUPPORTED) for w in MAIN_WIDTHS]
    specs += [(fn, F32, w) for fn in EXTRA_FNS for w in EXTRA_WIDTHS]
    specs += [(fn, F64, w) for fn in sorted(SUPPORTED) for w in F64_WIDTHS]
    return Jit(specs)


def _check(jit, fn, width, n=4096, seed=0):
    xs = _inputs(fn, n, seed)
    got = jit.run(fn, F32, width, *xs)
    err = ulp_error(got, reference(fn, *xs))
    worst = int(np.argmax(err))
    return float(err[worst]), [float(x[worst]) for x in xs], float(got[worst])


# ----------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", sorted(SUPPORTED))
def test_accuracy_f32_width16(jit, fn):
    err, at, got = _check(jit, fn, 16, n=20000)
    assert err <= MAX_ULP[fn], f"{fn}{tuple(at)} = {got}: {err:.2f} ulp"


@pytest.mark.parametrize("width", (8, 1))
@pytest.mark.parametrize("fn", sorted(SUPPORTED))
def test_accuracy_f32_other_widths(jit, fn, width):
    err, at, got = _check(jit, fn, width, n=1024, seed=1)
    assert err <= MAX_ULP[fn], f"{fn}{tuple(at)} = {got}: {err:.2f} ulp"


@pytest.mark.parametrize("width", EXTRA_WIDTHS)
@pytest.mark.parametrize("fn", EXTRA_FNS)
def test_accuracy_f32_odd_widths(jit, fn, width):
    # 1001 elements: the padding lanes and a partial last vector for widths 3 and 32
    err, at, got = _check(jit, fn, width, n=334, seed=2)
    assert err <= MAX_ULP[fn], f"{fn}{tuple(at)} = {got}: {err:.2f} ulp"


@pytest.mark.parametrize("width", (16, 1))
@pytest.mark.parametrize("fn", sorted(SUPPORTED))
def test_special_values_f32(jit, fn, width):
    cases = SPECIALS[fn]
    args = [_f32([c[0][k] for c in cases]) for k in range(_arity(fn))]
    got = jit.run(fn, F32, width, *args)
    for i, (a, w) in enumerate(cases):
        g = float(got[i])
        if math.isnan(w):
            assert math.isnan(g), f"{fn}{a} = {g}, want nan"
        elif w == 0.0:
            assert g == 0.0 and math.copysign(1, g) == math.copysign(1, w), f"{fn}{a} = {g}, want {w}"
        else:
            assert g == pytest.approx(float(np.float32(w)), rel=3e-7), f"{fn}{a} = {g}, want {w}"


def test_sigmoid_large_negative_is_tiny_positive(jit):
    x = _f32([-20, -50, -87, -88, -95, -103])
    got = jit.run("sigmoid", F32, 16, x)
    assert np.all(got >= 0) and not np.any(np.isnan(got))
    assert np.all(got[:3] > 0)
    np.testing.assert_allclose(got[:3], np.exp(x[:3].astype(np.float64)), rtol=5e-7)


def test_pow_negative_base(jit):
    x = _f32([-2, -2, -2, -3, -0.5, -1.5, -2, -8])
    y = _f32([3, 2, -1, 5, 7, 2.5, 0.1, 1 / 3])
    got = jit.run("pow", F32, 16, x, y)
    np.testing.assert_allclose(got[:5], [-8, 4, -0.5, -243, -0.0078125], rtol=3e-7)
    assert np.all(np.isnan(got[5:]))


def test_tiny_arguments_keep_relative_accuracy(jit):
    """tanh(x) ~ x, erf(x) ~ 2x/sqrt(pi), expm1/log1p/sin/asinh(x) ~ x near 0."""
    x = _f32([1e-38, -3e-30, 1e-20, 1e-10, -1e-7, 3e-5, 1e-3])
    for fn in ("tanh", "erf", "expm1", "log1p", "sin", "tan", "atan", "asin", "sinh", "asinh",
               "atanh"):
        got = jit.run(fn, F32, 16, x)
        assert ulp_error(got, reference(fn, x)).max() <= 2.0, fn


@pytest.mark.parametrize("width", F64_WIDTHS)
@pytest.mark.parametrize("fn", sorted(SUPPORTED))
def test_float64(jit, fn, width):
    xs = [x.astype(np.float64) for x in _inputs(fn, 200, seed=3)]
    got = jit.run(fn, F64, width, *xs)
    want = reference(fn, *xs)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


def test_helper_defined_once_per_fn_and_type():
    module = ir.Module()
    vty = ir.VectorType(F32, 16)
    func = ir.Function(module, ir.FunctionType(vty, [vty]), name="f")
    b = ir.IRBuilder(func.append_basic_block())
    x = func.args[0]
    y = emit_math(b, "exp", [emit_math(b, "exp", [x])])
    y = emit_math(b, "tanh", [y])
    b.ret(y)
    defined = [g for g in module.functions if not g.is_declaration and g.name != "f"]
    assert sorted(g.name for g in defined) == ["__mlc_vecmath_exp_v16f32",
                                               "__mlc_vecmath_tanh_v16f32"]
    assert all(g.linkage == "internal" and "alwaysinline" in g.attributes for g in defined)
    assert y.type == vty


def test_rejects_bad_calls():
    module = ir.Module()
    func = ir.Function(module, ir.FunctionType(F32, [F32, ir.IntType(32)]), name="f")
    b = ir.IRBuilder(func.append_basic_block())
    with pytest.raises(ValueError):
        emit_math(b, "gamma", [func.args[0]])
    with pytest.raises(ValueError):
        emit_math(b, "pow", [func.args[0]])
    with pytest.raises(TypeError):
        emit_math(b, "exp", [func.args[1]])


def _require_x86():
    if llvm.get_process_triple().split("-")[0] not in ("x86_64", "amd64"):
        pytest.skip("x86 CPU names")


@pytest.mark.parametrize("cpu", ["host", "haswell", "x86-64"])
def test_float32_code_calls_nothing(cpu):
    """After inlining, the float32 kernels contain no calls (no libm), on AVX-512, AVX2 and
    baseline SSE2 targets alike."""
    _require_x86()
    module = ir.Module(name="nocall")
    for fn in sorted(SUPPORTED):
        _add_kernel(module, fn, F32, 16 if cpu == "host" else 8, _arity(fn))
        _add_kernel(module, fn, F32, 1, _arity(fn))
    tm = _target_machine() if cpu == "host" else _target_machine(cpu, "")
    asm = tm.emit_assembly(_optimize(module, tm))
    calls = [ln.strip() for ln in asm.splitlines() if ln.strip().startswith("call")]
    assert not calls, calls[:5]


def test_accuracy_without_fma():
    """Baseline x86-64 has no FMA, so llvm.fmuladd is a separate multiply and add: the
    range reductions must stay exact and the results as accurate."""
    _require_x86()
    fns = ("exp", "expm1", "log", "log1p", "erf", "tanh", "sigmoid", "softplus", "pow", "sin",
           "atan2", "asinh")
    sse2 = Jit([(fn, F32, 8) for fn in fns], cpu="x86-64")
    for fn in fns:
        xs = _inputs(fn, 1024, seed=4)
        err = ulp_error(sse2.run(fn, F32, 8, *xs), reference(fn, *xs)).max()
        assert err <= MAX_ULP[fn], (fn, err)


def test_report_errors(jit, capsys):
    """Not a check: prints the max error per function (width 16) for the report."""
    lines = []
    for fn in sorted(SUPPORTED):
        err, at, got = _check(jit, fn, 16, n=20000)
        lines.append(f"  {fn:9s} max {err:5.2f} ulp at {tuple(at)}")
    with capsys.disabled():
        print("\nvecmath float32 max error (width 16):\n" + "\n".join(lines))


def test_report_throughput(jit, capsys):
    """Not a check: elements per ns at width 16 (printed, never asserted)."""
    n = 1 << 16
    rng = np.random.default_rng(0)
    lines = []
    for fn in ("exp", "log", "erf", "tanh", "sigmoid", "softplus", "pow", "sin", "atan"):
        x = _f32(rng.uniform(0.1 if fn in ("log", "pow") else -8, 8, n))
        args = (x, _f32(rng.uniform(-3, 3, n))) if fn == "pow" else (x,)
        jit.run(fn, F32, 16, *args)  # warm
        name = _kernel_name(fn, F32, 16)
        kernel = jit._cache[name]
        out = np.empty(n, np.float32)
        ptrs = [a.ctypes.data for a in args] + [out.ctypes.data]
        best = math.inf
        for _ in range(20):
            t0 = time.perf_counter_ns()
            kernel(*ptrs, n)
            best = min(best, time.perf_counter_ns() - t0)
        lines.append(f"  {fn:9s} {n / best:6.2f} elements/ns")
    with capsys.disabled():
        print("\nvecmath float32 throughput (width 16, 64K elements, best of 20):\n"
              + "\n".join(lines))
