"""A plain multi-layer perceptron (the classic MNIST 784-1024-1024-10 network), as
``torch.onnx.export`` emits a stack of ``nn.Linear`` + ``nn.ReLU``: Gemm(transB=1) + Relu."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from ._builder import GraphBuilder


def mlp(sizes: Sequence[int] = (784, 1024, 1024, 10), batch: int = 1,
        seed: int = 0) -> onnx.ModelProto:
    """MLP: ``x`` float32 [batch, sizes[0]] -> ``logits`` float32 [batch, sizes[-1]].

    One ``Gemm(transB=1)`` per consecutive pair of sizes (weights [out, in], He-normal),
    each but the last followed by ``Relu``. Default 784-1024-1024-10:
    2 * (784*1024 + 1024*1024 + 1024*10) = 3,723,264 FLOPs per sample.
    """
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2:
        raise ValueError("mlp needs at least an input and an output size")
    b = GraphBuilder("mlp", seed=seed)
    x = b.input("x", (batch, sizes[0]))
    last = len(sizes) - 2
    for i, width in enumerate(sizes[1:]):
        with b.scope("layers"):
            x = b.gemm(x, width, gain=1.0 if i == last else 2.0, name=str(2 * i))
            if i != last:
                x = b.relu(x, name=str(2 * i + 1))
    b.output(x, "logits")
    return b.build(doc=mlp.__doc__ or "")


def mlp_inputs(rng: np.random.Generator, *, sizes: Sequence[int], batch: int, **_) -> dict[str, np.ndarray]:
    """Standard-normal features."""
    return {"x": rng.standard_normal((batch, int(sizes[0]))).astype(np.float32)}
