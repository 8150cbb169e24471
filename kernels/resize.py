"""Resize (opsets 10-19) and Upsample (opsets 7-9).

Resize is separable: every resized axis maps each output position to a few input
positions (1 for nearest, 2 for linear, 4 for cubic) with weights.  Those per-axis tables
depend only on shapes and constant attributes, so they are computed at compile time —
in float32, operation by operation as onnxruntime computes them (``upsamplebase.h`` /
``upsample.cc``), so that floor/round decisions and weights are bit-identical — and the
kernel reads them as small constant buffers:

    out[n, c, y, x] = sum_{ty, tx} wx[tx, x] * wy[ty, y] * X[n, c, iy[ty, y], ix[tx, x]]

The weighted sum is also accumulated in onnxruntime's order and without fused
multiply-adds, so integer and float16 results (which onnxruntime truncates / rounds from
float32) match exactly.

onnxruntime conventions followed (where it deviates from, or refines, the ONNX text):

* an axis whose scale is exactly 1 is not transformed at all (its index maps to itself,
  whatever the coordinate mode, roi or extrapolation);
* if no dim changes, Resize is a copy;
* linear clamps the source coordinate into the input before taking neighbours and uses
  weights 0.5/0.5 when both neighbours coincide; cubic does not clamp the coordinate but
  clamps each of its four taps; ``exclude_outside`` renormalises the cubic weights;
* ``tf_crop_and_resize`` writes ``extrapolation_value`` where the (unclamped) source
  coordinate of any resized axis lies outside ``[0, size - 1]``;
* the nearest mode of Resize-10 / Upsample ("simple") is ceil for a downscaled axis and
  truncation otherwise;
* with ``sizes``, scales are ``float(out) / float(in)``; ``keep_aspect_ratio_policy``
  replaces them by their min / max and the output size by ``round(scale * in)``.

``antialias=1`` (downscaling linear / cubic) stretches the filter as the ONNX reference
does, and runs as one stage per resized axis (see :func:`antialias_axis`).

Unsupported: non-constant scales / sizes / roi (mlc.compile specialises on their values
when they are graph inputs), antialias with tf_crop_and_resize or on integer data.
"""
from __future__ import annotations

import itertools

import numpy as np

from mlc.loop.expr import Expr, binary, call, cast, const, is_float, select
from mlc.registry import register

from .common import norm_axis
from .data_movement import clamp
from .shape_ops import cast_value

F32 = np.float32
_COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


# --- coordinate arithmetic, as onnxruntime does it (float32 unless it uses double) ----------

def original_coords(mode: str, n_out: int, n_in: int, scale: np.float32, roi_start: float,
                    roi_end: float) -> np.ndarray:
    """Source coordinate of every output index along one axis (float32 array)."""
    x = np.arange(n_out, dtype=F32)
    s = F32(scale)
    lr, lo = F32(n_out), F32(n_in)
    half = F32(0.5)
    one = F32(1)
    if mode == "asymmetric":
        return x / s
    if mode == "pytorch_half_pixel":
        return (x + half) / s - half if lr > one else np.zeros(n_out, F32)
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / s
    if mode == "align_corners":
        return np.zeros(n_out, F32) if lr == one else x * (lo - one) / (lr - one)
    if mode == "tf_crop_and_resize":
        rs, re = F32(roi_start), F32(roi_end)
        if lr > one:
            return rs * (lo - one) + (x * (re - rs) * (lo - one)) / (lr - one)
        v = 0.5 * (np.float64(rs) + np.float64(re)) * np.float64(lo - one)
        return np.full(n_out, F32(v), F32)
    if mode == "half_pixel_symmetric":
        output_width = s * lo
        adjustment = lr / output_width
        center = lo / F32(2)
        offset = center * (one - adjustment)
        v = np.float64(offset) + (x.astype(np.float64) + 0.5) / np.float64(s) - 0.5
        return v.astype(F32)
    # half_pixel
    return ((x + half) / s) - half


def _round_half_away(v: np.ndarray) -> np.ndarray:
    d = v.astype(np.float64)
    return (np.sign(d) * np.floor(np.abs(d) + 0.5)).astype(np.int64)


TIE_EPS = 1e-6     # onnxruntime treats coordinates within 1e-6 of k + 0.5 as ties


