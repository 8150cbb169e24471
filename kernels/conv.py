"""Convolution (2-D and 1-D; groups incl. depthwise, strides, dilations, pads, auto_pad).

Fast path: a blocked layout.  The input becomes ``Xc[n, cb, h, w, ci]`` (channels in blocks
of ``bi``, zero-padded spatially), the output is computed as ``Yc[n, ob, oh, ow, oi]`` with
``oi`` the 16 (AVX-512) or 8 (AVX2) lanes of a vector, and the weights are packed at
compile time to ``[O/bo][I/bi][KH][KW][bi][bo]`` by two ``pack`` steps.  The default
schedule holds a register tile of ``owt`` output pixels x ``nb`` channel blocks in
accumulators and runs the broadcast-FMA step over (icb, kh, kw, ii).

Grouped convolutions whose per-group channel counts do not fit the blocks, and depthwise
ones, take their own paths (see ``_depthwise`` / ``_generic``).
"""
from __future__ import annotations


from mlc.loop.expr import binary, const, logical_and, reduce_sum, select
from mlc.loop.schedule import Schedule
from mlc.loop.tensor import reduce_axis
from mlc.loop.auto_schedule import plan_kernel
from mlc.registry import register, register_blocked, register_schedule, register_space
from mlc.tuning.measure import weights_cold
from mlc.tuning.space import Space

from .common import window_geometry


# --------------------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------------------

def conv_geometry(ctx, spatial_in, kernel, spatial_out):
    """(strides, dilations, pads_begin) with auto_pad resolved, for any number of dims."""
    _, strides, dil, begin, _ = window_geometry(ctx, spatial_in, spatial_out, kernel)
    return strides, dil, begin


def conv_dims(ctx, xs, ws, out_shape) -> dict:
    """The geometry of a 1-D or 2-D convolution (1-D viewed as 2-D with H = 1): sizes,
    strides (sh, sw), dilations (dh, dw) and leading pads (pt, pl), auto_pad resolved."""
    one_d = len(xs) == 3
    group = int(ctx.attr("group", 1))
    N, C = xs[0], xs[1]
    H, W = (1, xs[2]) if one_d else (xs[2], xs[3])
    OC, ICg = ws[0], ws[1]
    KH, KW = (1, ws[2]) if one_d else (ws[2], ws[3])
    OH, OW = (1, out_shape[2]) if one_d else (out_shape[2], out_shape[3])
    strides, dil, pb = conv_geometry(ctx, [W] if one_d else [H, W], [KW] if one_d else [KH, KW],
                                     [OW] if one_d else [OH, OW])
    if one_d:
        strides, dil, pb = [1] + strides, [1] + dil, [0] + pb
    return dict(N=N, C=C, H=H, W=W, OC=OC, ICg=ICg, KH=KH, KW=KW, OH=OH, OW=OW, group=group,
                sh=strides[0], sw=strides[1], dh=dil[0], dw=dil[1], pt=pb[0], pl=pb[1], one_d=one_d)


def lanes(ctx) -> int:
    return ctx.target.lanes_f32


def _in_block(c: int, cap: int) -> int:
    """Input-channel block: the largest divisor of c that is at most cap."""
    if c <= cap:
        return c
    for b in range(cap, 0, -1):
        if c % b == 0:
            return b
    return 1


# --------------------------------------------------------------------------------------
# the op
# --------------------------------------------------------------------------------------

