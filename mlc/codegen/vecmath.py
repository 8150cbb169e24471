"""Branch-free vector math for generated kernels.

``emit_math(builder, fn, args)`` emits ``fn(*args)`` elementwise for a float32 or float64
scalar or vector of any width (``float``, ``<3 x float>``, ``<16 x float>``, ``<32 x float>``,
...).  The body of each function is defined once per ``(fn, type)`` in ``builder.module`` as an
internal ``alwaysinline`` helper and called from the builder's position, so after the
inliner runs the code sits in the caller's loop with no call left.

float32 is the fast path and calls nothing: range reduction, minimax polynomials (fitted
for this module; the structure follows Cephes, fdlibm/musl and SLEEF), integer bit tricks
for 2**n and for exponent extraction, and ``select`` for the special values, in one basic
block (sin/cos/tan add one rarely taken block for huge arguments, see below).
Polynomials use ``llvm.fmuladd``, which becomes an FMA where the target has one and a
multiply and an add where it does not; no algorithm here depends on the fusion for its
accuracy (the range reductions use Cody-Waite constants that are exact without it), so the
same IR is right for AVX-512, AVX2 and plain SSE2 targets and never turns into a libm call.

Accuracy for float32, measured against float64 numpy over wide ranges (see
tests/test_vecmath.py): within a few ulp for every function, 1-2 ulp for most.  Special
values follow C99 (NaN in gives NaN out, exp overflow gives +inf, log(0) = -inf, ...).
Subnormal inputs are handled (log scales them up first); subnormal results of exp, sigmoid,
softplus and pow are produced rather than flushed, but are only held to an absolute error
of about FLT_MIN * 2^-23.

float64 is the slow path: each lane calls the C library (``exp``, ``erf``, ...), with
sigmoid and softplus composed from them.

sin/cos/tan reduce the argument in double precision: Cody-Waite for |x| < 2**28, and
Payne-Hanek (a table of 2/pi bits) for larger finite |x|, in a block that only runs when some
lane needs it, so they are accurate over the whole float range.
"""
from __future__ import annotations

import functools
import math

import llvmlite.ir as ir

__all__ = ["emit_math", "SUPPORTED"]

# fn -> number of arguments
_ARITY = {
    "exp": 1, "expm1": 1, "log": 1, "log1p": 1, "erf": 1, "tanh": 1, "sigmoid": 1,
    "softplus": 1, "pow": 2, "sin": 1, "cos": 1, "tan": 1, "atan": 1, "asin": 1, "acos": 1,
    "sinh": 1, "cosh": 1, "asinh": 1, "acosh": 1, "atanh": 1, "atan2": 2,
}
SUPPORTED = frozenset(_ARITY)

_INF = math.inf
_NAN = math.nan
_LN2 = math.log(2.0)
_LOG2E = 1.0 / _LN2
# Cody-Waite split of ln 2 for float: the high part has 9 significant bits, so n * hi is exact
# for |n| < 2**15 and x - n * hi is exact; lo = ln2 - hi rounded to float.
_LN2_HI_F = 0.693359375
_LN2_LO_F = -2.12194440e-4
_FLT_MIN = 2.0 ** -126
_PI = math.pi
_PIO2_HI_F = 1.5707963705062866        # float(pi/2)
_PIO2_LO_F = -4.371139000186243e-08    # pi/2 - float(pi/2), as a float
_PI_HI_F = 3.1415927410125732          # float(pi)
_PI_LO_F = -8.742278000372485e-08      # pi - float(pi), as a float
_PIO4_F = 0.7853981633974483
_TAN_PIO8 = 0.41421356237309503        # tan(pi/8) = sqrt(2) - 1
_TAN_3PIO8 = 2.414213562373095         # tan(3pi/8) = sqrt(2) + 1
# musl __rem_pio2f: pi/2 = PIO2_1 + PIO2_1T with PIO2_1 holding the first 25 bits, so that
# n * PIO2_1 is exact in double for |n| < 2**28.
_PIO2_1 = 1.57079631090164184570e+00
_PIO2_1T = 1.58932547735281966916e-08
_ROUND_MAGIC_F = 12582912.0                # 1.5 * 2**23: (t + M) - M rounds t to an integer
_ROUND_MAGIC_D = 6755399441055744.0        # 1.5 * 2**52

# ---- minimax coefficients ----
# Fitted for this module (Lawson's iteration for the minimax weighted error, then rounding the
# coefficients to float one at a time and refitting the rest); errors are those of the
# float-coefficient polynomial in exact arithmetic.
# exp(r) = 1 + r P(r), |r| <= ln2/2: rel. error 3.1e-9
_EXP_P = (1.0, 0.4999999403953552, 0.1666652262210846, 0.04166829213500023,
          0.008368532173335552, 0.001381829846650362)
# expm1(r) = r + r^2 (1/2 + r Q(r)), |r| <= ln2/2: error 4.3e-10 relative to expm1(r)
_EXPM1_Q = (0.1666666567325592, 0.04166649281978607, 0.008333547972142696, 0.001393230864778161,
            0.00019760191207751632)
# log(1 + f) = f - f^2/2 + f^3 R(f), f in [sqrt(1/2) - 1, sqrt(2) - 1]: rel. error 5.8e-9
_LOG_R = (0.3333333134651184, -0.2500081956386566, 0.2000124156475067, -0.166234090924263,
          0.14201579988002777, -0.13159610331058502, 0.12762217223644257, -0.07636439055204391)
# log1p(t) = t P(t), t in [0, 1] (softplus): rel. error 5.3e-9
_LOG1P_UNIT = (1.0, -0.4999993145465851, 0.33330464363098145, -0.24958020448684692,
               0.1969212144613266, -0.15344977378845215, 0.10661371052265167,
               -0.0574604831635952, 0.02008846029639244, -0.003291074186563492)
# erf(x) = x (C + P(x^2)), |x| < 0.875, C = float(2/sqrt(pi)) and P(0) absorbing the rest of
# 2/sqrt(pi): rel. error 8.6e-9
_ERF_C = 1.128379225730896
_ERF_SMALL = (-6.823552212154027e-08, -0.3761255145072937, 0.11282464861869812,
              -0.026791777461767197, 0.005032611545175314, -0.0006205349345691502)