def nearest_pixel(mode: str, orig: np.ndarray, downscale: bool) -> np.ndarray:
    """Index of the nearest input pixel.  The round modes follow onnxruntime (measured on
    1.32): a coordinate within TIE_EPS of a half is a tie, broken down (round_prefer_floor)
    or up (round_prefer_ceil); any other coordinate rounds to nearest."""
    if mode == "simple":
        return np.ceil(orig).astype(np.int64) if downscale else np.trunc(orig).astype(np.int64)
    if mode == "floor":
        return np.floor(orig).astype(np.int64)
    if mode == "ceil":
        return np.ceil(orig).astype(np.int64)
    d = orig.astype(np.float64)
    lo = np.floor(d)
    tie = np.abs(d - (lo + 0.5)) <= TIE_EPS
    broken = lo if mode == "round_prefer_floor" else np.ceil(d)
    return np.where(tie, broken, _round_half_away(orig)).astype(np.int64)


def cubic_coeffs(s: np.ndarray, a: np.float32) -> np.ndarray:
    """onnxruntime's GetCubicCoeffs for every s (float32), shape (4, len(s))."""
    s = np.abs(s.astype(F32))
    one, two = F32(1), F32(2)
    a = F32(a)
    five_a, eight_a, four_a = F32(5) * a, F32(8) * a, F32(4) * a
    s1 = s + one
    c0 = ((a * s1 - five_a) * s1 + eight_a) * s1 - four_a
    c1 = ((a + two) * s - (a + F32(3))) * s * s + one
    t = one - s
    c2 = ((a + two) * t - (a + F32(3))) * t * t + one
    u = two - s
    c3 = ((a * u - five_a) * u + eight_a) * u - four_a
    return np.stack([c0, c1, c2, c3]).astype(F32)


class AxisPlan:
    """How one resized axis maps output to input: index and weight tables (taps x out)."""

    def __init__(self, idx: np.ndarray, weight: np.ndarray | None, oob: np.ndarray | None,
                 wsum: np.ndarray | None = None):
        self.idx = idx              # int64 (taps, n_out), every value in [0, n_in)
        self.weight = weight        # float32 (taps, n_out) or None (nearest)
        self.oob = oob              # bool (n_out,) or None: extrapolate there
        self.wsum = wsum            # float32 (n_out,): cubic exclude_outside divisor (outer axes)


def plan_axis(kind: str, coord_mode: str, nearest_mode: str, n_in: int, n_out: int, scale,
              roi: tuple, cubic_a, exclude_outside: bool, extrapolate: bool) -> AxisPlan:
    """The tables of one axis; an axis of scale 1 keeps its coordinates (x_original = x)."""
    identity = F32(scale) == F32(1)
    orig = np.arange(n_out, dtype=F32) if identity else original_coords(coord_mode, n_out, n_in, scale, *roi)
    oob = None
    if extrapolate and not identity:
        bad = (orig < 0) | (orig > F32(n_in - 1))
        oob = bad if bad.any() else None
    if kind == "nearest":
        idx = np.clip(nearest_pixel(nearest_mode, orig, F32(scale) < 1), 0, n_in - 1)
        return AxisPlan(idx[None, :], None, oob)
    if kind == "linear":
        v = np.maximum(F32(0), np.minimum(orig, F32(n_in - 1)))
        i1 = np.minimum(v.astype(np.int64), n_in - 1)
        i2 = np.minimum(i1 + 1, n_in - 1)
        d1 = np.abs(v - i1.astype(F32))
        d2 = np.abs(v - i2.astype(F32))
        same = i1 == i2
        d1 = np.where(same, F32(0.5), d1).astype(F32)
        d2 = np.where(same, F32(0.5), d2).astype(F32)
        return AxisPlan(np.stack([i1, i2]), np.stack([d2, d1]), oob)
    # cubic
    base = np.floor(orig).astype(np.int64)
    s = (orig - base.astype(F32)).astype(F32)
    coeff = cubic_coeffs(s, cubic_a)
    taps = base[None, :] + np.arange(-1, 3)[:, None]
    inside = (taps >= 0) & (taps < n_in)
    wsum = np.ones(n_out, F32)
    if exclude_outside:
        coeff = np.where(inside, coeff, F32(0)).astype(F32)
        wsum = np.zeros(n_out, F32)
        for t in range(4):
            wsum = (wsum + coeff[t]).astype(F32)
    return AxisPlan(np.clip(taps, 0, n_in - 1), coeff, oob, wsum)


