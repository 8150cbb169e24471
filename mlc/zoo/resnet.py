"""ResNet-18 (He et al., 2015) exactly as ``torchvision.models.resnet18`` builds it,
written the way ``torch.onnx.export`` emits it in eval mode without BN folding."""

from __future__ import annotations

import numpy as np
import onnx

from ._builder import GraphBuilder

#: Blocks per stage of ResNet-18 (torchvision ``layers=[2, 2, 2, 2]``).
RESNET18_LAYERS = (2, 2, 2, 2)
STAGE_WIDTHS = (64, 128, 256, 512)


def _basic_block(b: GraphBuilder, x: str, planes: int, stride: int) -> str:
    """torchvision ``BasicBlock``: conv3x3(stride)-bn-relu-conv3x3-bn, plus the identity
    or (when the shape changes) a ``downsample`` = conv1x1(stride)-bn; add; relu."""
    identity = x
    out = b.relu(b.bn(b.conv(x, planes, 3, stride, 1, name="conv1"), name="bn1"), name="relu")
    out = b.bn(b.conv(out, planes, 3, 1, 1, name="conv2"), name="bn2")
    if stride != 1 or b.shape(x)[1] != planes:
        with b.scope("downsample"):
            identity = b.bn(b.conv(x, planes, 1, stride, 0, name="0"), name="1")
    return b.relu(b.add(out, identity), name="relu")


def resnet18(batch: int = 1, image: int = 224, num_classes: int = 1000,
             seed: int = 0) -> onnx.ModelProto:
    """torchvision ResNet-18: ``input`` float32 [batch, 3, image, image] -> ``logits``
    float32 [batch, num_classes].

    conv1 7x7/2 (64) + BN + ReLU, MaxPool 3x3/2 pad 1, four stages of two BasicBlocks
    (64, 128, 256, 512 channels; stages 2-4 start with stride 2 and a 1x1/2 conv + BN
    downsample), GlobalAveragePool, Flatten, Gemm (fc). Conv weights are He-normal so
    activations stay O(1); BN parameters and running statistics are random but sane.
    11,689,512 trainable parameters, ~3.64 GFLOP (1.82 G multiply-adds) at 224x224.
    """
    b = GraphBuilder("resnet18", seed=seed)
    x = b.input("input", (batch, 3, image, image))
    x = b.relu(b.bn(b.conv(x, 64, 7, 2, 3, name="conv1"), name="bn1"), name="relu")
    x = b.maxpool(x, 3, 2, 1, name="maxpool")
    for stage, (width, blocks) in enumerate(zip(STAGE_WIDTHS, RESNET18_LAYERS), start=1):
        for i in range(blocks):
            with b.scope(f"layer{stage}.{i}"):
                x = _basic_block(b, x, width, 2 if (i == 0 and stage > 1) else 1)
    x = b.flatten(b.global_avg_pool(x, name="avgpool"), 1)
    b.output(b.gemm(x, num_classes, name="fc"), "logits")
    return b.build(doc=resnet18.__doc__ or "")


def resnet18_inputs(rng: np.random.Generator, *, batch: int, image: int, **_) -> dict[str, np.ndarray]:
    """A normalized image batch (standard normal, like ImageNet after mean/std scaling)."""
    return {"input": rng.standard_normal((batch, 3, image, image)).astype(np.float32)}
