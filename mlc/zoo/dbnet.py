"""DBNet text detection (Liao et al., 2020) on a MobileNetV3 backbone, as PaddleOCR's
``det_mv3_db`` builds it (``ppocr/modeling/backbones/det_mobilenet_v3.py``, ``DBFPN``,
``DBHead``), written the way paddle2onnx emits it: BatchNormalization left unfused after
every bias-free conv, HardSwish decomposed (``x * Clip(x + 3, 0, 6) / 6`` or ``x *
HardSigmoid(x)``), squeeze-excite gates of GlobalAveragePool, 1x1 convs, ReLU and
``HardSigmoid(slope 0.2, offset 0.5)``, nearest ``Resize`` upsampling in the FPN and
``ConvTranspose`` upsampling in the head."""

from __future__ import annotations

import numpy as np
import onnx

from ._builder import GraphBuilder

#: PaddleOCR's MobileNetV3 "small" config: kernel, expansion, output channels, SE,
#: activation, stride.
MOBILENETV3_SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)
#: Output channels of the last 1x1 conv of the small backbone (``cls_ch_squeeze``).
CLS_CH_SQUEEZE = 576


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _act(b: GraphBuilder, x: str, act: str | None, hardswish: str) -> str:
    if act == "relu":
        return b.relu(x)
    if act == "hardswish":
        return b.hardswish(x, form=hardswish)
    return x