def _affine_nearest(table: np.ndarray, n_in: int):
    """(a, b, c, needs_clamp) with table == clip((o * a + b) // c, 0, n_in - 1), or None."""
    o = np.arange(len(table))
    for c in range(1, 9):
        for a in range(1, 9):
            if np.gcd(a, c) != 1:
                continue
            for b in range(int(table[0]) * c - 8 * a, int(table[0]) * c + c):
                raw = (o * a + b) // c
                if np.array_equal(np.clip(raw, 0, n_in - 1), table):
                    return a, b, c, not (raw.min() >= 0 and raw.max() <= n_in - 1)
    return None


# --- attribute handling ---------------------------------------------------------------------

def _text(v, default: str) -> str:
    if v is None:
        return default
    return v.decode() if isinstance(v, bytes) else str(v)


def _resize_params(ctx, legacy: bool):
    """(kind, coord_mode, nearest_mode, scales[rank], roi pairs[rank], expected out dims)."""
    in_shape = ctx.in_shape(0)
    rank = len(in_shape)
    kind = _text(ctx.attr("mode"), "nearest").lower()
    if kind not in ("nearest", "linear", "cubic"):
        raise ctx.unsupported(f"mode {kind!r}")
    if legacy:
        coord_mode, nearest_mode = "asymmetric", "simple"
    else:
        coord_mode = _text(ctx.attr("coordinate_transformation_mode"), "half_pixel")
        nearest_mode = _text(ctx.attr("nearest_mode"), "round_prefer_floor")
        if ctx.attr("mlc_nearest_simple"):
            nearest_mode = "simple"
    if coord_mode not in _COORD_MODES:
        raise ctx.unsupported(f"coordinate_transformation_mode {coord_mode!r}")
    if nearest_mode not in _NEAREST_MODES:
        raise ctx.unsupported(f"nearest_mode {nearest_mode!r}")
    if int(ctx.attr("exclude_outside", 0)) and kind != "cubic":
        raise ctx.unsupported("exclude_outside=1 with a mode other than cubic")
    policy = _text(ctx.attr("keep_aspect_ratio_policy"), "stretch")
    if policy not in ("stretch", "not_larger", "not_smaller"):
        raise ctx.unsupported(f"keep_aspect_ratio_policy {policy!r}")
    axes = ctx.attr("axes")
    axes = None if axes is None else [norm_axis(int(a), rank, "axes") for a in axes]

    def const_input(i, what):
        if not ctx.has_input(i):
            return None
        v = np.asarray(ctx.require_const(i, what)).reshape(-1)
        return v if v.size else None

    if ctx.node.op == "Upsample":
        scales = np.asarray(ctx.attr("scales"), F32) if ctx.opset < 9 else const_input(1, "scales")
        roi, sizes = None, None
    elif ctx.opset < 11:
        scales, roi, sizes = const_input(1, "scales"), None, None
    else:
        roi = const_input(1, "roi") if coord_mode == "tf_crop_and_resize" else None
        scales = const_input(2, "scales")
        if ctx.has_input(3) and ctx.const(3) is None and policy == "stretch":
            # run-time sizes: the static output shape is what they must be
            out = ctx.out_shape(0)
            sizes = np.array([out[a] for a in (axes if axes is not None else range(rank))], np.int64)
        else:
            sizes = const_input(3, "sizes")
    if scales is None and sizes is None:
        raise ctx.unsupported("neither scales nor sizes is given")
    if scales is not None and sizes is not None:
        raise ctx.unsupported("both scales and sizes are given")
    n_ax = len(axes) if axes is not None else rank
    ax_list = axes if axes is not None else list(range(rank))
    if scales is not None:
        scales = scales.astype(F32)
        if scales.size != n_ax:
            raise ctx.unsupported(f"{scales.size} scales for {n_ax} axes")
        full = np.ones(rank, F32)
        full[ax_list] = scales
        if (full <= 0).any():
            raise ctx.unsupported(f"scales {full.tolist()} (must be > 0)")
        out_dims = [int(np.trunc(full[d] * F32(in_shape[d]))) for d in range(rank)]
    else:
        sizes = sizes.astype(np.int64)
        if sizes.size != n_ax:
            raise ctx.unsupported(f"{sizes.size} sizes for {n_ax} axes")
        out_dims = list(in_shape)
        for k, a in enumerate(ax_list):
            out_dims[a] = int(sizes[k])
        full = np.array([F32(o) / F32(i) if i else F32(1) for o, i in zip(out_dims, in_shape)], F32)
        if policy != "stretch":
            sel = full[ax_list]
            p = sel.min() if policy == "not_larger" else sel.max()
            for d in range(rank):
                if d in ax_list:
                    full[d] = p
                    out_dims[d] = int(_round_half_away(np.array([F32(p) * F32(in_shape[d])]))[0])
                else:
                    full[d] = F32(1)
                    out_dims[d] = in_shape[d]
    roi_pairs = [(0.0, 1.0)] * rank
    if roi is not None:
        roi = roi.astype(F32)
        if roi.size == 2 * rank and axes is None:
            roi_pairs = [(roi[d], roi[rank + d]) for d in range(rank)]
        elif roi.size == 2 * n_ax:
            for k, a in enumerate(ax_list):
                roi_pairs[a] = (roi[k], roi[n_ax + k])
        else:
            raise ctx.unsupported(f"roi of {roi.size} values for rank {rank}")
    return kind, coord_mode, nearest_mode, full, roi_pairs, out_dims


