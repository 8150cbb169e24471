"""NonMaxSuppression: greedy per-class box selection, as ONNX (and onnxruntime) define it.

The number of selected boxes depends on the data, so the output has its maximum shape
(batches x classes x max boxes per class, 3) and a row count the kernel writes
(``mlc.frontend.bounded``); the runtime trims the output to it.

Per (batch, class): boxes scoring above ``score_threshold`` (all of them without one) are
candidates; repeatedly the best remaining candidate (highest score, lowest index on ties)
is taken and kept unless its IoU with an already kept box exceeds ``iou_threshold``,
until ``max_output_boxes_per_class`` are kept or no candidate remains.  O(S x K) per class
for S boxes and K kept, with no sort.
"""
from __future__ import annotations

from mlc.loop.expr import Buffer, Var, binary, cast, const, logical_and, maximum, minimum, select
from mlc.loop.stmt import Allocate, Break, For, Let, Store, if_then, seq
from mlc.loop.tensor import ExternStage
from mlc.registry import register, register_bounded_rows

F32 = "float32"
I64 = "int64"


def _scalar(ctx, i: int, dtype: str, default):
    """Input i as a scalar expression (its first element), or ``default`` when omitted."""
    if not ctx.has_input(i):
        return const(default, dtype)
    b = ctx.input(i)
    idx = (0,) * len(b.shape)
    v = b[idx] if idx else b[()]
    return v if v.dtype == dtype else cast(dtype, v)


def _max_rows(max_out, num_batches: int, num_classes: int, num_boxes: int) -> int:
    per_class = num_boxes if max_out is None else max(0, min(int(max_out), num_boxes))
    return num_batches * num_classes * per_class


@register("NonMaxSuppression", pattern="opaque")
def non_max_suppression(ctx):
    boxes, scores = ctx.input(0), ctx.input(1)
    B, S, _ = ctx.in_shape(0)
    _, C, _ = ctx.in_shape(1)
    if ctx.in_dtype(0) != F32 or ctx.in_dtype(1) != F32:
        raise ctx.unsupported(f"boxes/scores of dtype {ctx.in_dtype(0)}/{ctx.in_dtype(1)} (float32 only)")
    center = int(ctx.attr("center_point_box", 0))
    rows = ctx.out_shape(0)[0]
    out = Buffer(ctx.unique("nms"), (rows, 3), I64)
    count = Buffer(ctx.unique("nms_rows"), (), I64)
    max_out = _scalar(ctx, 2, I64, 0)
    iou_thr = _scalar(ctx, 3, F32, 0.0)
    has_score_thr = ctx.has_input(4)
    score_thr = _scalar(ctx, 4, F32, 0.0)

    alive = Buffer("nms_alive", (S,), "int32", "local")
    kept = Buffer("nms_kept", (max(S, 1),), I64, "local")
    n_kept = Buffer("nms_n_kept", (1,), I64, "local")
    total = Buffer("nms_total", (1,), I64, "local")
    best = Buffer("nms_best", (1,), I64, "local")
    best_score = Buffer("nms_best_score", (1,), F32, "local")
    keep = Buffer("nms_keep", (1,), "int32", "local")

    b, c, s, it, j = (Var(n) for n in ("b", "c", "s", "it", "j"))
    limit = Var("limit")

    def corners(box):
        """(x_min, x_max, y_min, y_max) of box index ``box`` in batch b."""
        v = [boxes[b, box, k] for k in range(4)]
        if center == 0:                  # [y1, x1, y2, x2], either corner first
            return minimum(v[1], v[3]), maximum(v[1], v[3]), minimum(v[0], v[2]), maximum(v[0], v[2])
        half_w, half_h = v[2] / 2.0, v[3] / 2.0
        return v[0] - half_w, v[0] + half_w, v[1] - half_h, v[1] + half_h

    def suppressed(i1, i2):
        x1a, x1b, y1a, y1b = corners(i1)
        x2a, x2b, y2a, y2b = corners(i2)
        ix = minimum(x1b, x2b) - maximum(x1a, x2a)
        iy = minimum(y1b, y2b) - maximum(y1a, y2a)
        inter = ix * iy
        a1 = (x1b - x1a) * (y1b - y1a)
        a2 = (x2b - x2a) * (y2b - y2a)
        union = a1 + a2 - inter
        positive = logical_and(ix > 0.0, iy > 0.0, inter > 0.0, a1 > 0.0, a2 > 0.0, union > 0.0)
        return logical_and(positive, inter / select(positive, union, const(1.0, F32)) > iou_thr)

    candidate = scores[b, c, s] > score_thr if has_score_thr else const(True, "bool")
    pick = seq(
        Store(best, (0,), const(-1, I64)),
        Store(best_score, (0,), const(float("-inf"), F32)),
        For(s, const(S, I64), "serial", if_then(
            logical_and(binary("ne", alive[s], const(0, "int32")),
                        (best[0] < 0) | (scores[b, c, s] > best_score[0])),
            seq(Store(best, (0,), s), Store(best_score, (0,), scores[b, c, s])))),
    )
    check = seq(
        Store(keep, (0,), const(1, "int32")),
        For(j, n_kept[0], "serial", if_then(suppressed(best[0], kept[j]),
                                            seq(Store(keep, (0,), const(0, "int32")), Break()))),
    )
    take = if_then(binary("ne", keep[0], const(0, "int32")), seq(
        Store(kept, (n_kept[0],), best[0]),
        Store(out, (total[0], 0), b),
        Store(out, (total[0], 1), c),
        Store(out, (total[0], 2), best[0]),
        Store(n_kept, (0,), n_kept[0] + 1),
        Store(total, (0,), total[0] + 1),
    ))
    per_class = seq(
        For(s, const(S, I64), "serial", Store(alive, (s,), select(candidate, const(1, "int32"), const(0, "int32")))),
        Store(n_kept, (0,), const(0, I64)),
        For(it, const(S, I64), "serial", seq(
            if_then(n_kept[0] >= limit, Break()),
            pick,
            if_then(best[0] < 0, Break()),
            Store(alive, (best[0],), const(0, "int32")),
            check,
            take,
        )),
    )
    body = seq(
        Store(total, (0,), const(0, I64)),
        Let(limit, minimum(maximum(max_out, const(0, I64)), const(S, I64)),
            For(b, const(B, I64), "serial", For(c, const(C, I64), "serial", per_class))),
        Store(count, (), total[0]),
    )
    for buf in (keep, best_score, best, total, n_kept, kept, alive):
        body = Allocate(buf, body)
    inputs = tuple(ctx.input(i) for i in range(len(ctx.inputs)) if ctx.has_input(i))
    ctx.extern(ExternStage((out, count), inputs, body, tag="NonMaxSuppression"))
    return [out, count]


@register_bounded_rows("NonMaxSuppression")
def nms_rows(node, consts: dict, shapes: dict) -> int:
    boxes, scores = node.input[0], node.input[1]
    nb, ns, _ = shapes[boxes]
    _, nc, _ = shapes[scores]
    mo = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if mo is None:                                  # omitted: ONNX's default, 0 boxes per class
        return 0
    value = consts.get(mo)                          # None: known only at run time
    return _max_rows(None if value is None else value.reshape(-1)[0], nb, nc, ns)