def _conv_bn(b: GraphBuilder, x: str, out_ch: int, k: int, stride: int, groups: int,
             act: str | None, hardswish: str, name: str) -> str:
    """PaddleOCR ``ConvBNLayer``: bias-free Conv, BatchNorm, optional activation."""
    gain = 1.0 if act is None else 2.0
    with b.scope(name):
        y = b.bn(b.conv(x, out_ch, k, stride, (k - 1) // 2, groups, gain=gain, name="conv"), name="bn")
        return _act(b, y, act, hardswish)


def _se(b: GraphBuilder, x: str, reduction: int = 4) -> str:
    """``SEModule``: GlobalAveragePool, 1x1 conv + ReLU, 1x1 conv + HardSigmoid(0.2, 0.5),
    Mul with the input."""
    c = b.shape(x)[1]
    with b.scope("mid_se"):
        s = b.global_avg_pool(x, name="avg_pool")
        s = b.relu(b.conv(s, c // reduction, 1, bias=True, name="conv1"))
        s = b.hardsigmoid(b.conv(s, c, 1, bias=True, gain=1.0, name="conv2"), 0.2, 0.5)
    return b.mul(x, s)


def _residual_unit(b: GraphBuilder, x: str, k: int, mid: int, out: int, se: bool, act: str,
                   stride: int, hardswish: str) -> str:
    """``ResidualUnit``: 1x1 expand + BN + act, kxk depthwise + BN + act, optional SE,
    1x1 linear + BN, residual Add when the shape is kept."""
    in_ch = b.shape(x)[1]
    y = _conv_bn(b, x, mid, 1, 1, 1, act, hardswish, "expand_conv")
    y = _conv_bn(b, y, mid, k, stride, mid, act, hardswish, "bottleneck_conv")
    if se:
        y = _se(b, y)
    y = _conv_bn(b, y, out, 1, 1, 1, None, hardswish, "linear_conv")
    return b.add(x, y) if stride == 1 and in_ch == out else y


def _backbone(b: GraphBuilder, x: str, scale: float, hardswish: str) -> list[str]:
    """PaddleOCR's det MobileNetV3 (small): stem 3x3/2 conv + BN + HardSwish, the residual
    units, a 1x1 conv + BN + HardSwish at the end; the outputs before each stride-2 unit
    (after the first) and the last one -> features at strides 4, 8, 16, 32."""
    feats, i = [], 0
    with b.scope("backbone"):
        x = _conv_bn(b, x, _make_divisible(16 * scale), 3, 2, 1, "hardswish", hardswish, "conv")
        stage = 0
        for k, exp, c, se, act, s in MOBILENETV3_SMALL:
            if s == 2 and i > 0:
                feats.append(x)
                stage += 1
            with b.scope(f"stages.{stage}.{i}"):
                x = _residual_unit(b, x, k, _make_divisible(scale * exp), _make_divisible(scale * c),
                                   se, act, s, hardswish)
            i += 1
        x = _conv_bn(b, x, _make_divisible(scale * CLS_CH_SQUEEZE), 1, 1, 1, "hardswish", hardswish,
                     f"stages.{stage}.{i}")
        feats.append(x)
    return feats


def _fpn(b: GraphBuilder, feats: list[str], channels: int) -> str:
    """``DBFPN``: 1x1 convs to ``channels``; top-down sums with nearest x2 upsampling;
    3x3 convs to ``channels / 4``; upsample by 8, 4, 2 to stride 4; Concat."""
    c2, c3, c4, c5 = feats
    with b.scope("neck"):
        in5, in4, in3, in2 = (b.conv(c, channels, 1, gain=1.0, name=f"in{i}_conv")
                              for i, c in zip((5, 4, 3, 2), (c5, c4, c3, c2)))
        out4 = b.add(in4, b.resize(in5, 2.0))
        out3 = b.add(in3, b.resize(out4, 2.0))
        out2 = b.add(in2, b.resize(out3, 2.0))
        ps = [b.conv(t, channels // 4, 3, 1, 1, gain=1.0, name=f"p{i}_conv")
              for i, t in zip((5, 4, 3, 2), (in5, out4, out3, out2))]
        p5, p4, p3, p2 = ps
        return b.concat([b.resize(p5, 8.0), b.resize(p4, 4.0), b.resize(p3, 2.0), p2], axis=1)


def _head(b: GraphBuilder, x: str) -> str:
    """``DBHead`` (inference: the shrink map only): 3x3 conv + BN + ReLU, ConvTranspose
    2x2/2 + BN + ReLU, ConvTranspose 2x2/2 to one channel, Sigmoid."""
    c = b.shape(x)[1]
    with b.scope("head.binarize"):
        y = b.relu(b.bn(b.conv(x, c // 4, 3, 1, 1, name="conv1"), name="conv_bn1"))
        y = b.relu(b.bn(b.conv_transpose(y, c // 4, 2, 2, name="conv2"), name="conv_bn2"))
        y = b.conv_transpose(y, 1, 2, 2, gain=8.0, name="conv3")
        return b.sigmoid(y)


def dbnet(image: int = 96, scale: float = 0.5, fpn_channels: int = 96, hardswish: str = "clip",
          batch: int = 1, seed: int = 0) -> onnx.ModelProto:
    """DBNet with a MobileNetV3-small backbone (default scale 0.5, FPN width 96).

    Input ``x`` float32 [batch, 3, image, image] (``image`` a multiple of 32).
    Output ``maps`` float32 [batch, 1, image, image]: the text probability (shrink) map.

    ``hardswish``: how HardSwish is decomposed -- ``"clip"`` (Add, Clip, Mul, Div: what
    paddle2onnx writes) or ``"hardsigmoid"`` (HardSigmoid, Mul: PyTorch below opset 14).
    """
    if image % 32:
        raise ValueError(f"image={image} must be a multiple of 32")
    b = GraphBuilder("dbnet", seed=seed)
    x = b.input("x", (batch, 3, image, image))
    y = _head(b, _fpn(b, _backbone(b, x, scale, hardswish), fpn_channels))
    b.output(y, "maps")
    return b.build(doc=dbnet.__doc__ or "")


def dbnet_inputs(rng: np.random.Generator, *, batch: int, image: int, **_) -> dict[str, np.ndarray]:
    """A normalized image batch (standard normal, like PaddleOCR's mean/std scaling)."""
    return {"x": rng.standard_normal((batch, 3, image, image)).astype(np.float32)}