def _interpolated_axes(kind: str, scales: np.ndarray) -> list:
    """The axes that get index tables: those with a scale other than 1 — and for linear,
    the axes onnxruntime's bilinear / trilinear kernels interpolate even at scale 1 (their
    weights there, 1/0 and 0.5/0.5 at the border, change the float rounding of the sum)."""
    rank = len(scales)
    axes = {d for d in range(rank) if scales[d] != F32(1)}
    if kind == "linear":
        if rank in (2, 3):
            axes |= set(range(rank))
        elif rank == 4 and scales[0] == 1 and scales[1] == 1:
            axes |= {2, 3}
        elif rank == 4 and scales[0] == 1 and scales[3] == 1:
            axes |= {1, 2}
        elif rank == 5 and scales[0] == 1 and scales[1] == 1:
            axes |= {2, 3, 4}
    return sorted(axes)


def _sum_no_fma(acc: Expr | None, term: Expr) -> Expr:
    """``acc + term`` written so that codegen does not fuse a multiply into it (onnxruntime
    rounds each product; a fused multiply-add would not): ``acc - (-term)`` is exactly
    the same IEEE sum."""
    if acc is None:
        return term
    return binary("sub", acc, call("neg", term))


def build_resize(ctx, legacy: bool = False):
    x = ctx.input(0)
    in_shape = ctx.in_shape(0)
    out_shape = tuple(ctx.out_shape(0))
    rank = len(in_shape)
    dt = ctx.out_dtype(0)
    if rank == 0:
        raise ctx.unsupported("a 0-d input")
    kind, coord_mode, nearest_mode, scales, roi, out_dims = _resize_params(ctx, legacy)
    if tuple(out_dims) != out_shape:
        raise ctx.unsupported(f"onnxruntime would produce shape {out_dims}, shape inference says "
                              f"{list(out_shape)}")
    if any(d == 0 for d in out_shape):
        return ctx.compute(out_shape, lambda *i: const(0, dt), "resize")
    if any(d == 0 for d in in_shape):
        raise ctx.unsupported("resizing an empty input to a non-empty output")
    if out_shape == tuple(in_shape):
        return ctx.compute(out_shape, lambda *i: x[i], "resize")
    if kind != "nearest" and not (is_float(dt) or dt in ("int8", "uint8", "int16", "uint16", "int32", "int64",
                                                          "uint32", "uint64")):
        raise ctx.unsupported(f"{kind} interpolation of {dt} data")
    extrapolate = coord_mode == "tf_crop_and_resize"
    cubic_a = F32(ctx.attr("cubic_coeff_a", -0.75))
    exclude = bool(int(ctx.attr("exclude_outside", 0)))
    ext_value = float(ctx.attr("extrapolation_value", 0.0))

    for d in range(rank):
        if scales[d] == F32(1) and out_shape[d] != in_shape[d]:
            raise ctx.unsupported(f"axis {d} changes size with scale 1")
    if int(ctx.attr("antialias", 0)) and kind != "nearest" and any(scales[d] < F32(1) for d in range(rank)):
        if extrapolate:
            raise ctx.unsupported("antialias=1 with tf_crop_and_resize")
        if not is_float(dt):
            raise ctx.unsupported(f"antialias=1 on {dt} data")
        return _antialias(ctx, x, kind, coord_mode, scales, roi, cubic_a, exclude)
    axes = _interpolated_axes(kind, scales)
    plans = {d: plan_axis(kind, coord_mode, nearest_mode, in_shape[d], out_shape[d], scales[d], roi[d],
                          cubic_a, exclude, extrapolate) for d in axes}
    wdt = "float32" if dt != "float64" else "float64"
    tables = {}
    for d in axes:
        p = plans[d]
        entry = {}
        if kind == "nearest":
            aff = _affine_nearest(p.idx[0], in_shape[d])
            entry["affine"] = aff
            if aff is None:
                entry["idx"] = ctx.constant(p.idx[0].astype(np.int64), f"resize_idx{d}")
        else:
            entry["idx"] = ctx.constant(p.idx.astype(np.int64), f"resize_idx{d}")
            w = p.weight
            if kind == "cubic" and d == axes[-1]:
                # innermost axis: onnxruntime multiplies by coeff / sum (a float32 division)
                w = (w / p.wsum[None, :]).astype(F32)
            entry["w"] = ctx.constant(w.astype(wdt), f"resize_w{d}")
            if kind == "cubic" and exclude and d != axes[-1]:
                entry["sum"] = ctx.constant(p.wsum.astype(wdt), f"resize_wsum{d}")
        if p.oob is not None:
            entry["oob"] = ctx.constant(p.oob.astype(np.bool_), f"resize_oob{d}")
        tables[d] = entry
    taps = {"nearest": 1, "linear": 2, "cubic": 4}[kind]

    def src_index(d, t, o):
        e = tables[d]
        if kind == "nearest" and e["affine"] is not None:
            a, b, c, needs = e["affine"]
            v = binary("floordiv", o * a + b, c) if c != 1 else o * a + b
            return clamp(v, 0, in_shape[d] - 1) if needs else v
        if kind == "nearest":
            return e["idx"][o]
        return e["idx"][t, o]

    def load(o, choice):
        idx = list(o)
        for d, t in zip(axes, choice):
            idx[d] = src_index(d, t, o[d])
        v = x[tuple(idx)]
        return cast(wdt, v) if v.dtype != wdt and kind != "nearest" else v

    def f(*o):
        if kind == "nearest":
            value = load(o, [0] * len(axes))
        elif kind == "linear":
            # onnxruntime's order: last axis varies fastest; weight product w_last * ... * w_first
            value = None
            for choice in itertools.product(range(taps), repeat=len(axes)):
                rev = list(zip(axes, choice))[::-1]
                w = None
                for d, t in rev:
                    wd = tables[d]["w"][t, o[d]]
                    w = wd if w is None else w * wd
                value = _sum_no_fma(value, w * load(o, choice))
        else:
            value = _cubic(o, axes, tables, load)
        if kind != "nearest" and value.dtype != dt:
            value = cast_value(value, wdt, dt)
        oobs = [tables[d]["oob"][o[d]] for d in axes if "oob" in tables[d]]
        if oobs:
            anyo = oobs[0]
            for c in oobs[1:]:
                anyo = anyo | c
            value = select(anyo, _ext_const(ext_value, dt), value)
        return value

    names = [f"i{d}" for d in range(rank)]
    return ctx.compute(out_shape, f, "resize", axis_names=names)