@register("Conv", pattern="anchor")
def conv(ctx):
    x, w = ctx.input(0), ctx.input(1)
    xs, ws = ctx.in_shape(0), ctx.in_shape(1)
    out_shape = ctx.out_shape(0)
    blocked = int(ctx.attr("mlc_blocked", 0))
    in_blocked = blocked and int(ctx.attr("mlc_in_blocked", 1))
    if blocked:
        # blocked shapes [N, CB, *S, b] -> the plain geometry they stand for
        if in_blocked:
            xs = (xs[0], ws[1] * int(ctx.attr("group", 1))) + tuple(xs[2:-1])
        out_shape = (out_shape[0], ws[0]) + tuple(out_shape[2:-1])
    if len(xs) not in (3, 4):
        raise ctx.unsupported(f"{len(xs) - 2}-D convolution (only 1-D and 2-D are supported)")
    if ctx.in_dtype(0) != "float32":
        raise ctx.unsupported(f"Conv on {ctx.in_dtype(0)} (float32 only)")
    geo = conv_dims(ctx, xs, ws, out_shape)
    geo.update(in_blocked=bool(in_blocked), out_blocked=bool(blocked))
    C, OC, group = geo["C"], geo["OC"], geo["group"]
    bias = ctx.inputs[2] if ctx.has_input(2) else None
    L = lanes(ctx)
    kind = conv_kind(C, OC, group, L)
    if kind == "dense":
        return [_blocked(ctx, x, w, bias, geo, L)]
    if kind == "depthwise":
        return [_depthwise(ctx, x, w, bias, geo, L)]
    return [_generic(ctx, x, w, bias, geo)]


def conv_kind(C: int, OC: int, group: int, L: int) -> str:
    """Which computation fits: "dense" (blocked, per-group blocks), "depthwise", "generic"."""
    ICg, OCg = C // group, OC // group
    if group == 1:
        return "dense"
    if ICg == 1 and OCg == 1:
        return "depthwise"
    if ICg % L == 0 and OCg % L == 0:
        return "dense"
    return "generic"


@register_blocked("Conv", prefers=True)
def conv_blocked(node, graph, b):
    """Conv runs blocked when its grouping fits the blocks; a layer with fewer than ``b``
    input channels (an RGB image) reads its input plain and still writes blocked."""
    xs = graph.tensor(node.inputs[0]).shape
    if len(xs) not in (3, 4) or graph.tensor(node.inputs[0]).dtype != "float32":
        return None
    if not graph.is_constant(node.inputs[1]) or (len(node.inputs) > 2 and node.inputs[2]
                                                 and not graph.is_constant(node.inputs[2])):
        return None
    C, OC = xs[1], graph.tensor(node.inputs[1]).shape[0]
    group = int(node.attrs.get("group", 1))
    kind = conv_kind(C, OC, group, b)
    if kind == "generic":
        return None
    in_blocked = not (kind == "dense" and group == 1 and C < b)
    attrs = {**node.attrs, "mlc_blocked": b, "mlc_in_blocked": int(in_blocked)}
    return node.with_(attrs=attrs), ({0} if in_blocked else set())


def _x_index(geo, n, c, h, w):
    return (n, c, w) if geo["one_d"] else (n, c, h, w)


def _padded_input(ctx, x, geo, bi, cb_count):
    """Xc[n, cb, h, w, ci]: the input in channel blocks of bi, with the spatial zero padding.

    A blocked input is already in channel blocks: it is used directly when no padding is
    needed, else copied once into a padded buffer (zeroing channels beyond C)."""
    g = geo
    Hp = (g["OH"] - 1) * g["sh"] + (g["KH"] - 1) * g["dh"] + 1
    Wp = (g["OW"] - 1) * g["sw"] + (g["KW"] - 1) * g["dw"] + 1
    C, H, W, pt, pl = g["C"], g["H"], g["W"], g["pt"], g["pl"]
    zero = const(0.0, "float32")
    if g.get("in_blocked"):
        needs_pad = pt > 0 or pl > 0 or Hp - pt > H or Wp - pl > W
        if not needs_pad and C % bi == 0:
            if g["one_d"]:
                return _OneD(x)
            return x

        def fb(n, cb, h, w, ci):
            hh, ww = h - pt, w - pl
            conds = []
            if pt > 0 or Hp - pt > H:
                conds += [hh >= 0, hh < H]
            if pl > 0 or Wp - pl > W:
                conds += [ww >= 0, ww < W]
            if C % bi:
                conds.append(cb * bi + ci < C)
            safe = lambda v, hi: binary("min", binary("max", v, 0), hi - 1)
            idx = (n, cb, safe(ww, W), ci) if g["one_d"] else (n, cb, safe(hh, H), safe(ww, W), ci)
            return select(logical_and(*conds), x[idx], zero) if conds else x[idx]

        return ctx.compute((g["N"], cb_count, Hp, Wp, bi), fb, "pad", axis_names=["n", "cb", "h", "w", "ci"],
                           materialize=True)

    def f(n, cb, h, w, ci):
        c = cb * bi + ci
        hh, ww = h - pt, w - pl
        conds = []
        if pt > 0 or Hp - pt > H:
            conds += [hh >= 0, hh < H]
        if pl > 0 or Wp - pl > W:
            conds += [ww >= 0, ww < W]
        if cb_count * bi > C:
            conds.append(c < C)
        if not conds:
            return x[_x_index(g, n, c, hh, ww)]
        safe = lambda v, hi: binary("min", binary("max", v, 0), hi - 1)
        val = x[_x_index(g, n, safe(c, C), safe(hh, H), safe(ww, W))]
        return select(logical_and(*conds), val, zero)

    return ctx.compute((g["N"], cb_count, Hp, Wp, bi), f, "pad", axis_names=["n", "cb", "h", "w", "ci"],
                       materialize=True)