_ERF_SPLIT = 0.875
# log(erfc(a)) = Q(a), a in [0.875, 4]: erf error 1.9e-9 relative
_ERF_LOGERFC = (-0.00013357496936805546, -1.1279361248016357, -0.6367372274398804,
                -0.10432752221822739, 0.022420238703489304, -0.0030923020094633102,
                0.00020099787798244506)
# atan(x) = x + x^3 P(x^2), |x| <= tan(pi/8): rel. error 7e-10
_ATAN_P = (-0.33333316445350647, 0.19998528063297272, -0.1424439251422882, 0.1059919148683548,
           -0.06090138852596283)
# asin(x) = x + x^3 P(x^2), |x| <= 1/2: rel. error 4.9e-9
_ASIN_P = (0.16666752099990845, 0.074953094124794, 0.04546914994716644, 0.024184778332710266,
           0.042158305644989014)
# double precision, used inside the float32 pow and sin/cos/tan:
# sin(r) = r + r^3 P(r^2), cos(r) = 1 - r^2/2 + r^4 Q(r^2), |r| <= pi/4: rel. error 5e-12
_SIN_D = (-0.1666666664079711, 0.008333329304847828, -0.00019839312270814258,
          2.718121638403802e-06)
_COS_D = (0.0416666666194896, -0.0013888883499962664, 2.4799460130949955e-05,
          -2.720575261642797e-07)
# 2^r = 1 + r P(r), |r| <= 1/2: rel. error 5e-11
_EXP2_D = (0.6931471807045324, 0.2402265106656142, 0.055504103659908134, 0.0096180381320246,
           0.001333393505610671, 0.0001546675632683518, 1.5196156406983795e-05)
# log2(m) = s P(s^2), s = (m - 1)/(m + 1), m in [sqrt(1/2), sqrt(2)]: rel. error 1.3e-11
_LOG2_D = (2.8853900817880143, 0.9617966742549311, 0.5770834754082983, 0.4116776184246844,
           0.3406567502572547)


# --------------------------------------------------------------------------------------------
# IR building helpers
# --------------------------------------------------------------------------------------------