def antialias_axis(kind: str, coord_mode: str, n_in: int, n_out: int, scale, roi: tuple, cubic_a,
                   exclude_outside: bool) -> tuple:
    """(idx, weight) tables, shape (taps, n_out), of one axis of an antialiased resize.

    As the ONNX reference computes them: the filter (triangle for linear, Keys cubic) is
    stretched by ``1 / scale`` when downscaling, so it spans ``2 / scale`` (linear) or
    ``4 / scale`` (cubic) input pixels; tap ``k`` sits at ``base + start + k`` where
    ``base = ceil(x) - 1`` (the pixel left of the source coordinate ``x``, and ``x - 1``
    on a pixel), its weight is the filter at the scaled distance, the weights are
    normalised to sum 1, and taps beyond the edges read the edge pixel (or, with
    ``exclude_outside``, get weight 0 before normalising)."""
    s = min(float(scale), 1.0)
    orig = original_coords(coord_mode, n_out, n_in, F32(scale), *roi).astype(np.float64)
    base = np.ceil(orig).astype(np.int64) - 1
    ratio = orig - base                                   # in (0, 1]
    if kind == "linear":
        start = int(np.floor(-1 / s) + 1)
        n = 2 - 2 * start
    else:
        start = int(np.floor(-2 / s) + 1)
        n = 2 - 2 * start
    rel = np.arange(start, start + n)[:, None]            # taps x 1
    dist = np.abs((rel - ratio[None, :]) * s)
    if kind == "linear":
        w = np.clip(1 - dist, 0, 1)
    else:
        a = float(cubic_a)
        w = np.where(dist <= 1, (a + 2) * dist ** 3 - (a + 3) * dist ** 2 + 1,
                     np.where(dist < 2, a * dist ** 3 - 5 * a * dist ** 2 + 8 * a * dist - 4 * a, 0.0))
    idx = base[None, :] + rel
    if exclude_outside:
        w = np.where((idx >= 0) & (idx < n_in), w, 0.0)
    w = w / w.sum(axis=0, keepdims=True)
    return np.clip(idx, 0, n_in - 1), w


