"""MobileNetV2 (Sandler et al., 2018) exactly as ``torchvision.models.mobilenet_v2``
(width 1.0) builds it, written the way ``torch.onnx.export`` emits it in eval mode
without BN folding (ReLU6 as ``Clip(x, 0, 6)``, dropout gone)."""

from __future__ import annotations

import numpy as np
import onnx

from ._builder import GraphBuilder

#: torchvision's ``inverted_residual_setting``: expansion t, output channels c,
#: repeats n, first stride s.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (the identity at width 1.0)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn(b: GraphBuilder, x: str, out_ch: int, k: int, stride: int, groups: int,
             relu6: bool, index: int) -> str:
    """torchvision ``Conv2dNormActivation`` (``{i}.0`` conv, ``{i}.1`` BN, ReLU6) or,
    with ``relu6=False``, the linear bottleneck's conv + BN."""
    x = b.bn(b.conv(x, out_ch, k, stride, (k - 1) // 2, groups, name=f"{index}.0"), name=f"{index}.1")
    return b.relu6(x, name=f"{index}.2") if relu6 else x


def _inverted_residual(b: GraphBuilder, x: str, out_ch: int, stride: int, t: int) -> str:
    """torchvision ``InvertedResidual``: [1x1 expand + BN + ReLU6 if t != 1], 3x3
    depthwise (groups = channels) + BN + ReLU6, 1x1 linear projection + BN; residual add
    when stride is 1 and the channel count is unchanged."""
    in_ch = b.shape(x)[1]
    hidden = int(round(in_ch * t))
    with b.scope("conv"):
        out, i = x, 0
        if t != 1:
            out, i = _conv_bn(b, out, hidden, 1, 1, 1, True, 0), 1
        out = _conv_bn(b, out, hidden, 3, stride, hidden, True, i)
        out = b.bn(b.conv(out, out_ch, 1, 1, 0, gain=1.0, name=f"{i + 1}"), name=f"{i + 2}")
    return b.add(x, out) if stride == 1 and in_ch == out_ch else out


def mobilenetv2(batch: int = 1, image: int = 224, num_classes: int = 1000,
                width_mult: float = 1.0, seed: int = 0) -> onnx.ModelProto:
    """torchvision MobileNetV2: ``input`` float32 [batch, 3, image, image] -> ``logits``
    float32 [batch, num_classes].

    features.0: 3x3/2 conv to 32 + BN + ReLU6; 17 inverted residual blocks (expansion 6
    except the first, depthwise 3x3 with group = channels, linear bottlenecks, residual
    Adds); features.18: 1x1 conv to 1280 + BN + ReLU6; GlobalAveragePool, Flatten, Gemm
    (classifier.1; the Dropout is gone in eval). At width 1.0: 3,504,872 parameters,
    ~0.60 GFLOP (300 M multiply-adds) at 224x224.
    """
    b = GraphBuilder("mobilenetv2", seed=seed)
    x = b.input("input", (batch, 3, image, image))
    with b.scope("features"):
        x = _conv_bn(b, x, _make_divisible(32 * width_mult), 3, 2, 1, True, 0)
        index = 1
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                with b.scope(str(index)):
                    x = _inverted_residual(b, x, _make_divisible(c * width_mult), s if i == 0 else 1, t)
                index += 1
        last = _make_divisible(1280 * max(1.0, width_mult))
        x = _conv_bn(b, x, last, 1, 1, 1, True, index)
    x = b.flatten(b.global_avg_pool(x), 1)
    with b.scope("classifier"):
        x = b.gemm(x, num_classes, name="1")
    b.output(x, "logits")
    return b.build(doc=mobilenetv2.__doc__ or "")


def mobilenetv2_inputs(rng: np.random.Generator, *, batch: int, image: int, **_) -> dict[str, np.ndarray]:
    """A normalized image batch (standard normal)."""
    return {"input": rng.standard_normal((batch, 3, image, image)).astype(np.float32)}