class _OneD:
    """A blocked 1-D input [N, CB, L, b] read as 2-D [N, CB, 1, L, b]."""

    def __init__(self, x):
        self.x = x
        self.shape = (x.shape[0], x.shape[1], 1, x.shape[2], x.shape[3])

    def __getitem__(self, idx):
        n, cb, h, w, ci = idx
        return self.x[n, cb, w, ci]


def _finish(ctx, stage_fn, bias, geo, bo, name, shape5):
    """The conv stage itself; in blocked mode it is the output (bias as epilogue, padded to
    whole blocks), otherwise a plain NCHW copy follows."""
    g = geo
    if g.get("out_blocked"):
        import numpy as np
        OB = shape5[1]
        bvec = None
        if bias is not None:
            bval = ctx.const(2)
            padded = np.zeros(OB * bo, dtype=np.float32)
            padded[:g["OC"]] = bval
            bvec = ctx.constant(padded, "bias")

        def fo(n, ob, oh, ow, oi):
            acc = stage_fn(n, ob, oh, ow, oi)
            return acc + bvec[ob * bo + oi] if bvec is not None else acc

        names = ["n", "ob", "oh", "ow", "oi"]
        if g["one_d"]:
            return ctx.compute(ctx.out_shape(0), lambda n, ob, ow, oi: fo(n, ob, 0, ow, oi), name,
                               axis_names=["n", "ob", "ow", "oi"])
        return ctx.compute(ctx.out_shape(0), fo, name, axis_names=names)
    yc = ctx.compute(shape5, stage_fn, name, axis_names=["n", "ob", "oh", "ow", "oi"])
    return _unblocked_output(ctx, yc, bias, g, bo)