def _antialias(ctx, x, kind, coord_mode, scales, roi, cubic_a, exclude):
    """Separable antialiased resize: one stage per resized axis, innermost axis first (as
    the ONNX reference interpolates), each a weighted sum over that axis's taps."""
    in_shape = list(ctx.in_shape(0))
    out_shape = tuple(ctx.out_shape(0))
    dt = ctx.out_dtype(0)
    wdt = "float64" if dt == "float64" else "float32"
    axes = [d for d in range(len(in_shape)) if scales[d] != F32(1)]
    cur, shape = x, list(in_shape)
    for k, d in enumerate(reversed(axes)):
        idx, w = antialias_axis(kind, coord_mode, in_shape[d], out_shape[d], scales[d], roi[d], cubic_a,
                                exclude)
        itab = ctx.constant(idx.astype(np.int64), f"resize_aa_idx{d}")
        wtab = ctx.constant(w.astype(wdt), f"resize_aa_w{d}")
        shape[d] = out_shape[d]
        last = k == len(axes) - 1

        def f(*o, cur=cur, d=d, itab=itab, wtab=wtab, taps=idx.shape[0], last=last):
            acc = None
            for t in range(taps):
                i = list(o)
                i[d] = itab[t, o[d]]
                v = cur[tuple(i)]
                v = cast(wdt, v) if v.dtype != wdt else v
                acc = _sum_no_fma(acc, wtab[t, o[d]] * v)
            return cast_value(acc, wdt, dt) if last and dt != wdt else acc
        cur = ctx.compute(tuple(shape), f, "resize_aa", dtype=dt if last else wdt, materialize=not last)
    return cur


def _cubic(o, axes, tables, load):
    """Nested 1-D cubic sums, innermost axis first, as onnxruntime's ResizeBiCubic:
    inner: sum_i (c_i / s) * X;  outer: sum_j (inner_j * c_j) / s."""
    def level(k, choice):
        d = axes[k]
        e = tables[d]
        acc = None
        for t in range(4):
            ch = choice + [t]
            if k == len(axes) - 1:
                term = e["w"][t, o[d]] * load(o, ch)
            else:
                term = level(k + 1, ch) * e["w"][t, o[d]]
                if "sum" in e:
                    term = term / e["sum"][o[d]]
            acc = _sum_no_fma(acc, term)
        return acc
    return level(0, [])


def _ext_const(v: float, dt: str) -> Expr:
    if is_float(dt):
        return const(v, dt)
    if dt == "bool":
        return const(v != 0, dt)
    # static_cast<T>(float): through int32 for narrow types, as the Cast kernel does
    wide = "int64" if dt in ("int64", "uint64", "uint32") else "int32"
    iv = int(np.asarray(np.float32(v)).astype(wide))
    return const(int(np.asarray(iv).astype(wide).astype(dt)), dt)


@register("Resize", pattern="injective")
def resize(ctx):
    return [build_resize(ctx, legacy=ctx.opset < 11)]


@register("Upsample", pattern="injective")
def upsample(ctx):
    return [build_resize(ctx, legacy=True)]
