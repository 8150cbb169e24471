"""CRNN text recognition (Shi et al., 2015) as the reference PyTorch implementation
(``meijieru/crnn.pytorch``) builds it, written the way ``torch.onnx.export`` emits it with
a dynamic width: a VGG-style conv stack (Conv + ReLU, BatchNormalization on three
layers, MaxPools with (2, 1) strides and (0, 1) pads that keep the width), Squeeze and
Transpose to a sequence, then two bidirectional LSTMs -- each with zero initial states
made by ``ConstantOfShape`` from the run-time batch size, its [T, 2, b, h] output
Transposed and Reshaped to [T, b, 2h], and the ``view(T * b, 2h)`` / ``Gemm`` /
``view(T, b, -1)`` embedding, the views' shapes computed from ``Shape`` at run time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from ._builder import GraphBuilder

#: crnn.pytorch's conv channels (``nm``), the layers with BatchNorm, and the pools after
#: layers 0, 1, 3 and 5: (kernel, stride, pads [top, left, bottom, right]).
CRNN_CHANNELS = (64, 128, 256, 256, 512, 512, 512)
CRNN_BN_LAYERS = (2, 4, 6)
CRNN_POOLS = {0: ((2, 2), (2, 2), (0, 0, 0, 0)), 1: ((2, 2), (2, 2), (0, 0, 0, 0)),
              3: ((2, 2), (2, 1), (0, 1, 0, 1)), 5: ((2, 2), (2, 1), (0, 1, 0, 1))}


def _shape_view(b: GraphBuilder, x: str, parts: list[str], shape: tuple[int, ...], name: str) -> str:
    """``x.view(*parts)`` with sizes traced from run-time shapes: Unsqueeze each 0-d
    part, Concat, Reshape."""
    spec = b.node("Concat", [b.unsqueeze(p, [0], name) for p in parts], (len(parts),), name=name, axis=0)
    return b.node("Reshape", [x, spec], shape, name=name)


def _bidirectional_lstm(b: GraphBuilder, x: str, hidden: int, out: int) -> str:
    """crnn.pytorch ``BidirectionalLSTM``: ``nn.LSTM(nIn, hidden, bidirectional=True)``
    (zero initial states), then ``T, b, h = recurrent.size(); embedding(recurrent.view(T
    * b, h)).view(T, b, -1)`` with ``embedding = nn.Linear(2 * hidden, out)``."""
    t, n, _ = b.shape(x)
    with b.scope("rnn"):
        batch = b.unsqueeze(b.dim(x, 1), [0])
        state_shape = b.node("Concat", [b.const([2], np.int64), batch, b.const([hidden], np.int64)],
                             (3,), axis=0)
        zeros = b.node("ConstantOfShape", [state_shape], (2, n, hidden), dtype=np.float32,
                       value=onnx.numpy_helper.from_array(np.zeros(1, np.float32)))
    y, _, _ = b.lstm(x, hidden, bidirectional=True, initial_h=zeros, initial_c=zeros, name="rnn")
    with b.scope("rnn"):
        y = b.reshape(b.transpose(y, (0, 2, 1, 3)), (0, 0, -1))            # [T, b, 2h]
    tt, bb, hh = (b.dim(y, i) for i in range(3))
    flat = _shape_view(b, y, [b.node("Mul", [tt, bb], ()), hh], (t * n, 2 * hidden), name="view")
    # weights scaled for unit-variance logits given the LSTM's small outputs
    z = b.gemm(flat, out, gain=1.0 / b.moments(flat).mean_square, name="embedding")
    return _shape_view(b, z, [tt, bb, b.const(-1, np.int64)], (t, n, out), name="view")


def crnn(height: int = 32, width: int = 100, channels: Sequence[int] = (16, 32, 64, 64, 128, 128, 128),
         hidden: int = 32, num_classes: int = 37, in_channels: int = 3, batch: int = 1,
         seed: int = 0) -> onnx.ModelProto:
    """CRNN (default: crnn.pytorch's layout with channels divided by 4, LSTM hidden 32).
    ``channels=CRNN_CHANNELS, hidden=256`` is the published model.

    Input ``input`` float32 [batch, in_channels, 32, "width"] (symbolic width; ``width``
    is the nominal one). Output ``output`` float32 ["sequence", batch, num_classes]: CTC
    logits per time step, sequence = width / 4 + 1.

    Seven 3x3 convs (the last 2x2 without padding), ReLU, BatchNorm after the 3rd, 5th
    and 7th; MaxPools 2x2/2, 2x2/2, then 2x2 with stride (2, 1) and pads (0, 1) twice,
    leaving height 1; Squeeze(2), Transpose(2, 0, 1); BiLSTM(hidden) + Linear(hidden),
    BiLSTM(hidden) + Linear(num_classes).
    """
    if height != 32:
        raise ValueError("CRNN's conv stack needs height 32")
    if len(channels) != 7:
        raise ValueError("CRNN has seven conv layers")
    b = GraphBuilder("crnn", seed=seed)
    x = b.input("input", (batch, in_channels, height, width), dims=(batch, in_channels, height, "width"))
    with b.scope("cnn"):
        for i, c in enumerate(channels):
            k, p = (2, 0) if i == 6 else (3, 1)
            x = b.conv(x, c, k, 1, p, bias=True, name=f"conv{i}")
            if i in CRNN_BN_LAYERS:
                x = b.bn(x, name=f"batchnorm{i}")
            x = b.relu(x, name=f"relu{i}")
            if i in CRNN_POOLS:
                k, s, p = CRNN_POOLS[i]
                x = b.maxpool(x, k, s, p, name=f"pooling{i}", moments=b.moments(x).max_of(4))
    x = b.transpose(b.squeeze(x, [2]), (2, 0, 1))              # [T, b, C]
    with b.scope("rnn.0"):
        x = _bidirectional_lstm(b, x, hidden, hidden)
    with b.scope("rnn.1"):
        x = _bidirectional_lstm(b, x, hidden, num_classes)
    b.output(x, "output", dims=("sequence", batch, num_classes))
    return b.build(doc=crnn.__doc__ or "")


def crnn_inputs(rng: np.random.Generator, *, batch: int, in_channels: int, height: int, width: int,
                **_) -> dict[str, np.ndarray]:
    """A normalized text-line crop (values in [-1, 1])."""
    return {"input": rng.uniform(-1.0, 1.0, (batch, in_channels, height, width)).astype(np.float32)}
