"""ConvTranspose (1-D and 2-D; strides, dilations, pads, output_padding, output_shape,
auto_pad, groups incl. depthwise, bias).

Fast path: *sub-pixel decomposition*.  Along one spatial axis with stride ``s``, output
position ``oh`` with ``q = oh + pad_begin = m * s + r`` (phase ``r = q mod s``) receives
``x[m - shift] * w[kh]`` for every tap with ``kh * d = shift * s + r``.  So each of the
``s_h * s_w`` output phases is an ordinary stride-1 correlation over the input with a
sub-kernel of ``T = max shift - min shift + 1`` taps (zero where a phase has no tap), and
all phases together are ONE stride-1 convolution with ``s_h * s_w`` times the output
channels (phase-major: virtual channel ``(r_h * s_w + r_w) * OCpad + oc``).  That
convolution is built exactly like ``kernels/conv.py``'s blocked convolution (same padded
blocked input, same stage shape and axis names) and scheduled by its ``ConvSpace``; a
second stage interleaves the phases into the output (depth-to-space plus crop) and adds
the bias -- in NCHW, or, when the layout pass runs the op blocked (NCHW16c), as
contiguous 16-lane copies.  The sub-kernels are re-laid out at compile time.

Dense grouping (group 1, or per-group channel counts that fill whole vector blocks) and
depthwise (one input and one output channel per group) take the fast path; other
groupings, and non-constant weights, a direct formulation (every tap tested with
``(q - kh * d) % s == 0``; correct everywhere, not tuned).
"""
from __future__ import annotations

import numpy as np

from mlc.errors import ShapeError
from mlc.loop.expr import binary, const, logical_and, reduce_sum, select
from mlc.loop.tensor import reduce_axis
from mlc.registry import register, register_blocked, register_schedule, register_space

from . import conv as _conv


# --------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------

def _attr_str(ctx_or_attrs, name, default):
    v = ctx_or_attrs.get(name, default) if isinstance(ctx_or_attrs, dict) else ctx_or_attrs.attr(name, default)
    return v.decode() if isinstance(v, bytes) else v


def transpose_geometry(attrs: dict, spatial_in, kernel, spatial_out):
    """(strides, dilations, pads_begin) per spatial dim, as onnxruntime resolves them.

    ``spatial_out`` is the output size (from shape inference); ``pads_begin`` may come out
    negative only for an ``output_shape`` larger than the natural size."""
    nd = len(kernel)
    strides = list(attrs.get("strides", [1] * nd))
    dil = list(attrs.get("dilations", [1] * nd))
    outpad = list(attrs.get("output_padding", [0] * nd))
    auto = _attr_str(attrs, "auto_pad", "NOTSET")
    out_shape_attr = attrs.get("output_shape")
    begin = []
    for i in range(nd):
        natural = (spatial_in[i] - 1) * strides[i] + outpad[i] + (kernel[i] - 1) * dil[i] + 1
        total = natural - spatial_out[i]
        if total <= -strides[i]:
            raise ValueError(f"output size {spatial_out[i]} exceeds the largest this input gives "
                             f"({natural + strides[i] - 1})")
        if out_shape_attr is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
            # onnxruntime: SAME_UPPER puts the odd one at the end, SAME_LOWER and an
            # explicit output_shape at the beginning
            # (a larger output_shape, up to stride - 1 more, extends the end: onnxruntime)
            if total < 0:
                begin.append(0)
            else:
                begin.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
        elif auto == "VALID":
            begin.append(0)
        else:
            pads = list(attrs.get("pads", [0] * (2 * nd)))
            begin.append(int(pads[i]))
    return strides, dil, begin