def _mangle(ty: ir.Type) -> str:
    """LLVM intrinsic suffix: f32, f64, v16f32, i32, v8i1 ..."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_mangle(ty.element)}"
    if isinstance(ty, ir.FloatType):
        return "f32"
    if isinstance(ty, ir.DoubleType):
        return "f64"
    if isinstance(ty, ir.IntType):
        return f"i{ty.width}"
    raise TypeError(f"vecmath: unsupported type {ty}")


class _V:
    """Emits IR for one float type (scalar or vector) and its same-shape int and i1 types.

    Every method returns an ``ir.Value`` of the matching shape; Python floats and ints are
    splatted to constants of the right type, so the emitters read like scalar code.
    """

    def __init__(self, b: ir.IRBuilder, ty: ir.Type):
        self.b = b
        self.ty = ty
        self.lanes = ty.count if isinstance(ty, ir.VectorType) else None
        self.elem = ty.element if self.lanes else ty
        self.is_f32 = isinstance(self.elem, ir.FloatType)
        self.nbits = 32 if self.is_f32 else 64
        self.ity = self._shape(ir.IntType(self.nbits))
        self.i32ty = self._shape(ir.IntType(32))

    def _shape(self, elem: ir.Type) -> ir.Type:
        return ir.VectorType(elem, self.lanes) if self.lanes else elem

    def other(self, elem: ir.Type) -> "_V":
        """The same builder and lane count for another float element type."""
        return _V(self.b, self._shape(elem))

    # constants -------------------------------------------------------------------------------
    def c(self, v: float) -> ir.Constant:
        k = ir.Constant(self.elem, float(v))
        return ir.Constant(self.ty, [k] * self.lanes) if self.lanes else k

    def ic(self, v: int, ty: ir.Type | None = None) -> ir.Constant:
        ty = ty or self.ity
        elem = ty.element if isinstance(ty, ir.VectorType) else ty
        k = ir.Constant(elem, int(v))
        return ir.Constant(ty, [k] * self.lanes) if self.lanes else k

    def _f(self, x):
        return self.c(x) if isinstance(x, (int, float)) else x

    def _i(self, x, ty=None):
        return self.ic(x, ty or self.ity) if isinstance(x, int) else x

    # float arithmetic --------------------------------------------------------------------------
    def add(self, a, b): return self.b.fadd(self._f(a), self._f(b))
    def sub(self, a, b): return self.b.fsub(self._f(a), self._f(b))
    def mul(self, a, b): return self.b.fmul(self._f(a), self._f(b))
    def div(self, a, b): return self.b.fdiv(self._f(a), self._f(b))
    def neg(self, a): return self.b.fneg(a)

    def _intrinsic(self, name: str, nargs: int, ty: ir.Type | None = None) -> ir.Function:
        ty = ty or self.ty
        full = f"llvm.{name}.{_mangle(ty)}"
        module = self.b.module
        fn = module.globals.get(full)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(ty, [ty] * nargs), name=full)
        return fn

    def fma(self, a, b, c):
        """a * b + c, fused where the target has FMA (llvm.fmuladd)."""
        return self.b.call(self._intrinsic("fmuladd", 3), [self._f(a), self._f(b), self._f(c)])

    def abs(self, a): return self.b.call(self._intrinsic("fabs", 1), [a])
    def sqrt(self, a): return self.b.call(self._intrinsic("sqrt", 1), [a])

    def copysign(self, mag, sign):
        return self.b.call(self._intrinsic("copysign", 2), [self._f(mag), self._f(sign)])

    def poly(self, x, coeffs):
        """Horner: coeffs[0] + coeffs[1] x + ... + coeffs[-1] x^(n-1)."""
        acc = self.c(coeffs[-1])
        for k in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, k)
        return acc

    # comparisons and selects -------------------------------------------------------------------
    def lt(self, a, b): return self.b.fcmp_ordered("<", self._f(a), self._f(b))
    def gt(self, a, b): return self.b.fcmp_ordered(">", self._f(a), self._f(b))
    def ge(self, a, b): return self.b.fcmp_ordered(">=", self._f(a), self._f(b))
    def eq(self, a, b): return self.b.fcmp_ordered("==", self._f(a), self._f(b))
    def ult(self, a, b): return self.b.fcmp_unordered("<", self._f(a), self._f(b))
    def isnan(self, a): return self.b.fcmp_unordered("uno", a, a)

    def sel(self, cond, a, b):
        return self.b.select(cond, self._f(a), self._f(b))

    def any(self, mask):
        """i1: true if any lane of the mask is set."""
        if not self.lanes:
            return mask
        as_int = self.b.bitcast(mask, ir.IntType(self.lanes))
        return self.b.icmp_unsigned("!=", as_int, ir.Constant(ir.IntType(self.lanes), 0))

    def and_(self, a, b): return self.b.and_(a, b)
    def or_(self, a, b): return self.b.or_(a, b)
    def not_(self, a): return self.b.not_(a)

    def min_(self, x, hi):
        """min(x, hi) that keeps a NaN x (select on an ordered compare)."""
        return self.sel(self.gt(x, hi), hi, x)

    def max_(self, x, lo):
        """max(x, lo) that keeps a NaN x."""
        return self.sel(self.lt(x, lo), lo, x)

    # integer views -----------------------------------------------------------------------------
    def bits(self, x): return self.b.bitcast(x, self.ity)
    def from_bits(self, i): return self.b.bitcast(i, self.ty)
    def iadd(self, a, b, ty=None): return self.b.add(self._i(a, ty), self._i(b, ty))
    def isub(self, a, b, ty=None): return self.b.sub(self._i(a, ty), self._i(b, ty))
    def iand(self, a, b, ty=None): return self.b.and_(self._i(a, ty), self._i(b, ty))
    def ior(self, a, b, ty=None): return self.b.or_(self._i(a, ty), self._i(b, ty))
    def shl(self, a, k, ty=None): return self.b.shl(self._i(a, ty), self._i(k, ty))
    def ashr(self, a, k, ty=None): return self.b.ashr(self._i(a, ty), self._i(k, ty))
    def ilt(self, a, b, ty=None): return self.b.icmp_signed("<", self._i(a, ty), self._i(b, ty))
    def ieq(self, a, b, ty=None): return self.b.icmp_signed("==", self._i(a, ty), self._i(b, ty))
    def isel(self, cond, a, b, ty=None): return self.b.select(cond, self._i(a, ty), self._i(b, ty))
    def tofloat(self, i): return self.b.sitofp(i, self.ty)

    def signbit(self, x):
        """True where the sign bit of x is set (also for -0.0 and negative NaNs)."""
        return self.ilt(self.bits(x), 0)

    def round_int(self, t):
        """(n, ni): t rounded to the nearest integer as float and as int, for |t| < 2**22
        (2**51 for double): add and subtract 1.5 * 2**(mantissa bits); the integer is the
        difference of the bit patterns.  NaN or inf give garbage ints, never poison."""
        magic = _ROUND_MAGIC_F if self.is_f32 else _ROUND_MAGIC_D
        shifted = self.add(t, magic)
        n = self.sub(shifted, magic)
        magic_bits = 0x4B400000 if self.is_f32 else 0x4338000000000000
        return n, self.isub(self.bits(shifted), magic_bits)

    def pow2(self, ni):
        """2**ni as a float for integer ni in the normal exponent range (bit construction)."""
        mant = 23 if self.is_f32 else 52
        bias = 127 if self.is_f32 else 1023
        return self.from_bits(self.shl(self.iadd(ni, bias), mant))


# --------------------------------------------------------------------------------------------
# float32 cores (take and return values of one float32 type; also used by each other)
# --------------------------------------------------------------------------------------------

def _exp_core(v: _V, x, lo: float = -_INF, hi: float = _INF):
    """exp(x) for float32, knowing lo <= x <= hi (or x NaN).

    Cephes expf: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2),
    exp(r) = 1 + r P(r) with a degree-5 minimax P, then scale by 2^n.
    When the range allows overflow or underflow, x is clamped to [-104, 89] (NaN kept) and
    2^n is applied in two halves so that n in [-150, 129] gives inf, subnormals and 0
    correctly rounded.
    """
    wide = lo < -87.0 or hi > 88.0
    if lo < -104.0:
        x = v.max_(x, -104.0)
    if hi > 89.0:
        x = v.min_(x, 89.0)
    n, ni = v.round_int(v.mul(x, _LOG2E))
    r = v.fma(n, -_LN2_HI_F, x)
    r = v.fma(n, -_LN2_LO_F, r)
    p = v.fma(r, v.poly(r, _EXP_P), 1.0)
    if not wide:
        return v.mul(p, v.pow2(ni))
    n1 = v.ashr(ni, 1)
    n2 = v.isub(ni, n1)
    return v.mul(v.mul(p, v.pow2(n1)), v.pow2(n2))


def _expm1_core(v: _V, x, lo: float = -_INF, hi: float = _INF):
    """expm1(x) for float32, knowing lo <= x <= hi (or NaN).

    fdlibm/SLEEF style: x = n ln2 + r, |r| <= ln2/2, e = expm1(r) = r + r^2 (1/2 + r Q(r))
    (degree-4 minimax Q, accurate relative to e), then expm1(x) = 2^n e + (2^n - 1),
    computed as 2 (h e + (h - 1/2)) with h = 2^(n-1), which is exact up to one rounding and
    keeps 2^n representable up to n = 128.  x is clamped to [-18, 88.8]: below, the result
    is -1 in float; above, it overflows to inf.
    """
    if lo < -18.0:
        x = v.max_(x, -18.0)
    if hi > 88.8:
        x = v.min_(x, 88.8)
    n, ni = v.round_int(v.mul(x, _LOG2E))
    r = v.fma(n, -_LN2_HI_F, x)
    r = v.fma(n, -_LN2_LO_F, r)
    e = v.fma(v.poly(r, _EXPM1_Q), r, 0.5)
    e = v.fma(v.mul(r, r), e, r)
    h = v.pow2(v.isub(ni, 1))
    return v.mul(v.fma(h, e, v.sub(h, 0.5)), 2.0)


def _log_parts(v: _V, x, subnormal: bool = True):
    """Split positive x into (k, f) with x = 2^k (1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1).

    musl logf bit trick: adding 0x3f800000 - 0x3f3504f3 to the bits carries into the exponent
    exactly when the mantissa is >= sqrt(2)/2 * 2; the mantissa is then rebuilt around
    sqrt(1/2).  Subnormal x is first scaled by 2^23.  Returns k as float and as int.
    """
    ki_adj = None
    if subnormal:
        tiny = v.lt(x, _FLT_MIN)
        x = v.sel(tiny, v.mul(x, 2.0 ** 23), x)
        ki_adj = v.isel(tiny, -23, 0)
    ix = v.iadd(v.bits(x), 0x3F800000 - 0x3F3504F3)
    ki = v.isub(v.ashr(ix, 23), 127)
    if ki_adj is not None:
        ki = v.iadd(ki, ki_adj)
    m = v.from_bits(v.iadd(v.iand(ix, 0x007FFFFF), 0x3F3504F3))
    return ki, v.sub(m, 1.0)


def _log1p_poly(v: _V, f, kf):
    """k ln2 + log(1 + f) for f in [sqrt(1/2) - 1, sqrt(2) - 1]:
    log(1 + f) = f - f^2/2 + f^3 R(f) (degree-7 minimax R), ln2 split Cody-Waite style."""
    z = v.mul(f, f)
    y = v.mul(v.mul(f, z), v.poly(f, _LOG_R))
    y = v.fma(kf, _LN2_LO_F, y)
    y = v.fma(z, -0.5, y)
    return v.fma(kf, _LN2_HI_F, v.add(f, y))


def _log_core(v: _V, x):
    """log(x) for float32 with C special values."""
    ki, f = _log_parts(v, x)
    r = _log1p_poly(v, f, v.tofloat(ki))
    r = v.sel(v.eq(x, _INF), _INF, r)
    r = v.sel(v.ult(x, 0.0), _NAN, r)         # negative or NaN
    return v.sel(v.eq(x, 0.0), -_INF, r)


def _log1p_core(v: _V, x, unit: bool = False):
    """log1p(x) for float32.

    u = 1 + x rounded, with its rounding error err recovered exactly (2Sum; Fast2Sum when
    0 <= x <= 1 is known, ``unit``); u = 2^k m as in log, and
    log1p(x) = k ln2 + log(1 + f) with f = (m - 1) + err 2^-k, so the low bits of x that
    1 + x dropped still reach the polynomial.  With ``unit`` the special-value selects are
    skipped (x in [0, 1] or NaN, which propagates through err).
    """
    u = v.add(x, 1.0)
    if unit:
        err = v.sub(x, v.sub(u, 1.0))
    else:
        xp = v.sub(u, 1.0)
        onep = v.sub(u, xp)
        err = v.add(v.sub(1.0, onep), v.sub(x, xp))
    ki, f = _log_parts(v, u, subnormal=False)
    # 2^-k, with k capped where err no longer matters (u >= 2^127)
    scale = v.pow2(v.isub(0, v.isel(v.ilt(ki, 126), ki, 126)))
    f = v.fma(err, scale, f)
    r = _log1p_poly(v, f, v.tofloat(ki))
    if unit:
        return r
    r = v.sel(v.eq(x, _INF), _INF, r)
    r = v.sel(v.ult(x, -1.0), _NAN, r)        # x < -1 or NaN
    return v.sel(v.eq(x, -1.0), -_INF, r)


def _erf_core(v: _V, x):
    """erf(x) for float32.

    |x| < 0.875: erf(x) = x (C + P(x^2)), degree-5 minimax P, C = float(2/sqrt(pi)) (the
    rest of 2/sqrt(pi) is in P(0), which keeps the relative accuracy down to 0).
    |x| >= 0.875: erf(|x|) = 1 - exp(Q(|x|)) with Q a degree-6 minimax fit of log(erfc) on
    [0.875, 4]; |x| is capped at 4, where erf rounds to 1 (so erf(+-inf) = +-1).
    Both are evaluated and one is selected.
    """
    a = v.abs(x)
    small = v.fma(x, _ERF_C, v.mul(x, v.poly(v.mul(x, x), _ERF_SMALL)))
    ac = v.min_(a, 4.0)
    q = v.poly(ac, _ERF_LOGERFC)
    large = v.copysign(v.sub(1.0, _exp_core(v, q, lo=-18.0, hi=-1.0)), x)
    return v.sel(v.lt(a, _ERF_SPLIT), small, large)


def _tanh_core(v: _V, x):
    """tanh(x) for float32: tanh(a) = e / (e + 2) with e = expm1(2a), a = |x| capped at 9
    (tanh(9) rounds to 1), sign restored; accurate relative to tanh for tiny x too."""
    a = v.min_(v.abs(x), 9.0)
    e = _expm1_core(v, v.add(a, a), lo=0.0, hi=18.0)
    return v.copysign(v.div(e, v.add(e, 2.0)), x)


def _atan_ratio(v: _V, num, den, can_exceed_one: bool = True):
    """atan(num / den) for num >= 0, den > 0 (NaN propagates), with one division.

    Cephes atanf reduction of a = num/den: a > tan(3pi/8): pi/2 + atan(-den/num);
    a > tan(pi/8): pi/4 + atan((num - den)/(num + den)); else atan(num/den); then
    atan(z) = z + z^3 P(z^2) (degree-4 minimax P), pi/2 and pi/4 split hi + lo.
    """
    mid = v.gt(num, v.mul(den, _TAN_PIO8))
    zn = v.sel(mid, v.sub(num, den), num)
    zd = v.sel(mid, v.add(num, den), den)
    base_hi = v.sel(mid, _PIO4_F, 0.0)
    base_lo = v.sel(mid, _PIO2_LO_F * 0.5, 0.0)
    if can_exceed_one:
        big = v.gt(num, v.mul(den, _TAN_3PIO8))
        zn = v.sel(big, v.neg(den), zn)
        zd = v.sel(big, num, zd)
        base_hi = v.sel(big, _PIO2_HI_F, base_hi)
        base_lo = v.sel(big, _PIO2_LO_F, base_lo)
    z = v.div(zn, zd)
    z2 = v.mul(z, z)
    y = v.fma(v.mul(z, z2), v.poly(z2, _ATAN_P), base_lo)
    return v.add(base_hi, v.add(z, y))


def _asin_parts(v: _V, a):
    """For a = |x| in [0, 1]: (s, big) with asin(a) = s when not big, pi/2 - 2 s when big.
    Cephes asinf: a > 1/2 uses asin(a) = pi/2 - 2 asin(sqrt((1 - a)/2));
    asin(z) = z + z^3 P(z^2) (degree-4 minimax P) for |z| <= 1/2."""
    big = v.gt(a, 0.5)
    z2 = v.sel(big, v.mul(v.sub(1.0, a), 0.5), v.mul(a, a))
    z = v.sel(big, v.sqrt(z2), a)
    s = v.fma(v.mul(z, z2), v.poly(z2, _ASIN_P), z)
    return s, big


# --------------------------------------------------------------------------------------------
# float32 emitters, one per function
# --------------------------------------------------------------------------------------------

def _emit_exp(v, x):
    return _exp_core(v, x)


def _emit_expm1(v, x):
    return _expm1_core(v, x)


def _emit_log(v, x):
    return _log_core(v, x)


def _emit_log1p(v, x):
    return _log1p_core(v, x)


def _emit_erf(v, x):
    return _erf_core(v, x)


def _emit_tanh(v, x):
    return _tanh_core(v, x)


def _emit_sigmoid(v, x):
    """sigmoid(x) = 1 / (1 + t) for x >= 0 and t / (1 + t) for x < 0, t = exp(-|x|):
    never overflows, relative accuracy (and subnormals) for large negative x."""
    t = _exp_core(v, v.neg(v.abs(x)), hi=0.0)
    return v.div(v.sel(v.ge(x, 0.0), 1.0, t), v.add(t, 1.0))


def _emit_softplus(v, x):
    """softplus(x) = max(x, 0) + log1p(t), t = exp(-|x|) in [0, 1]; log1p(t) = t P(t) with a
    degree-9 minimax P on [0, 1] (no reduction needed there).  Large x gives x, and -inf 0."""
    t = _exp_core(v, v.neg(v.abs(x)), hi=0.0)
    return v.fma(t, v.poly(t, _LOG1P_UNIT), v.sel(v.gt(x, 0.0), x, 0.0))


def _emit_pow(v, x, y):
    """pow(x, y) for float32 as 2^(y log2|x|) evaluated in double precision (musl powf idea,
    without tables): |x| = 2^k m as in log, log2 m = s P(s^2) with s = (m-1)/(m+1)
    (degree-4 minimax; s from a float reciprocal refined in double), t = y (k + log2 m)
    in double, 2^t = 2^n 2^r with |r| <= 1/2 and a degree-7 polynomial, then one rounding
    to float (which also gives inf, subnormals and 0).
    Signs and C99 special cases via selects: negative x with odd integer y negates, with
    non-integer y gives NaN; pow(x, 0) = pow(1, y) = pow(-1, +-inf) = 1."""
    d = v.other(ir.DoubleType())
    b = v.b
    ax = v.abs(x)
    ki, f = _log_parts(v, ax)
    # s = f / (m + 1) to double precision without a double division: a float reciprocal
    # (2^-23 accurate), an exact double product, and one correction step with the residual
    rcp = v.div(1.0, v.add(f, 2.0))
    fd = b.fpext(f, d.ty)
    dd = d.add(fd, 2.0)                        # m + 1, exact in double
    rd = b.fpext(rcp, d.ty)
    q = d.mul(fd, rd)
    s = d.fma(d.fma(d.neg(q), dd, fd), rd, q)
    l2 = d.fma(s, d.poly(d.mul(s, s), _LOG2_D), b.sitofp(ki, d.ty))
    axd = b.fpext(ax, d.ty)
    l2 = d.sel(d.eq(axd, 0.0), -_INF, l2)
    l2 = d.sel(d.eq(axd, _INF), _INF, l2)
    t = d.mul(b.fpext(y, d.ty), l2)
    # exp2 in double; clamp keeps NaN and makes 2^n representable (fptrunc does the rest)
    t = d.min_(d.max_(t, -160.0), 160.0)
    n, ni = d.round_int(t)
    r = d.sub(t, n)
    p = d.fma(r, d.poly(r, _EXP2_D), 1.0)
    res = v.b.fptrunc(d.mul(p, d.pow2(ni)), v.ty)
    # integer-ness of y: |y| >= 2^24 is an even integer (inf counts as even), else convert
    ay = v.abs(y)
    yfinite_small = v.lt(ay, 2.0 ** 24)
    yi = b.fptosi(v.sel(yfinite_small, y, 0.0), v.ity)
    y_is_int = v.or_(v.not_(yfinite_small), v.eq(v.tofloat(yi), y))
    # odd means an odd *integer*: fptosi truncates, so 1.5 would otherwise count as odd
    y_is_odd = v.and_(v.and_(yfinite_small, y_is_int), v.ieq(v.iand(yi, 1), 1))
    res = v.sel(v.and_(v.signbit(x), y_is_odd), v.neg(res), res)
    neg_finite = v.and_(v.lt(x, 0.0), v.gt(x, -_INF))
    res = v.sel(v.and_(neg_finite, v.not_(y_is_int)), _NAN, res)
    res = v.sel(v.isnan(x), _NAN, res)
    one = v.or_(v.eq(y, 0.0), v.eq(x, 1.0))
    one = v.or_(one, v.and_(v.eq(x, -1.0), v.eq(ay, _INF)))
    return v.sel(one, 1.0, res)


def _trig_reduce(v: _V, x):
    """x = j pi/2 + r, |r| <= pi/4 (about), r in double, j as int32.

    |x| < 2^28: musl __rem_pio2f medium case, in double: j = round(x 2/pi) and
    r = x - j P1 - j P1T with pi/2 = P1 (25 bits, so j P1 is exact) + P1T.
    |x| >= 2^28 (finite): Payne-Hanek (_trig_reduce_big) in a block that runs only when some
    lane needs it.  inf and NaN give r = NaN.
    """
    d = v.other(ir.DoubleType())
    b = v.b
    xd = b.fpext(x, d.ty)
    fn, ji = d.round_int(d.mul(xd, 2.0 / _PI))
    r = d.fma(fn, -_PIO2_1, xd)
    r = d.fma(fn, -_PIO2_1T, r)
    j = b.trunc(ji, v.i32ty)
    ax = v.abs(x)
    big = v.and_(v.ge(ax, 2.0 ** 28), v.lt(ax, _INF))
    entry = b.block
    slow = b.append_basic_block("trig.big")
    merge = b.append_basic_block("trig.reduced")
    b.cbranch(v.any(big), slow, merge)
    b.position_at_end(slow)
    r_big, j_big = _trig_reduce_big(v, d, x, ax)
    r_sel = d.sel(big, r_big, r)
    j_sel = v.isel(big, j_big, j, v.i32ty)
    slow_end = b.block
    b.branch(merge)
    b.position_at_end(merge)
    r_phi = b.phi(d.ty)
    r_phi.add_incoming(r, entry)
    r_phi.add_incoming(r_sel, slow_end)
    j_phi = b.phi(v.i32ty)
    j_phi.add_incoming(j, entry)
    j_phi.add_incoming(j_sel, slow_end)
    return d, r_phi, j_phi


# Payne-Hanek tables: for x = M 2^E (M the 24-bit integer mantissa, E = 5 .. 104),
# G_E = (2^E 2/pi) mod 4 = g0 + g1 + g2, with g0 (bits 2^1 .. 2^-26) and g1 (2^-27 .. 2^-54)
# of 28 bits so that M g0 and M g1 are exact in double; g2 holds bits 2^-55 .. 2^-90.
_PH_EMIN, _PH_EMAX = 5, 104


def _two_over_pi_bits(nbits: int) -> int:
    """floor(2/pi * 2^nbits), from pi by Machin's formula in integer arithmetic."""
    one = 1 << (nbits + 72)

    def atan_inv(k: int) -> int:
        total = term = one // k
        n, sign = 1, -1
        while term:
            term //= k * k
            n += 2
            total += sign * (term // n)
            sign = -sign
        return total

    pi = 16 * atan_inv(5) - 4 * atan_inv(239)
    return ((2 * one) << nbits) // pi


@functools.lru_cache(maxsize=None)
def _payne_hanek_tables() -> tuple[list[float], list[float], list[float]]:
    nbits = _PH_EMAX + 96
    bits = _two_over_pi_bits(nbits)
    g0, g1, g2 = [], [], []
    for e in range(_PH_EMIN, _PH_EMAX + 1):
        w = (bits >> (nbits - e - 90)) & ((1 << 92) - 1)    # (2^e 2/pi mod 4) * 2^90
        g0.append(math.ldexp(w >> 64, -26))
        g1.append(math.ldexp((w >> 36) & ((1 << 28) - 1), -54))
        g2.append(math.ldexp(w & ((1 << 36) - 1), -90))
    return g0, g1, g2


def _table(module: ir.Module, name: str, values: list[float]) -> ir.GlobalVariable:
    g = module.globals.get(name)
    if g is None:
        ty = ir.ArrayType(ir.DoubleType(), len(values))
        g = ir.GlobalVariable(module, ty, name=name)
        g.linkage = "internal"
        g.global_constant = True
        g.initializer = ir.Constant(ty, values)
    return g


def _trig_reduce_big(v: _V, d: _V, x, ax):
    """Payne-Hanek for float |x| >= 2^28: x 2/pi = M G_E (mod 4); the three products M g_k
    are reduced mod 4 and summed so that the fraction keeps ~2^-80 absolute accuracy.
    Returns (r, j) like _trig_reduce (lanes with smaller x get garbage, never poison)."""
    b = v.b
    i32 = v.i32ty
    bits = v.bits(ax)
    idx = v.isub(v.ashr(bits, 23), 150 + _PH_EMIN)
    idx = v.isel(v.ilt(idx, 0), 0, idx)
    idx = v.isel(v.ilt(idx, _PH_EMAX - _PH_EMIN), idx, _PH_EMAX - _PH_EMIN)
    mant = v.from_bits(v.ior(v.iand(bits, 0x007FFFFF), 0x4B000000))   # M as a float
    md = b.fpext(mant, d.ty)
    g = [_gather(v, d, _table(b.module, f"__mlc_vecmath_2opi_g{k}", t), idx)
         for k, t in enumerate(_payne_hanek_tables())]
    p0 = d.mul(md, g[0])
    n0, _ = d.round_int(d.mul(p0, 0.25))
    p0 = d.fma(n0, -4.0, p0)                  # exact, in [-2, 2]
    p1 = d.mul(md, g[1])
    jf, ji = d.round_int(d.add(p0, p1))
    frac = d.add(d.add(d.sub(p0, jf), p1), d.mul(md, g[2]))
    r = d.mul(frac, _PI / 2)
    j = b.trunc(ji, i32)
    neg = v.signbit(x)
    return d.sel(neg, d.neg(r), r), v.isel(neg, v.isub(0, j, i32), j, i32)


def _gather(v: _V, d: _V, table: ir.GlobalVariable, idx):
    """table[idx] lane by lane (double results); only used on the rare Payne-Hanek path."""
    b = v.b
    zero = ir.Constant(ir.IntType(32), 0)
    if not v.lanes:
        return b.load(b.gep(table, [zero, idx], inbounds=True, source_etype=table.value_type),
                      typ=d.elem)
    out = ir.Constant(d.ty, ir.Undefined)
    for lane in range(v.lanes):
        li = ir.Constant(ir.IntType(32), lane)
        ptr = b.gep(table, [zero, b.extract_element(idx, li)], inbounds=True,
                    source_etype=table.value_type)
        out = b.insert_element(out, b.load(ptr, typ=d.elem), li)
    return out


def _sincos_d(d: _V, r):
    """(sin r, cos r) in double for |r| <= pi/4 (degree-9 and degree-8 minimax)."""
    r2 = d.mul(r, r)
    s = d.fma(d.mul(r, r2), d.poly(r2, _SIN_D), r)
    c = d.fma(d.mul(r2, r2), d.poly(r2, _COS_D), d.fma(r2, -0.5, 1.0))
    return s, c


def _emit_sin(v, x):
    """sin(x): reduce by pi/2 in double, then +-sin r or +-cos r by the quadrant j."""
    d, r, j = _trig_reduce(v, x)
    s, c = _sincos_d(d, r)
    i32 = v.i32ty
    res = d.sel(v.ieq(v.iand(j, 1, i32), 1, i32), c, s)
    res = d.sel(v.ieq(v.iand(j, 2, i32), 2, i32), d.neg(res), res)
    return v.b.fptrunc(res, v.ty)


def _emit_cos(v, x):
    """cos(x): reduce by pi/2 in double, then +-cos r or +-sin r by the quadrant j."""
    d, r, j = _trig_reduce(v, x)
    s, c = _sincos_d(d, r)
    i32 = v.i32ty
    res = d.sel(v.ieq(v.iand(j, 1, i32), 1, i32), d.neg(s), c)
    res = d.sel(v.ieq(v.iand(j, 2, i32), 2, i32), d.neg(res), res)
    return v.b.fptrunc(res, v.ty)


def _emit_tan(v, x):
    """tan(x): reduce by pi/2 in double; tan r = sin r / cos r, or -cos r / sin r for odd j."""
    d, r, j = _trig_reduce(v, x)
    s, c = _sincos_d(d, r)
    i32 = v.i32ty
    odd = v.ieq(v.iand(j, 1, i32), 1, i32)
    res = d.div(d.sel(odd, d.neg(c), s), d.sel(odd, s, c))
    return v.b.fptrunc(res, v.ty)


def _emit_atan(v, x):
    return v.copysign(_atan_ratio(v, v.abs(x), v.c(1.0)), x)


def _emit_asin(v, x):
    """asin(x), Cephes asinf; |x| > 1 gives NaN."""
    a = v.abs(x)
    s, big = _asin_parts(v, a)
    res = v.sel(big, v.add(v.fma(s, -2.0, _PIO2_HI_F), _PIO2_LO_F), s)
    res = v.copysign(res, x)
    return v.sel(v.gt(a, 1.0), _NAN, res)


def _emit_acos(v, x):
    """acos(x), Cephes acosf: |x| <= 1/2: pi/2 - asin(x); x > 1/2: 2 asin(sqrt((1-x)/2));
    x < -1/2: pi - 2 asin(sqrt((1+x)/2)).  |x| > 1 gives NaN."""
    a = v.abs(x)
    s, big = _asin_parts(v, a)
    s_signed = v.copysign(s, x)
    small_res = v.add(v.sub(_PIO2_HI_F, s_signed), _PIO2_LO_F)
    two_s = v.add(s, s)
    big_res = v.sel(v.lt(x, 0.0), v.add(v.sub(_PI_HI_F, two_s), _PI_LO_F), two_s)
    res = v.sel(big, big_res, small_res)
    return v.sel(v.gt(a, 1.0), _NAN, res)


def _emit_atan2(v, y, x):
    """atan2(y, x): atan of min(|x|,|y|) / max(|x|,|y|) (a ratio in [0, 1]), then
    pi/2 - . when |y| > |x|, pi - . when x is negative (sign bit, so -0 counts), sign of y.
    0/0 and inf/inf ratios are replaced by 0/1 and 1/1 to give C99's signed zeros, pi and
    pi/4, 3pi/4 results."""
    ax = v.abs(x)
    ay = v.abs(y)
    swap = v.gt(ay, ax)
    num = v.sel(swap, ax, ay)
    den = v.sel(swap, ay, ax)
    both_inf = v.and_(v.eq(ax, _INF), v.eq(ay, _INF))
    num = v.sel(both_inf, 1.0, num)
    den = v.sel(v.or_(both_inf, v.eq(den, 0.0)), 1.0, den)
    # keep num + den finite for huge finite operands (exact scaling)
    scale = v.sel(v.gt(den, 2.0 ** 125), 0.25, 1.0)
    num = v.mul(num, scale)
    den = v.mul(den, scale)
    a = _atan_ratio(v, num, den, can_exceed_one=False)
    a = v.sel(swap, v.add(v.sub(_PIO2_HI_F, a), _PIO2_LO_F), a)
    a = v.sel(v.signbit(x), v.add(v.sub(_PI_HI_F, a), _PI_LO_F), a)
    a = v.copysign(a, y)
    return v.sel(v.or_(v.isnan(x), v.isnan(y)), _NAN, a)


def _emit_sinh(v, x):
    """sinh(x), fdlibm: e = expm1(|x|), sinh = (e + e / (e + 1)) / 2 (accurate for small x);
    for |x| > 88 (where e overflows before sinh does) use w = exp(|x|/2), sinh = (w/2) w."""
    a = v.abs(x)
    huge = v.gt(a, 88.0)
    e = _expm1_core(v, v.sel(huge, v.mul(a, 0.5), a), lo=0.0)
    res = v.mul(v.add(e, v.div(e, v.add(e, 1.0))), 0.5)
    w = v.add(e, 1.0)
    res = v.sel(huge, v.mul(v.mul(w, 0.5), w), res)
    return v.copysign(res, x)


def _emit_cosh(v, x):
    """cosh(x) = (w + 1/w) / 2 with w = exp(|x|); for |x| > 88 w = exp(|x|/2) and (w/2) w."""
    a = v.abs(x)
    huge = v.gt(a, 88.0)
    w = _exp_core(v, v.sel(huge, v.mul(a, 0.5), a), lo=0.0)
    res = v.fma(w, 0.5, v.div(0.5, w))
    return v.sel(huge, v.mul(v.mul(w, 0.5), w), res)


def _emit_asinh(v, x):
    """asinh(|x|) = log1p(a + a^2 / (1 + sqrt(1 + a^2))) (fdlibm), and for a > 4096
    log(2a) = log1p(a - 1) + ln2 (the 1/(4a^2) term is below float precision there)."""
    a = v.abs(x)
    huge = v.gt(a, 4096.0)
    a2 = v.mul(a, a)
    arg = v.add(a, v.div(a2, v.add(v.sqrt(v.add(a2, 1.0)), 1.0)))
    arg = v.sel(huge, v.sub(a, 1.0), arg)
    res = v.add(_log1p_core(v, arg), v.sel(huge, _LN2, 0.0))
    return v.copysign(res, x)


def _emit_acosh(v, x):
    """acosh(x) = log1p(t + sqrt(2t + t^2)), t = x - 1 (exact near 1); for x > 4096
    log(2x) = log1p(x - 1) + ln2.  x < 1 gives NaN."""
    t = v.sub(x, 1.0)
    huge = v.gt(x, 4096.0)
    arg = v.add(t, v.sqrt(v.fma(t, t, v.add(t, t))))
    arg = v.sel(huge, t, arg)
    res = v.add(_log1p_core(v, arg), v.sel(huge, _LN2, 0.0))
    return v.sel(v.lt(x, 1.0), _NAN, res)


def _emit_atanh(v, x):
    """atanh(x) = sign(x) log1p(2a / (1 - a)) / 2, a = |x| (1 - a exact near 1);
    atanh(+-1) = +-inf, |x| > 1 gives NaN (through log1p of a value < -1)."""
    a = v.abs(x)
    res = v.mul(_log1p_core(v, v.div(v.add(a, a), v.sub(1.0, a))), 0.5)
    return v.copysign(res, x)


_EMITTERS_F32 = {
    "exp": _emit_exp, "expm1": _emit_expm1, "log": _emit_log, "log1p": _emit_log1p,
    "erf": _emit_erf, "tanh": _emit_tanh, "sigmoid": _emit_sigmoid, "softplus": _emit_softplus,
    "pow": _emit_pow, "sin": _emit_sin, "cos": _emit_cos, "tan": _emit_tan, "atan": _emit_atan,
    "asin": _emit_asin, "acos": _emit_acos, "sinh": _emit_sinh, "cosh": _emit_cosh,
    "asinh": _emit_asinh, "acosh": _emit_acosh, "atanh": _emit_atanh, "atan2": _emit_atan2,
}
assert set(_EMITTERS_F32) == SUPPORTED


# --------------------------------------------------------------------------------------------
# float64: the C library, lane by lane
# --------------------------------------------------------------------------------------------

def _libm_call(v: _V, name: str, args):
    """Call double ``name`` from the C library on each lane."""
    module = v.b.module
    dbl = ir.DoubleType()
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(dbl, [dbl] * len(args)), name=name)
    if not v.lanes:
        return v.b.call(fn, args)
    out = ir.Constant(v.ty, ir.Undefined)
    for lane in range(v.lanes):
        idx = ir.Constant(ir.IntType(32), lane)
        scalars = [v.b.extract_element(a, idx) for a in args]
        out = v.b.insert_element(out, v.b.call(fn, scalars), idx)
    return out


