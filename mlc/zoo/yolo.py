"""A YOLOv8-style detector (ultralytics ``yolov8.yaml``), written the way ultralytics'
``model.export(format="onnx", dynamic=True)`` emits it: BatchNorm fused into the convs,
SiLU as ``Sigmoid`` then ``Mul``, C2f blocks with ``Split`` and ``Concat``, an SPPF block
of three chained 5x5 ``MaxPool``s, nearest ``Resize`` upsampling in the neck, and the
``Detect`` head decoded inside the graph -- anchors computed from every feature map's
run-time shape (``Shape``, ``Gather``, ``Range``, ``Expand``, ``ConstantOfShape``), boxes
from a DFL ``Softmax`` over 16 distance bins. Height and width are symbolic."""

from __future__ import annotations

import math

import numpy as np
import onnx

from ._builder import GraphBuilder

#: ultralytics ``yolov8.yaml`` backbone/head channels before the width multiplier.
BACKBONE_CHANNELS = (64, 128, 256, 512, 1024)
#: C2f repeats of the backbone (layers 2, 4, 6, 8) before the depth multiplier.
BACKBONE_REPEATS = (3, 6, 6, 3)
#: Feature-map strides of the three detection levels (P3, P4, P5).
STRIDES = (8, 16, 32)


def _ch(c: int, width: float, max_channels: int = 1024) -> int:
    """ultralytics' channel rule: ``make_divisible(min(c, max_channels) * width, 8)``."""
    return int(math.ceil(min(c, max_channels) * width / 8) * 8)


def _n(n: int, depth: float) -> int:
    return max(round(n * depth), 1) if n > 1 else n


