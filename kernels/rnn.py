"""Recurrent layers: LSTM, GRU and RNN with ONNX semantics.

Supported: directions forward / reverse / bidirectional, initial_h (and initial_c),
sequence_lens (per batch element: steps past its length write zeros to Y, its final state
is the one at its own length, and a reverse direction runs from its own last step),
LSTM peepholes (P) and input_forget, GRU linear_before_reset, the activations attributes
(Sigmoid, Tanh, Relu, HardSigmoid, LeakyRelu, ThresholdedRelu, ScaledTanh, Affine, Elu,
Softsign, Softplus, with activation_alpha / activation_beta consumed in order), clip,
layout (opset 14: batch-major X / Y / Y_h / Y_c), every output optional.  float32, with
W, R, B and P compile-time constants (they always are in exported models).

One kernel, two parts:

1. the input projection of every time step, ``XW[t * B + b, d * G + j] = X[t, b] . W[d, j]
   + bias``, is one matrix product (a stage the default scheduler register-tiles, W^T
   packed at compile time).  Biases that add before the activation (Wb + Rb, except
   GRU's Rbh under linear_before_reset) are folded into it;
2. the recurrence is an imperative loop (ExternStage), one task per (direction, batch
   element) -- tasks run in parallel: the two directions of a bidirectional layer on two
   cores.  Per time step: the small product ``H_{t-1} . R^T`` in register blocks of
   ``T`` gate columns (``T / lanes`` vector accumulators, R^T re-laid out at compile
   time in column panels ``[d, block, k, T]`` so each block streams contiguously), then
   the gate activations as vector loops over the hidden units.

Gate columns are laid out in *segments*, each padded to whole blocks (zero weights):
LSTM one segment [i o f c], RNN [i], GRU two: [z r] and [h] -- the h gate's product needs
``r`` first (``(r . H) R_h^T``) or, under linear_before_reset, its own bias inside the
reset product.
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import (INDEX, Buffer, Var, binary, call, cast, const, logical_and, maximum,
                           minimum, reduce_sum, select)
from mlc.loop.stmt import Allocate, Let, if_then, loop, seq, store
from mlc.loop.tensor import ExternStage, reduce_axis
from mlc.registry import register

from .reduce import as_buffer

F32 = "float32"

# activation name (lowercase) -> (uses alpha, uses beta, default alpha, default beta)
_ACTS = {
    "sigmoid": (False, False, 0.0, 0.0), "tanh": (False, False, 0.0, 0.0), "relu": (False, False, 0.0, 0.0),
    "affine": (True, True, 1.0, 0.0), "leakyrelu": (True, False, 0.01, 0.0),
    "thresholdedrelu": (True, False, 1.0, 0.0), "scaledtanh": (True, True, 1.0, 1.0),
    "hardsigmoid": (True, True, 0.2, 0.5), "elu": (True, False, 1.0, 0.0),
    "softsign": (False, False, 0.0, 0.0), "softplus": (False, False, 0.0, 0.0),
}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _c(v) -> object:
    return const(float(v), F32)


def _activation(name: str, alpha: float, beta: float):
    """Expression builder of one ONNX RNN activation function."""
    n = name.lower()
    if n == "sigmoid":
        return lambda x: call("sigmoid", x)
    if n == "tanh":
        return lambda x: call("tanh", x)
    if n == "relu":
        return lambda x: maximum(x, _c(0))
    if n == "affine":
        return lambda x: x * _c(alpha) + _c(beta)
    if n == "leakyrelu":
        return lambda x: select(x >= _c(0), x, x * _c(alpha))
    if n == "thresholdedrelu":
        return lambda x: select(x > _c(alpha), x, _c(0))
    if n == "scaledtanh":
        return lambda x: call("tanh", x * _c(beta)) * _c(alpha)
    if n == "hardsigmoid":
        return lambda x: minimum(maximum(x * _c(alpha) + _c(beta), _c(0)), _c(1))
    if n == "elu":
        return lambda x: select(x >= _c(0), x, (call("exp", x) - _c(1)) * _c(alpha))
    if n == "softsign":
        return lambda x: x / (call("abs", x) + _c(1))
    if n == "softplus":
        return lambda x: call("softplus", x)
    raise KeyError(name)


def _activations(ctx, op: str, D: int) -> list:
    """Per direction, the list of activation builders (f, g[, h])."""
    per = len(_DEFAULT_ACTS[op])
    names = ctx.attr("activations", None)
    names = [n.decode() if isinstance(n, bytes) else n for n in names] if names else None
    if not names:
        names = _DEFAULT_ACTS[op] * D
    elif len(names) == per and D == 2:
        names = names * 2
    if len(names) != per * D:
        raise ctx.unsupported(f"{len(names)} activations for {D} direction(s) ({per} per direction expected)")
    alphas = list(ctx.attr("activation_alpha", []) or [])
    betas = list(ctx.attr("activation_beta", []) or [])
    out, specs = [], []
    for name in names:
        spec = _ACTS.get(str(name).lower())
        if spec is None:
            raise ctx.unsupported(f"activation {name!r} (supported: {', '.join(sorted(_ACTS))})")
        a = alphas.pop(0) if spec[0] and alphas else spec[2]
        b = betas.pop(0) if spec[1] and betas else spec[3]
        out.append(_activation(name, a, b))
        specs.append((str(name).lower(), a, b))
    return ([out[d * per:(d + 1) * per] for d in range(D)],
            [specs[d * per:(d + 1) * per] for d in range(D)])


@register("LSTM", pattern="opaque")
def lstm(ctx):
    return _rnn(ctx, "LSTM")


@register("GRU", pattern="opaque")
def gru(ctx):
    return _rnn(ctx, "GRU")


@register("RNN", pattern="opaque")
def rnn(ctx):
    return _rnn(ctx, "RNN")


def _rnn(ctx, op: str):
    ng = _GATES[op]
    xs = ctx.in_shape(0)
    if ctx.in_dtype(0) != F32:
        raise ctx.unsupported(f"{op} on {ctx.in_dtype(0)} (float32 only)")
    if len(xs) != 3:
        raise ctx.unsupported(f"X of rank {len(xs)} (3 expected)")
    layout = int(ctx.attr("layout", 0))
    if layout not in (0, 1):
        raise ctx.unsupported(f"layout={layout}")
    S, B, I = (xs[1], xs[0], xs[2]) if layout else xs
    direction = ctx.attr("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ctx.unsupported(f"direction {direction!r}")
    D = 2 if direction == "bidirectional" else 1
    ws = ctx.in_shape(1)
    H = int(ctx.attr("hidden_size", ws[1] // ng))
    if tuple(ws) != (D, ng * H, I) or tuple(ctx.in_shape(2)) != (D, ng * H, H):
        raise ctx.unsupported(f"W {list(ws)} / R {list(ctx.in_shape(2))} do not fit {D} direction(s), "
                              f"hidden_size {H}, input size {I}")
    if min(S, B, I, H) == 0:
        raise ctx.unsupported("empty tensors")
    W, R = ctx.const(1), ctx.const(2)
    Bv = ctx.const(3) if ctx.has_input(3) else None
    P = ctx.const(7) if op == "LSTM" and ctx.has_input(7) else None
    if ctx.has_input(3) and tuple(ctx.in_shape(3)) != (D, 2 * ng * H):
        raise ctx.unsupported(f"B of shape {list(ctx.in_shape(3))}")
    if op == "LSTM" and ctx.has_input(7) and tuple(ctx.in_shape(7)) != (D, 3 * H):
        raise ctx.unsupported(f"P of shape {list(ctx.in_shape(7))}")
    for i in (1, 2, 3, 7):
        if ctx.has_input(i) and ctx.in_dtype(i) != F32:
            raise ctx.unsupported(f"input {i} of type {ctx.in_dtype(i)}")
    for i in (4, 5, 6):
        if ctx.has_input(i) and ctx.in_dtype(i) != ("int32" if i == 4 else F32):
            raise ctx.unsupported(f"input {i} of type {ctx.in_dtype(i)}")
    acts, specs = _activations(ctx, op, D)
    same_acts = D == 2 and specs[0] == specs[1]
    clip = ctx.attr("clip", None)
    input_forget = op == "LSTM" and int(ctx.attr("input_forget", 0))
    lbr = op == "GRU" and int(ctx.attr("linear_before_reset", 0))
    L = ctx.target.lanes_f32

    # --- gate column layout -------------------------------------------------------------
    # segments: (gates in it, initial value "xw" | "rb", vector "h" | "rh")
    if op == "GRU":
        segs = [([0, 1], "xw", "h"), ([2], "rb" if lbr else "xw", "h" if lbr else "rh")]
    else:
        segs = [(list(range(ng)), "xw", "h")]
    min_cols = min(len(g) * H for g, _, _ in segs)
    nv = max(1, min(8, -(-min_cols // L)))
    T = nv * L
    seg_start, col = [], 0
    for gates, _, _ in segs:
        seg_start.append(col)
        col += -(-len(gates) * H // T) * T
    Gp = col
    NB = Gp // T
    gate_col = {}
    for si, (gates, _, _) in enumerate(segs):
        for k, g in enumerate(gates):
            gate_col[g] = seg_start[si] + k * H

    # weights in the padded column layout: column c of a direction holds W / R row
    # rowof[c] (-1: padding, zero weights)
    rowof = np.full(Gp, -1, np.int64)
    for g, c0 in gate_col.items():
        rowof[c0:c0 + H] = np.arange(g * H, (g + 1) * H)
    rec_bias_rows = (2 * H, 3 * H) if lbr else (0, 0)     # GRU h gate: Rbh inside the reset product
    x = ctx.input(0)
    if W is not None:
        W = np.asarray(W, np.float32)
        wt = np.zeros((I, D, Gp), np.float32)
        for d_ in range(D):
            wt[:, d_, rowof >= 0] = W[d_, rowof[rowof >= 0]].T
        wt_b = ctx.constant(wt.reshape(I, D * Gp), "wt")
    else:
        wt_b = ctx.compute((I, D * Gp), lambda kk, n: _gather_row(ctx.input(1), n // Gp, n % Gp, kk, rowof),
                           "wt", materialize=True)
    if R is not None:
        R = np.asarray(R, np.float32)
        rt = np.zeros((D, H, Gp), np.float32)
        for d_ in range(D):
            rt[d_][:, rowof >= 0] = R[d_, rowof[rowof >= 0]].T
        rtp_b = ctx.constant(np.ascontiguousarray(rt.reshape(D, H, NB, T).transpose(0, 2, 1, 3)), "rt")
    else:
        rtp_b = ctx.compute((D, NB, H, T), lambda dd, blk, kk, jj: _gather_row(
            ctx.input(2), dd, blk * T + jj, kk, rowof), "rt", materialize=True)
    if not ctx.has_input(3):
        bias_b = ctx.constant(np.zeros(D * Gp, np.float32), "bias")
        rbias_b = ctx.constant(np.zeros((D, Gp), np.float32), "rbias") if lbr else None
    elif Bv is not None:
        Bv = np.asarray(Bv, np.float32)
        bias = np.zeros((D, Gp), np.float32)
        rbias = np.zeros((D, Gp), np.float32)
        valid = rowof >= 0
        rows = rowof[valid]
        in_rec = (rows >= rec_bias_rows[0]) & (rows < rec_bias_rows[1])
        for d_ in range(D):
            bias[d_, valid] = Bv[d_, rows] + np.where(in_rec, 0, Bv[d_, ng * H + rows])
            rbias[d_, valid] = np.where(in_rec, Bv[d_, ng * H + rows], 0)
        bias_b = ctx.constant(bias.reshape(-1), "bias")
        rbias_b = ctx.constant(rbias, "rbias") if lbr else None
    else:
        bsrc = ctx.input(3)

        def fbias(n):
            dd, c = n // Gp, n % Gp
            wb = _gather_row(bsrc, dd, c, None, rowof)
            rb = _gather_row(bsrc, dd, c, None, rowof, offset=ng * H, skip=rec_bias_rows)
            return wb + rb
        bias_b = ctx.compute((D * Gp,), fbias, "bias", materialize=True)
        rbias_b = ctx.compute((D, Gp), lambda dd, c: _gather_row(
            bsrc, dd, c, None, rowof, offset=ng * H, only=rec_bias_rows), "rbias", materialize=True) if lbr else None
    if op == "LSTM" and ctx.has_input(7):
        p_b = ctx.constant(np.asarray(P, np.float32), "peep") if P is not None else as_buffer(ctx.input(7))
    else:
        p_b = None

    # --- 1. input projection --------------------------------------------------------------
    k = reduce_axis(I, "k")

    def proj(m, n):
        t, b = m // B, m % B
        xv = x[b, t, k] if layout else x[t, b, k]
        return reduce_sum(xv * wt_b[k, n], [k]) + bias_b[n]

    xw = ctx.compute((S * B, D * Gp), proj, "xw", axis_names=["m", "n"])

    # --- 2. the recurrence ----------------------------------------------------------------
    y = Buffer(ctx.unique("y"), (B, S, D, H) if layout else (S, D, B, H), F32)
    yh = Buffer(ctx.unique("y_h"), (B, D, H) if layout else (D, B, H), F32)
    yc = Buffer(ctx.unique("y_c"), (B, D, H) if layout else (D, B, H), F32)
    ntask = D * B
    gates = Buffer(ctx.unique("rnn_gates"), (ntask, Gp), F32)
    hs = Buffer(ctx.unique("rnn_h"), (ntask, H), F32)
    cs = Buffer(ctx.unique("rnn_c"), (ntask, H), F32)
    rh = Buffer(ctx.unique("rnn_rh"), (ntask, H), F32)
    seq_lens = as_buffer(ctx.input(4)) if ctx.has_input(4) else None
    h0 = as_buffer(ctx.input(5)) if ctx.has_input(5) else None
    c0 = as_buffer(ctx.input(6)) if op == "LSTM" and ctx.has_input(6) else None

    task = Var("task")
    d = task // B if B > 1 else task
    b = task % B if B > 1 else const(0, INDEX)
    if D == 1:
        d = const(0, INDEX)
    u = Var("u")          # hidden unit (vector loops)
    zero = _c(0)

    def state_idx(dd, bb, uu):
        return (bb, dd, uu) if layout else (dd, bb, uu)

    def y_idx(t, uu):
        return (b, t, d, uu) if layout else (t, d, b, uu)

    def clipped(e):
        if clip is None:
            return e
        cv = float(clip)
        return minimum(maximum(e, _c(-cv)), _c(cv))

    def gate_in(g, uu):
        return gates[task, gate_col[g] + uu]

    def xw_at(row, g, uu):
        return xw[row, d * Gp + gate_col[g] + uu]

    # matvec over one segment: gates[task, cols] = init + vec . R^T
    def matvec(si, row):
        gl, init, vec = segs[si]
        vbuf = hs if vec == "h" else rh
        acc = Buffer(f"rnn_acc{si}", (T,), F32, "local")
        jb, kk, uo, jj, hk = Var(f"jb{si}"), Var(f"k{si}"), Var(f"uo{si}"), Var(f"jj{si}"), Var(f"hk{si}", F32)
        nblk = -(-len(gl) * H // T)
        blk = seg_start[si] // T + jb
        colx = seg_start[si] + jb * T + uo * L + jj
        a_idx = (uo * L + jj,)
        if init == "xw":
            init_v = xw[row, d * Gp + colx]
        else:
            init_v = rbias_b[d, colx]
        first = loop(uo, nv, loop(jj, L, store(acc, a_idx, init_v), "vector"), "unroll")
        fma = loop(kk, H, Let(hk, vbuf[task, kk], loop(uo, nv, loop(
            jj, L, store(acc, a_idx, acc[a_idx] + hk * rtp_b[d, blk, kk, uo * L + jj]), "vector"), "unroll")))
        last = loop(uo, nv, loop(jj, L, store(gates, (task, colx), acc[a_idx]), "vector"), "unroll")
        return loop(jb, nblk, Allocate(acc, seq(first, fma, last)))

    def vloop(body):
        return loop(u, H, body, "vector")

    def step_body(t, row):
        """One time step of task (d, b) at time index t (its X row ``row``)."""
        if op == "LSTM":
            return _per_dir(D, d, same=same_acts, make=lambda dd: _lstm_update(dd, t, row))
        if op == "RNN":
            return _per_dir(D, d, same=same_acts, make=lambda dd: seq(matvec(0, row), vloop(_rnn_update(dd, t))))
        return _per_dir(D, d, same=same_acts, make=lambda dd: _gru_update(dd, t, row))

    def _lstm_update(dd, t, row):
        f, g, h = acts[dd]
        cprev = cs[task, u]
        vi, vf, vo, vc, cn = (Var(n, F32) for n in ("vi", "vf", "vo", "vc", "cn"))
        pi = gate_in(0, u) + (p_b[d, u] * cprev if p_b is not None else zero)
        pf = gate_in(2, u) + (p_b[d, 2 * H + u] * cprev if p_b is not None else zero)
        upd = Let(vi, f(clipped(pi)), Let(vf, (_c(1) - vi) if input_forget else f(clipped(pf)), Let(
            vc, g(clipped(gate_in(3, u))), Let(cn, vf * cprev + vi * vc, Let(
                vo, f(clipped(gate_in(1, u) + (p_b[d, H + u] * cn if p_b is not None else zero))),
                seq(store(cs, (task, u), cn), store(hs, (task, u), vo * h(clipped(cn))),
                    store(y, y_idx(t, u), vo * h(clipped(cn)))))))))
        return seq(matvec(0, row), vloop(upd))

    def _rnn_update(dd, t):
        (f,) = acts[dd]
        vh = Var("vh", F32)
        return Let(vh, f(clipped(gate_in(0, u))), seq(store(hs, (task, u), vh), store(y, y_idx(t, u), vh)))

    def _gru_update(dd, t, row):
        f, g = acts[dd]
        vz, vr, vh, hn = (Var(n, F32) for n in ("vz", "vr", "vh", "hn"))
        zr = vloop(Let(vz, f(clipped(gate_in(0, u))), Let(vr, f(clipped(gate_in(1, u))), seq(
            store(gates, (task, gate_col[0] + u), vz),
            store(gates, (task, gate_col[1] + u), vr),
            None if lbr else store(rh, (task, u), vr * hs[task, u])))))
        if lbr:
            pre = xw_at(row, 2, u) + gate_in(1, u) * gate_in(2, u)
        else:
            pre = gate_in(2, u)
        hupd = vloop(Let(vh, g(clipped(pre)), Let(hn, (_c(1) - gate_in(0, u)) * vh + gate_in(0, u) * hs[task, u],
                                                   seq(store(hs, (task, u), hn), store(y, y_idx(t, u), hn)))))
        return seq(matvec(0, row), zr, matvec(1, row), hupd)

    # per task: initial state, the steps, the final state
    length = Var("len")
    step = Var("step")
    tvar = Var("t")
    init_h = vloop(store(hs, (task, u), h0[state_idx(d, b, u)] if h0 is not None else zero))
    init_c = vloop(store(cs, (task, u), c0[state_idx(d, b, u)] if c0 is not None else zero)) \
        if op == "LSTM" else None
    if direction == "forward":
        t_expr = step
    elif direction == "reverse":
        t_expr = length - 1 - step
    else:
        t_expr = select(binary("eq", d, 0), step, length - 1 - step)
    active = Let(tvar, t_expr, step_body(tvar, tvar * B + b))
    idle = vloop(store(y, y_idx(step, u), zero))
    steps = loop(step, S, if_then(binary("lt", step, length), active, idle))
    # (a sequence of length 0 ends in a zero state, not its initial state: onnxruntime)
    final = seq(vloop(store(yh, state_idx(d, b, u), select(length > 0, hs[task, u], zero))),
                vloop(store(yc, state_idx(d, b, u), select(length > 0, cs[task, u], zero)))
                if op == "LSTM" else None)
    if seq_lens is not None:
        len_v = minimum(maximum(cast(INDEX, seq_lens[b]), const(0, INDEX)), const(S, INDEX))
    else:
        len_v = const(S, INDEX)
    body = Let(length, len_v, seq(init_h, init_c, steps, final))
    par = ctx.target.num_cores > 1 and ntask > 1
    stmt = loop(task, ntask, body, "parallel" if par else "serial")
    ins = [xw.buffer] + [as_buffer(bb) for bb in (rtp_b, rbias_b, p_b, seq_lens, h0, c0) if bb is not None]
    outs = (y, yh, yc) if op == "LSTM" else (y, yh)
    scratch = (gates, hs) + ((cs,) if op == "LSTM" else ()) + ((rh,) if op == "GRU" and not lbr else ())
    ctx.extern(ExternStage(outs, tuple(ins), stmt, tag=op, scratch=scratch))
    return list(outs)[:max(1, len(ctx.node.outputs))]


def _gather_row(src, d, col, k, rowof, offset=0, skip=(0, 0), only=None):
    """``src[d, offset + rowof[col], k]`` (``k`` None: a 2-D source), zero on padding
    columns, on rows in ``skip`` [lo, hi), and (with ``only``) outside rows [lo, hi)."""
    valid, row = None, None
    # rowof is piecewise ``col - start + first_row`` over at most two runs of columns
    runs, c = [], 0
    while c < len(rowof):
        if rowof[c] < 0:
            c += 1
            continue
        e = c
        while e + 1 < len(rowof) and rowof[e + 1] == rowof[e] + 1:
            e += 1
        runs.append((c, e + 1, int(rowof[c])))
        c = e + 1
    pieces = []
    for start, end, first in runs:
        lo, hi = first, first + (end - start)
        if only is not None:
            lo, hi = max(lo, only[0]), min(hi, only[1])
        parts = [(lo, hi)]
        if skip[1] > skip[0]:
            parts = [(lo, min(hi, skip[0])), (max(lo, skip[1]), hi)]
        pieces += [(start + (a - first), a, b - a) for a, b in parts if a < b]
    for cs, lo, n in pieces:
        in_run = logical_and(col >= cs, col < cs + n)
        r = col - cs + lo
        row = r if row is None else select(in_run, r, row)
        valid = in_run if valid is None else (valid | in_run)
    if row is None:
        return _c(0)
    row = minimum(maximum(row, const(0, INDEX)), const(int(rowof.max()), INDEX))
    v = src[d, row + offset] if k is None else src[d, row + offset, k]
    return select(valid, v, _c(0))


def _per_dir(D, d, make, same=False):
    """The step statement for direction d: the two directions of a bidirectional layer may
    have different activations, so each gets its own code behind a branch."""
    if D == 1 or same:
        return make(0)
    return if_then(binary("eq", d, 0), make(0), make(1))