def _emit_f64(v: _V, fn: str, args):
    if fn == "sigmoid":
        x = args[0]
        t = _libm_call(v, "exp", [v.neg(v.abs(x))])
        s = v.div(1.0, v.add(t, 1.0))
        return v.sel(v.ge(x, 0.0), s, v.mul(t, s))
    if fn == "softplus":
        x = args[0]
        t = _libm_call(v, "exp", [v.neg(v.abs(x))])
        return v.add(v.sel(v.gt(x, 0.0), x, 0.0), _libm_call(v, "log1p", [t]))
    return _libm_call(v, fn, args)


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------

def emit_math(builder: ir.IRBuilder, fn: str, args: list[ir.Value]) -> ir.Value:
    """Emit ``fn(*args)`` for float32 (or float64) scalars or vectors of any width, returning
    a value of the same type.  Defines a helper function in ``builder.module`` once per
    (fn, type) (internal linkage, alwaysinline) and calls it."""
    if fn not in _ARITY:
        raise ValueError(f"vecmath: unsupported function {fn!r}; supported: {sorted(SUPPORTED)}")
    args = list(args)
    if len(args) != _ARITY[fn]:
        raise ValueError(f"vecmath: {fn} takes {_ARITY[fn]} argument(s), got {len(args)}")
    ty = args[0].type
    if any(a.type != ty for a in args):
        raise TypeError(f"vecmath: {fn} arguments must have one type, got {[str(a.type) for a in args]}")
    elem = ty.element if isinstance(ty, ir.VectorType) else ty
    if not isinstance(elem, (ir.FloatType, ir.DoubleType)):
        raise TypeError(f"vecmath: {fn} needs float or double (vector) arguments, got {ty}")
    module = builder.module
    name = f"__mlc_vecmath_{fn}_{_mangle(ty)}"
    helper = module.globals.get(name)
    if helper is None:
        helper = ir.Function(module, ir.FunctionType(ty, [ty] * len(args)), name=name)
        helper.linkage = "internal"
        helper.attributes.add("alwaysinline")
        helper.attributes.add("nounwind")
        hb = ir.IRBuilder(helper.append_basic_block("entry"))
        v = _V(hb, ty)
        if v.is_f32:
            result = _EMITTERS_F32[fn](v, *helper.args)
        else:
            result = _emit_f64(v, fn, list(helper.args))
        hb.ret(result)
    return builder.call(helper, args)