def _phase_taps(K: int, s: int, d: int):
    """Per phase r: {tap index t: kernel index kh}; taps t = smax - shift, T taps in all."""
    pairs = []
    for kh in range(K):
        for r in range(s):
            if (kh * d - r) % s == 0:
                pairs.append((r, (kh * d - r) // s, kh))
    smin = min(p[1] for p in pairs)
    smax = max(p[1] for p in pairs)
    T = smax - smin + 1
    taps = [dict() for _ in range(s)]
    for r, shift, kh in pairs:
        taps[r][smax - shift] = kh
    return taps, T, smax


class _Geo:
    """Everything about one ConvTranspose node the builders need (plain NCHW geometry)."""

    def __init__(self, attrs, xs, ws, out_shape, one_d):
        self.one_d = one_d
        self.group = int(attrs.get("group", 1))
        self.N, self.C = xs[0], xs[1]
        self.H, self.W = (1, xs[2]) if one_d else (xs[2], xs[3])
        self.OCg = ws[1]
        self.OC = self.OCg * self.group
        self.ICg = self.C // self.group
        self.KH, self.KW = (1, ws[2]) if one_d else (ws[2], ws[3])
        self.OH, self.OW = (1, out_shape[2]) if one_d else (out_shape[2], out_shape[3])
        sp_in = [self.W] if one_d else [self.H, self.W]
        ker = [self.KW] if one_d else [self.KH, self.KW]
        sp_out = [self.OW] if one_d else [self.OH, self.OW]
        try:
            s, d, pb = transpose_geometry(attrs, sp_in, ker, sp_out)
        except ValueError as e:
            raise ShapeError(f"ConvTranspose: {e}") from None
        if one_d:
            s, d, pb = [1] + s, [1] + d, [0] + pb
        self.sh, self.sw = s
        self.dh, self.dw = d
        self.pt, self.pl = pb
        # sub-pixel decomposition
        self.taps_h, self.TH, smax_h = _phase_taps(self.KH, self.sh, self.dh)
        self.taps_w, self.TW, smax_w = _phase_taps(self.KW, self.sw, self.dw)
        # m ranges: q = o + p = m * s + r
        self.m0h = self.pt // self.sh
        self.m0w = self.pl // self.sw
        self.MH = (self.OH - 1 + self.pt) // self.sh - self.m0h + 1
        self.MW = (self.OW - 1 + self.pl) // self.sw - self.m0w + 1
        self.MW_used = self.MW          # columns actually read by the output
        # the sub-pixel convolution reads x_pad[m - m0 + t] = x[m - smax + t]
        self.sub_pt = smax_h - self.m0h
        self.sub_pl = smax_w - self.m0w
        self.S = self.sh * self.sw

    def widen(self, ob: int, regs: int):
        """Compute a few extra sub-pixel columns when that gives the conv micro-kernel a
        wider register tile (a prime width would otherwise get a 1-pixel tile)."""
        best = None
        for mw in range(self.MW, self.MW + 8):
            owt, nb = _conv.conv_tile(mw, ob, regs)
            score = (-owt * nb - (owt >= 4) * 100 + (mw - self.MW) * 0.5, mw)
            if best is None or score < best[0]:
                best = (score, mw)
        self.MW = best[1]

    def sub_geo(self, in_blocked: bool) -> dict:
        """conv.py's geometry dict of the sub-pixel convolution."""
        return dict(N=self.N, C=self.C, H=self.H, W=self.W, OC=self.OC, ICg=self.ICg, KH=self.TH,
                    KW=self.TW, OH=self.MH, OW=self.MW, group=self.group, sh=1, sw=1, dh=1, dw=1,
                    pt=self.sub_pt, pl=self.sub_pl, one_d=self.one_d, in_blocked=in_blocked,
                    out_blocked=False)

    def sub_weights(self, w: np.ndarray, ocp: int, depthwise: bool, rows: int) -> np.ndarray:
        """[rows, ICg, TH, TW]: virtual channel (r_h * sw + r_w) * ocp + oc."""
        w4 = w.reshape(w.shape[0], w.shape[1], self.KH, self.KW)
        out = np.zeros((rows, 1 if depthwise else self.ICg, self.TH, self.TW), np.float32)
        oc = np.arange(self.OC)
        g = oc // self.OCg
        for rh in range(self.sh):
            for rw in range(self.sw):
                base = (rh * self.sw + rw) * ocp
                for th, kh in self.taps_h[rh].items():
                    for tw, kw in self.taps_w[rw].items():
                        if depthwise:
                            out[base + oc, 0, th, tw] = w4[oc, 0, kh, kw]
                        else:
                            for icg in range(self.ICg):
                                out[base + oc, icg, th, tw] = w4[g * self.ICg + icg, oc % self.OCg, kh, kw]
        return out


# --------------------------------------------------------------------------------------
# the op
# --------------------------------------------------------------------------------------

@register("ConvTranspose", pattern="anchor")
def conv_transpose(ctx):
    x, w = ctx.input(0), ctx.input(1)
    xs, ws = ctx.in_shape(0), ctx.in_shape(1)
    out_shape = ctx.out_shape(0)
    blocked = int(ctx.attr("mlc_blocked", 0))
    in_blocked = bool(blocked) and bool(int(ctx.attr("mlc_in_blocked", 1)))
    group = int(ctx.attr("group", 1))
    if blocked:
        if in_blocked:
            xs = (xs[0], ws[0]) + tuple(xs[2:-1])
        out_shape = (out_shape[0], ws[1] * group) + tuple(out_shape[2:-1])
    if len(xs) not in (3, 4):
        raise ctx.unsupported(f"{len(xs) - 2}-D ConvTranspose (only 1-D and 2-D are supported)")
    if ctx.in_dtype(0) != "float32" or ctx.in_dtype(1) != "float32":
        raise ctx.unsupported(f"ConvTranspose on {ctx.in_dtype(0)} (float32 only)")
    if xs[1] % group or ws[0] != xs[1]:
        raise ctx.unsupported(f"weight shape {list(ws)} does not fit {xs[1]} input channels in {group} groups")
    one_d = len(xs) == 3
    geo = _Geo(ctx.node.attrs, xs, ws, out_shape, one_d)
    bias = ctx.inputs[2] if ctx.has_input(2) else None
    wval = ctx.const(1)
    L = _conv.lanes(ctx)
    kind = _conv.conv_kind(geo.C, geo.OC, group, L)
    if wval is None or kind == "generic":
        if blocked:
            raise ctx.unsupported("blocked layout needs constant weights and a dense or depthwise grouping")
        return [_generic(ctx, x, w, bias, geo)]
    if bias is not None and ctx.const(2) is None and blocked:
        raise ctx.unsupported("blocked layout needs a constant bias")
    return [_subpixel(ctx, x, np.asarray(wval, np.float32), bias, geo, L, kind, bool(blocked), in_blocked)]


def _subpixel(ctx, x, wval, bias, geo, L, kind, out_blocked, in_blocked):
    depthwise = kind == "depthwise"
    OB = -(-geo.OC // L)
    # phase stride of the virtual channels: whole blocks per phase (the blocked output
    # and grouped channels need that), or -- plain output, one group -- phases packed
    # densely, so that few output channels (a 1-channel map) do not fill 16 lanes each
    ocp = OB * L if (depthwise or out_blocked or geo.group > 1) else geo.OC
    OBV = -(-geo.S * ocp // L)          # virtual channel blocks
    geo.widen(1 if depthwise else OBV, ctx.target.num_vector_registers)
    g = geo.sub_geo(in_blocked)
    wsub = ctx.constant(geo.sub_weights(wval, ocp, depthwise, OBV * L), "wsub")
    if depthwise:
        xc = _conv._padded_input(ctx, x, g, L, OB)
        th, tw = reduce_axis(geo.TH, "kh"), reduce_axis(geo.TW, "kw")

        def f(n, ob, mh, mw, oi):
            cb = ob % OB
            return reduce_sum(xc[n, cb, mh + th, mw + tw, oi] * wsub[ob * L + oi, 0, th, tw], [th, tw])
        name = "dwconvT"
    else:
        bi = L if in_blocked else _conv._in_block(geo.ICg, L)
        CB = -(-geo.C // bi)
        xc = _conv._padded_input(ctx, x, g, bi, CB)
        icb = reduce_axis(-(-geo.ICg // bi), "icb")
        th, tw = reduce_axis(geo.TH, "kh"), reduce_axis(geo.TW, "kw")
        ii = reduce_axis(bi, "ii")
        icb_per_group = geo.ICg // bi
        OCg = geo.OCg

        def f(n, ob, mh, mw, oi):
            if geo.group == 1:
                cb = icb
            else:
                cb = ((ob % OB) * L // OCg) * icb_per_group + icb
            xv = xc[n, cb, mh + th, mw + tw, ii]
            wv = wsub[ob * L + oi, icb * bi + ii, th, tw]
            return reduce_sum(xv * wv, [icb, th, tw, ii])
        name = "convT"
    z = ctx.compute((geo.N, OBV, geo.MH, geo.MW, L), f, name,
                    axis_names=["n", "ob", "oh", "ow", "oi"])
    return _interleave(ctx, z, bias, geo, OB, L, out_blocked, ocp)


def _interleave(ctx, z, bias, geo, OB, L, out_blocked, ocp):
    """The output from the phase-major sub-pixel result: depth-to-space, crop, bias."""
    bvec = None
    if bias is not None and out_blocked:
        padded = np.zeros(OB * L, np.float32)
        padded[:geo.OC] = ctx.const(2)
        bvec = ctx.constant(padded, "bias")

    def src(n, c, oh, ow):
        qh = oh + (geo.pt - geo.m0h * geo.sh)        # >= 0
        qw = ow + (geo.pl - geo.m0w * geo.sw)
        rh, mh = qh % geo.sh, qh // geo.sh
        rw, mw = qw % geo.sw, qw // geo.sw
        v = (rh * geo.sw + rw) * ocp + c              # virtual channel
        return z[n, v // L, mh, mw, v % L]

    if out_blocked:
        def fb(n, ob, *rest):
            if geo.one_d:
                ow, oi = rest
                oh = const(0, "int64")
            else:
                oh, ow, oi = rest
            v = src(n, ob * L + oi, oh, ow)
            return v + bvec[ob * L + oi] if bvec is not None else v
        names = ["n", "ob", "ow", "oi"] if geo.one_d else ["n", "ob", "oh", "ow", "oi"]
        return ctx.compute(ctx.out_shape(0), fb, "interleave", axis_names=names)

    def fp(n, c, *rest):
        if geo.one_d:
            (ow,) = rest
            oh = const(0, "int64")
        else:
            oh, ow = rest
        v = src(n, c, oh, ow)
        return v + bias[c] if bias is not None else v
    names = ["n", "c", "ow"] if geo.one_d else ["n", "c", "oh", "ow"]
    return ctx.compute(ctx.out_shape(0), fp, "interleave", axis_names=names)


def _generic(ctx, x, w, bias, geo):
    """Direct formulation: every tap tested for alignment with the stride."""
    ic = reduce_axis(geo.ICg, "ic")
    kh = reduce_axis(geo.KH, "kh")
    kw = reduce_axis(geo.KW, "kw")
    H, W = geo.H, geo.W
    # keep the numerators non-negative so that // and % mean floor division
    off_h = geo.dh * (geo.KH - 1)
    off_w = geo.dw * (geo.KW - 1)
    bh = -(-off_h // geo.sh) * geo.sh if off_h else 0     # a multiple of s >= the largest kh * d
    bw = -(-off_w // geo.sw) * geo.sw if off_w else 0
    zero = const(0.0, "float32")

    def f(n, oc, *rest):
        if geo.one_d:
            (ow,) = rest
            oh = const(0, "int64")
        else:
            oh, ow = rest
        qh = oh + (geo.pt + bh) - kh * geo.dh         # = (oh + pt - kh d) + bh >= 0 when pt >= 0
        qw = ow + (geo.pl + bw) - kw * geo.dw
        ih = qh // geo.sh - bh // geo.sh
        iw = qw // geo.sw - bw // geo.sw
        conds = [ih >= 0, ih < H, iw >= 0, iw < W, qh >= 0, qw >= 0]
        if geo.sh > 1:
            conds.append(binary("eq", qh % geo.sh, 0))
        if geo.sw > 1:
            conds.append(binary("eq", qw % geo.sw, 0))
        safe = lambda v, hi: binary("min", binary("max", v, 0), hi - 1)
        c = (oc // geo.OCg) * geo.ICg + ic
        xi = (n, c, safe(iw, W)) if geo.one_d else (n, c, safe(ih, H), safe(iw, W))
        xv = select(logical_and(*conds), x[xi], zero)
        wi = (c, oc % geo.OCg, kw) if geo.one_d else (c, oc % geo.OCg, kh, kw)
        acc = reduce_sum(xv * w[wi], [ic, kh, kw])
        return acc + bias[oc] if bias is not None else acc

    names = ["n", "oc", "ow"] if geo.one_d else ["n", "oc", "oh", "ow"]
    return ctx.compute(ctx.out_shape(0), f, "convT_direct", axis_names=names)


# --------------------------------------------------------------------------------------
# layout, schedule, tuning space
# --------------------------------------------------------------------------------------

@register_blocked("ConvTranspose")
def conv_transpose_blocked(node, graph, b):
    """Runs blocked (input and output NCHW[b]c) with constant weights and a dense or
    depthwise grouping; joins a blocked region but does not start one (the plain output
    is written directly by the interleaving stage)."""
    xt = graph.tensor(node.inputs[0])
    if len(xt.shape) not in (3, 4) or xt.dtype != "float32":
        return None
    if not graph.is_constant(node.inputs[1]) or (len(node.inputs) > 2 and node.inputs[2]
                                                 and not graph.is_constant(node.inputs[2])):
        return None
    ws = graph.tensor(node.inputs[1]).shape
    group = int(node.attrs.get("group", 1))
    C, OC = xt.shape[1], ws[1] * group
    if ws[0] != C or C % group:
        return None
    kind = _conv.conv_kind(C, OC, group, b)
    if kind == "generic":
        return None
    out = graph.tensor(node.outputs[0]).shape
    geo = _Geo(node.attrs, xt.shape, ws, out, len(xt.shape) == 3)
    in_blocked = not (kind == "dense" and group == 1 and C < b)
    if in_blocked and (geo.sub_pt < 0 or geo.sub_pl < 0):
        in_blocked = False
        if kind == "depthwise":
            return None
    attrs = {**node.attrs, "mlc_blocked": b, "mlc_in_blocked": int(in_blocked)}
    return node.with_(attrs=attrs), ({0} if in_blocked else set())


@register_space("ConvTranspose")
def conv_transpose_space(kernel, target, threads=1):
    return _conv.conv_space(kernel, target, threads)


@register_schedule("ConvTranspose")
def conv_transpose_schedule(kernel, target):
    return _conv.conv_schedule(kernel, target)