def _conv(b: GraphBuilder, x: str, c: int, k: int = 1, s: int = 1, name: str = "conv") -> str:
    """ultralytics ``Conv`` after export: Conv (with the BatchNorm folded into weight and
    bias) then SiLU as Sigmoid + Mul. The weights are scaled so the pre-activation has
    unit variance, as a trained BN would leave it."""
    with b.scope(name):
        gain = 1.0 / max(b.moments(x).mean_square, 1e-3)
        y = b.conv(x, c, k, s, k // 2, bias=True, gain=gain, bias_std=0.1, name="conv")
        return b.silu(y, name="act")


def _bottleneck(b: GraphBuilder, x: str, shortcut: bool) -> str:
    """``Bottleneck(c, c, shortcut, k=(3, 3), e=1.0)``: two 3x3 Convs, residual Add."""
    c = b.shape(x)[1]
    y = _conv(b, _conv(b, x, c, 3, name="cv1"), c, 3, name="cv2")
    return b.add(x, y) if shortcut else y


def _c2f(b: GraphBuilder, x: str, c2: int, n: int, shortcut: bool) -> str:
    """``C2f``: cv1 (1x1 to 2c), ``chunk(2, 1)`` -> Split, n Bottlenecks each fed the
    previous output, Concat of all the pieces, cv2 (1x1)."""
    c = c2 // 2
    y = b.split(_conv(b, x, 2 * c, name="cv1"), [c, c], axis=1)
    for i in range(n):
        with b.scope(f"m.{i}"):
            y.append(_bottleneck(b, y[-1], shortcut))
    return _conv(b, b.concat(y, axis=1), c2, name="cv2")


def _sppf(b: GraphBuilder, x: str, c2: int, k: int = 5) -> str:
    """``SPPF``: cv1 (1x1 to c/2), three chained MaxPool(k, stride 1, pad k//2), Concat
    of the four, cv2 (1x1)."""
    y = [_conv(b, x, b.shape(x)[1] // 2, name="cv1")]
    for i in range(3):   # chained windows: effectively k, 2k-1, 3k-2 wide
        window = (i * (k - 1) + k) ** 2
        y.append(b.maxpool(y[-1], k, 1, k // 2, name="m", moments=b.moments(y[0]).max_of(window)))
    return _conv(b, b.concat(y, axis=1), c2, name="cv2")


def _make_anchors(b: GraphBuilder, feats: list[str], offset: float = 0.5) -> tuple[str, str]:
    """ultralytics ``make_anchors`` traced with dynamic shapes: per level, ``h, w`` from
    ``Shape``; ``arange(w) + 0.5`` and ``arange(h) + 0.5`` (Range); ``meshgrid(ij)`` as
    Reshape + Expand to [h, w]; ``stack((sx, sy), -1).view(-1, 2)``; ``torch.full((h * w,
    1), stride)`` as ConstantOfShape. Returns anchor points [2, A] and strides [1, A]
    (transposed, as ``Detect`` keeps them)."""
    points, strides = [], []
    for feat, stride in zip(feats, STRIDES):
        _, _, h, w = b.shape(feat)
        with b.scope("anchors"):
            hd, wd = b.dim(feat, 2), b.dim(feat, 3)
            zero, one = b.const(0.0), b.const(1.0)
            sx = b.add(b.node("Range", [zero, b.node("Cast", [wd], (), to=onnx.TensorProto.FLOAT,
                                                     dtype=np.float32), one], (w,)), offset)
            sy = b.add(b.node("Range", [zero, b.node("Cast", [hd], (), to=onnx.TensorProto.FLOAT,
                                                     dtype=np.float32), one], (h,)), offset)
            grid = b.node("Concat", [b.unsqueeze(hd, [0]), b.unsqueeze(wd, [0])], (2,), axis=0)
            gy = b.node("Expand", [b.reshape(sy, (-1, 1)), grid], (h, w))
            gx = b.node("Expand", [b.reshape(sx, (1, -1)), grid], (h, w))
            xy = b.concat([b.unsqueeze(gx, [-1]), b.unsqueeze(gy, [-1])], axis=-1)
            points.append(b.reshape(xy, (-1, 2)))
            hw = b.unsqueeze(b.node("Mul", [hd, wd], ()), [0])
            size = b.node("Concat", [hw, b.const([1], np.int64)], (2,), axis=0)
            strides.append(b.node("ConstantOfShape", [size], (h * w, 1), dtype=np.float32,
                                  value=onnx.numpy_helper.from_array(np.array([stride], np.float32))))
    with b.scope("anchors"):
        anchors = b.transpose(b.concat(points, axis=0), (1, 0))
        stride_row = b.transpose(b.concat(strides, axis=0), (1, 0))
    return anchors, stride_row


def _view(b: GraphBuilder, x: str, ref: str, lead: list[int], tail: list[int],
          shape: tuple[int, ...], name: str) -> str:
    """``x.view(ref.shape[i] for i in lead, *tail)`` as traced with dynamic shapes:
    Shape, Gather, Unsqueeze per kept dimension, Concat with the constants, Reshape."""
    parts = [b.unsqueeze(b.dim(ref, i, name), [0], name) for i in lead]
    spec = b.node("Concat", [*parts, b.const(tail, np.int64)], (len(lead) + len(tail),), name=name, axis=0)
    return b.node("Reshape", [x, spec], shape, name=name)


def _detect(b: GraphBuilder, feats: list[str], nc: int, reg_max: int) -> str:
    """``Detect`` in export mode: per level a box branch (cv2: 3x3 Conv, 3x3 Conv, 1x1
    conv to 4 * reg_max) and a class branch (cv3: to nc) concatenated; all levels viewed
    as [b, no, -1] and concatenated; split into box / class; DFL (view [b, 4, reg_max, A],
    transpose, Softmax over the bins, 1x1 conv with weights 0..reg_max-1); dist2bbox
    (Split into lt / rb, centre and size, Concat) times the strides; Concat with the
    Sigmoid of the class logits -> [b, 4 + nc, A]."""
    c2 = max(16, b.shape(feats[0])[1] // 4, reg_max * 4)
    c3 = max(b.shape(feats[0])[1], min(nc, 100))
    no = nc + 4 * reg_max
    levels = []
    with b.scope("model.22"):
        for i, f in enumerate(feats):
            with b.scope(f"cv2.{i}"):
                box = _conv(b, _conv(b, f, c2, 3, name="0"), c2, 3, name="1")
                box = b.conv(box, 4 * reg_max, 1, bias=True, gain=0.5 / b.moments(box).mean_square, name="2")
            with b.scope(f"cv3.{i}"):
                cls = _conv(b, _conv(b, f, c3, 3, name="0"), c3, 3, name="1")
                cls = b.conv(cls, nc, 1, bias=True, gain=1.0 / b.moments(cls).mean_square, bias_std=0.5,
                             name="2")
            x = b.concat([box, cls], axis=1)
            n, _, h, w = b.shape(x)
            levels.append(_view(b, x, x, [0], [no, -1], (n, no, h * w), name="view"))
        x_cat = b.concat(levels, axis=2)
        anchors, stride_row = _make_anchors(b, feats)
        box, cls = b.split(x_cat, [4 * reg_max, nc], axis=1)
        n, _, a = b.shape(box)
        with b.scope("dfl"):
            d = _view(b, box, box, [0], [4, reg_max, -1], (n, 4, reg_max, a), name="view")
            d = b.softmax(b.transpose(d, (0, 2, 1, 3)), axis=1)
            weight = b.param("conv.weight", np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1))
            d = b.node("Conv", [d, weight], (n, 1, 4, a), name="conv", dilations=[1, 1], group=1,
                       kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1])
            dist = _view(b, d, box, [0], [4, -1], (n, 4, a), name="view")
        lt, rb = b.split(dist, [2, 2], axis=1)
        points = b.unsqueeze(anchors, [0])
        x1y1, x2y2 = b.sub(points, lt), b.add(points, rb)
        c_xy = b.div(b.add(x1y1, x2y2), 2.0)
        wh = b.sub(x2y2, x1y1)
        dbox = b.mul(b.concat([c_xy, wh], axis=1), stride_row)
        return b.concat([dbox, b.sigmoid(cls)], axis=1)


def yolo(image: int = 128, num_classes: int = 80, width: float = 0.25, depth: float = 0.33,
         reg_max: int = 16, batch: int = 1, seed: int = 0) -> onnx.ModelProto:
    """YOLOv8 (default: the "n" scale, width 0.25, depth 0.33, 80 classes) at a nominal
    ``image`` x ``image`` input.

    Input ``images`` float32 [batch, 3, "height", "width"] (symbolic; any multiple of 32).
    Output ``output0`` float32 [batch, 4 + num_classes, "anchors"]: per anchor the box
    (centre x, centre y, width, height in input pixels) and the class probabilities;
    anchors = sum over strides 8, 16, 32 of (height / s) * (width / s).

    Backbone: Conv 3x3/2 (P1), Conv 3x3/2 (P2), C2f, Conv/2 (P3), C2f, Conv/2 (P4), C2f,
    Conv/2 (P5), C2f, SPPF. Neck (PAN): Resize x2, Concat, C2f, Resize x2, Concat, C2f
    (P3 out), Conv/2, Concat, C2f (P4 out), Conv/2, Concat, C2f (P5 out). Head: Detect
    with DFL over ``reg_max`` bins. ~8.7 GFLOP at 640 x 640 for the n scale.
    """
    if image % 32:
        raise ValueError(f"image={image} must be a multiple of 32")
    b = GraphBuilder("yolo", seed=seed)
    x = b.input("images", (batch, 3, image, image), dims=(batch, 3, "height", "width"))
    c = [_ch(ch, width) for ch in BACKBONE_CHANNELS]
    n = [_n(r, depth) for r in BACKBONE_REPEATS]
    layer = iter(range(23))

    def scope():
        return b.scope(f"model.{next(layer)}")

    with scope():
        x = _conv(b, x, c[0], 3, 2)
    with scope():
        x = _conv(b, x, c[1], 3, 2)
    with scope():
        x = _c2f(b, x, c[1], n[0], True)
    with scope():
        x = _conv(b, x, c[2], 3, 2)
    with scope():
        p3 = _c2f(b, x, c[2], n[1], True)
    with scope():
        x = _conv(b, p3, c[3], 3, 2)
    with scope():
        p4 = _c2f(b, x, c[3], n[2], True)
    with scope():
        x = _conv(b, p4, c[4], 3, 2)
    with scope():
        x = _c2f(b, x, c[4], n[3], True)
    with scope():
        p5 = _sppf(b, x, c[4])
    with scope():
        x = b.resize(p5, 2.0)
    with scope():
        x = b.concat([x, p4], axis=1)
    with scope():
        h4 = _c2f(b, x, c[3], n[3], False)
    with scope():
        x = b.resize(h4, 2.0)
    with scope():
        x = b.concat([x, p3], axis=1)
    with scope():
        out3 = _c2f(b, x, c[2], n[3], False)
    with scope():
        x = _conv(b, out3, c[2], 3, 2)
    with scope():
        x = b.concat([x, h4], axis=1)
    with scope():
        out4 = _c2f(b, x, c[3], n[3], False)
    with scope():
        x = _conv(b, out4, c[3], 3, 2)
    with scope():
        x = b.concat([x, p5], axis=1)
    with scope():
        out5 = _c2f(b, x, c[4], n[3], False)
    y = _detect(b, [out3, out4, out5], num_classes, reg_max)
    b.output(y, "output0", dims=(batch, 4 + num_classes, "anchors"))
    return b.build(doc=yolo.__doc__ or "")


def yolo_inputs(rng: np.random.Generator, *, batch: int, image: int, **_) -> dict[str, np.ndarray]:
    """An image batch with values in [0, 1] (ultralytics feeds RGB / 255)."""
    return {"images": rng.random((batch, 3, image, image), dtype=np.float32)}