def _unblocked_output(ctx, yc, bias, geo, bo):
    g = geo

    def f(*idx):
        if g["one_d"]:
            n, c, ow = idx
            oh = 0
        else:
            n, c, oh, ow = idx
        v = yc[n, c // bo, oh, ow, c % bo]
        if bias is not None:
            v = v + bias[c]
        return v

    names = ["n", "c", "ow"] if g["one_d"] else ["n", "c", "oh", "ow"]
    return ctx.compute(ctx.out_shape(0), f, "unblock", axis_names=names)


def _blocked(ctx, x, w, bias, geo, L):
    g = geo
    group, OC, ICg = g["group"], g["OC"], g["ICg"]
    OCg = OC // group
    bo = L
    bi = L if g["in_blocked"] else _in_block(ICg, L)
    OB = -(-OC // bo)
    CB = -(-g["C"] // bi)
    xc = _padded_input(ctx, x, g, bi, CB)
    # a blocked input may end in a partial block: its extra lanes are zero, and so are the
    # packed weights of those channels
    icb = reduce_axis(-(-ICg // bi), "icb")
    kh = reduce_axis(g["KH"], "kh")
    kw = reduce_axis(g["KW"], "kw")
    ii = reduce_axis(bi, "ii")
    sh, sw, dh, dw = g["sh"], g["sw"], g["dh"], g["dw"]
    icb_per_group = ICg // bi

    def f(n, ob, oh, ow, oi):
        oc = ob * bo + oi
        cb = icb if group == 1 else (ob * bo // OCg) * icb_per_group + icb
        xv = xc[n, cb, oh * sh + kh * dh, ow * sw + kw * dw, ii]
        wv = w[(oc, icb * bi + ii, kw) if g["one_d"] else (oc, icb * bi + ii, kh, kw)]
        return reduce_sum(xv * wv, [icb, kh, kw, ii])

    return _finish(ctx, f, bias, g, bo, "conv", (g["N"], OB, g["OH"], g["OW"], bo))


def _depthwise(ctx, x, w, bias, geo, L):
    """Depthwise: one filter per channel, vectorised across 16 channels of a block."""
    g = geo
    bo = L
    CB = -(-g["C"] // bo)
    xc = _padded_input(ctx, x, g, bo, CB)
    kh = reduce_axis(g["KH"], "kh")
    kw = reduce_axis(g["KW"], "kw")
    sh, sw, dh, dw = g["sh"], g["sw"], g["dh"], g["dw"]

    def f(n, cb, oh, ow, ci):
        c = cb * bo + ci
        wv = w[(c, 0, kw) if g["one_d"] else (c, 0, kh, kw)]
        return reduce_sum(xc[n, cb, oh * sh + kh * dh, ow * sw + kw * dw, ci] * wv, [kh, kw])

    return _finish(ctx, f, bias, g, bo, "dwconv", (g["N"], CB, g["OH"], g["OW"], bo))


def _generic(ctx, x, w, bias, geo):
    """Any grouping: direct NCHW computation (correct everywhere, not tuned for speed)."""
    g = geo
    ICg, OCg = g["ICg"], g["OC"] // g["group"]
    ic = reduce_axis(ICg, "ic")
    kh = reduce_axis(g["KH"], "kh")
    kw = reduce_axis(g["KW"], "kw")
    H, W = g["H"], g["W"]

    def f(*idx):
        if g["one_d"]:
            n, oc, ow = idx
            oh = 0
        else:
            n, oc, oh, ow = idx
        h = oh * g["sh"] + kh * g["dh"] - g["pt"]
        ww = ow * g["sw"] + kw * g["dw"] - g["pl"]
        c = (oc // OCg) * ICg + ic
        inb = logical_and(h >= 0, h < H, ww >= 0, ww < W)
        safe = lambda v, hi: binary("min", binary("max", v, 0), hi - 1)
        xv = select(inb, x[_x_index(g, n, c, safe(h, H), safe(ww, W))], const(0.0, "float32"))
        wv = w[(oc, ic, kw) if g["one_d"] else (oc, ic, kh, kw)]
        acc = reduce_sum(xv * wv, [ic, kh, kw])
        return acc + bias[oc] if bias is not None else acc

    names = ["n", "oc", "ow"] if g["one_d"] else ["n", "oc", "oh", "ow"]
    return ctx.compute(ctx.out_shape(0), f, "gconv", axis_names=names)


# --------------------------------------------------------------------------------------
# schedule space and default schedule of the blocked paths
# --------------------------------------------------------------------------------------

def conv_tile(ow: int, ob: int, regs: int = 32) -> tuple[int, int]:
    """(owt, nb): output pixels x channel blocks held in accumulators."""
    nb = 2 if ob % 2 == 0 else 1
    best = None
    for owt in range(min(ow, (regs - 4) // nb), 0, -1):
        waste = (-ow) % owt
        score = (waste / ow, -owt)
        if best is None or score < best[0]:
            best = (score, owt)
    return best[1], nb


def _conv_stage(kernel):
    from mlc.loop.tensor import Stage
    # the conv stage keeps its tag when epilogues merge into it (its name becomes theirs)
    return next((s for s in kernel.stages if isinstance(s, Stage) and s.is_reduction
                 and s.tag.split("+")[0] in ("Conv", "ConvTranspose") and s.axes[-1].name == "oi"), None)


def _weight_buffer(kernel, stage):
    """The weights the conv stage reads per output lane (ConvTranspose reads sub-pixel
    weights it derived at compile time, not its input 1)."""
    from mlc.loop.expr import depends_on, loads_of
    oi = stage.axes[-1].var
    for ld in loads_of(stage.body):
        if ld.buffer in kernel.constant and ld.indices and depends_on(ld.indices[0], oi):
            return ld.buffer
    return kernel.inputs[1]


class ConvSpace(Space):
    """Knobs of the blocked convolution micro-kernel.

    owt: output pixels per register tile; nb: output channel blocks per tile (owt * nb
    zmm accumulators); order: reduction loop order (icb, kh, kw, ii) or (kh, kw, icb, ii);
    uii: unrolling of the input-channel lane loop; outer: (n, ob, oh, ow) or
    (n, oh, ob, ow) outer order; par: outer loops fused for the thread pool."""

    def __init__(self, kernel, target, threads: int = 1):
        self.kernel, self.target, self.threads = kernel, target, threads
        self.stage = _conv_stage(kernel)
        self.plan = plan_kernel(kernel, target)
        ext = {a.name: a.extent for a in self.stage.axes}
        self.depthwise = not any(a.name == "ii" for a in self.stage.reduce_axes)
        self.bi = next((a.extent for a in self.stage.reduce_axes if a.name == "ii"), 1)
        self.regs = target.num_vector_registers
        OW, OB = ext["ow"], ext["ob"]
        nbs = [1] if self.depthwise else [d for d in (1, 2, 3, 4) if OB % d == 0]
        self.knobs = [("owt", list(range(1, min(OW, self.regs - 4) + 1))), ("nb", nbs),
                      ("order", [0] if self.depthwise else [0, 1]),
                      ("uii", [1] if self.depthwise else [u for u in (1, 2, 4, 8) if self.bi % u == 0]),
                      ("outer", [0, 1])]
        # a materialised padded input: at root (copied once), or computed per output row
        # into a small per-thread buffer (no round trip through memory: depthwise convs do
        # too little work per input byte to afford the copy)
        self.pad = next((st for st in kernel.stages if getattr(st, "name", None) in kernel.materialize
                         and st.buffer in set(self.stage.reads())), None)
        # a 1-D conv writing blocked output has no output-row loop "oh" (and no rows to pad per)
        self.one_d = "oh" not in ext
        if self.pad is not None and not self.one_d:
            self.knobs.append(("pad_at_row", [0, 1]))
        if threads > 1:
            self.knobs.append(("par", [2, 3, 4]))
        # output rows per register tile: a tile of oht rows x owt pixels reuses each weight
        # vector it loads oht * owt times (small feature maps: a row alone is too short)
        if not self.depthwise and not self.one_d:
            self.knobs.append(("oht", [1, 2, 3, 4]))
        # software prefetch of the weights, this many input-channel steps (cache lines of
        # each channel-block stream) ahead: a layer with megabytes of weights reads them
        # from memory, not cache, and a 4 KB page is too short for the hardware prefetcher
        # to get ahead of a stream.  Only there: with weights in cache it cannot pay, and
        # a knob that cannot pay only dilutes the search
        self.cold = not self.depthwise and weights_cold(kernel)
        if self.cold:
            self.knobs.append(("pf", [0, 8, 16, 32, 64, 128]))
        owt, nb = conv_tile(OW, OB, self.regs)
        if self.depthwise:
            nb = 1
        d = {"owt": owt, "nb": nb, "order": 0, "uii": 1, "outer": 0, "par": 3,
             "pad_at_row": 1 if self.depthwise else 0, "oht": 1, "pf": 0}
        self._neutral = tuple(d[name] for name, _ in self.knobs)
        # weights of a megabyte or more come from memory inside a model: prefetched by default
        if self.cold:
            d["pf"] = 32
        self._default = tuple(d[name] for name, _ in self.knobs)

    def default(self) -> tuple:
        return self._default

    def neutral(self) -> tuple:
        return self._neutral

    def valid(self, cfg: tuple) -> bool:
        k = {"oht": 1, "pad_at_row": 0, **self.as_dict(cfg)}
        if k["oht"] > 1 and k["pad_at_row"]:
            return False                   # rows are padded one at a time
        return k["oht"] * k["owt"] * k["nb"] <= self.regs - 4 + (2 if k["nb"] == 1 else 0)

    def schedule(self, cfg: tuple) -> Schedule:
        k = {"par": 3, "pad_at_row": 0, "oht": 1, "pf": 0, **self.as_dict(cfg)}
        pad_at_row = self.pad is not None and not self.one_d and int(k["pad_at_row"]) == 1
        s = Schedule()
        # every other stage (padding, layout copies, epilogues) by the generic rules
        knobs = self.plan.default_knobs(self.target)
        for p, kk in zip(self.plan.plans, knobs):
            if p.stage is not self.stage and not (pad_at_row and p.stage is self.pad):
                s = p.apply(s, kk)
        name = self.stage.name
        owt, nb, oht = int(k["owt"]), int(k["nb"]), int(k["oht"])
        s = s.split(name, "ow", owt)
        ob, oh = "ob", "oh"
        inner = ["ow.i"]
        if nb > 1:
            s = s.split(name, "ob", nb)
            ob = "ob.o"
            inner = ["ow.i", "ob.i"]
        if oht > 1:
            s = s.split(name, "oh", oht)
            oh = "oh.o"
            inner = ["oh.i"] + inner
        outer = ["n", ob, oh, "ow.o"] if k["outer"] == 0 else ["n", oh, ob, "ow.o"]
        if self.one_d:
            outer.remove("oh")
        red = [a.name for a in self.stage.reduce_axes]
        if not self.depthwise:
            red = ["icb", "kh", "kw", "ii"] if k["order"] == 0 else ["kh", "kw", "icb", "ii"]
            if int(k["uii"]) > 1:
                s = s.split(name, "ii", int(k["uii"]))
                red = red[:-1] + ["ii.o", "ii.i"]
        s = s.reorder(name, outer + red + inner + ["oi"])
        if "ii.i" in red:
            s = s.unroll(name, "ii.i")
        for a in inner:
            s = s.unroll(name, a)
        s = s.vectorize(name, "oi")
        wbuf = _weight_buffer(self.kernel, self.stage)
        # weights known at compile time are re-laid out for the micro-kernel; weights fed
        # at run time are read where they are (correct, slower: no model does this for speed)
        if wbuf in self.kernel.constant:
            if self.depthwise:
                s = s.pack(wbuf.name, 0, self.target.lanes_f32)
            else:
                s = s.pack(wbuf.name, 1, self.bi).pack(wbuf.name, 1, self.target.lanes_f32)
        if int(k["pf"]):
            s = s.prefetch(name, wbuf.name, red[-2] if "ii.i" in red else red[-1],
                           max(1, int(k["pf"]) // int(k["uii"])))
        par = outer[:int(k["par"])]
        s = s.fuse(name, par).parallel(name, "@".join(par))
        if pad_at_row:
            at = "@".join(par) if "oh" in par else "oh"
            s = s.compute_at(self.pad.name, name, at).vectorize(self.pad.name, self.pad.axes[-1].name)
        return s


@register_space("Conv")
def conv_space(kernel, target, threads=1):
    return ConvSpace(kernel, target, threads) if _conv_stage(kernel) is not None else None


@register_schedule("Conv")
def conv_schedule(kernel, target):
    space = conv_space(kernel, target)
    return space.schedule(space.default()) if space is not None else None
