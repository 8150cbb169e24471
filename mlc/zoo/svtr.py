"""SVTR text recognition (Du et al., 2022) as PaddleOCR's ``SVTRNet`` builds it
(``ppocr/modeling/backbones/rec_svtrnet.py``, the ``SVTR_Tiny`` layout) with a CTC head,
written the way paddle2onnx emits it: a conv stem (two 3x3/2 Conv + BN + GELU), then
three stages of transformer blocks with LayerNorm decomposed into ReduceMean / Sub / Pow
/ ReduceMean / Add / Sqrt / Div, Linear as MatMul + Add, multi-head attention by Reshape
(with 0 and -1 entries) and Transpose juggling, Gather of q / k / v, MatMul, an additive
-inf mask for the local mixers, Softmax; conv patch merging between stages; the last
stage pooled by ``AveragePool`` to the output length, a 1x1 conv + HardSwish, and a
Linear + Softmax CTC head."""

from __future__ import annotations

import numpy as np
import onnx

from ._builder import GraphBuilder


def local_mask(hw: tuple[int, int], window: tuple[int, int]) -> np.ndarray:
    """The additive attention mask of SVTR's local mixer, computed as ``Attention.__init__``
    does: token (h, w) sees the ``window`` neighbourhood centred on it (0) and nothing
    else (-inf). Shape [1, 1, H*W, H*W]."""
    h, w = hw
    hk, wk = window
    mask = np.ones((h * w, h + hk - 1, w + wk - 1), dtype=np.float32)
    for i in range(h):
        for j in range(w):
            mask[i * w + j, i:i + hk, j:j + wk] = 0.0
    inner = mask[:, hk // 2:h + hk // 2, wk // 2:w + wk // 2].reshape(h * w, h * w)
    return np.where(inner < 1, inner, -np.inf).astype(np.float32)[None, None]


def _attention(b: GraphBuilder, x: str, heads: int, mask: np.ndarray | None) -> str:
    """``Attention``: qkv Linear, ``reshape((0, -1, 3, heads, d)).transpose((2, 0, 3, 1,
    4))``, q / k / v by Gather, ``q * d^-0.5 @ k^T`` (+ mask), Softmax, ``@ v``,
    ``transpose((0, 2, 1, 3)).reshape((0, -1, C))``, proj Linear."""
    dim = b.shape(x)[-1]
    d = dim // heads
    with b.scope("mixer"):
        qkv = b.linear(x, 3 * dim, std=dim ** -0.5, name="qkv")
        qkv = b.transpose(b.reshape(qkv, (0, -1, 3, heads, d)), (2, 0, 3, 1, 4))
        q, k, v = (b.gather(qkv, b.const(i, np.int64)) for i in range(3))
        attn = b.matmul(b.mul(q, d ** -0.5), b.transpose(k, (0, 1, 3, 2)))
        if mask is not None:
            attn = b.add(attn, b.const(mask))
        attn = b.softmax(attn, axis=-1)
        y = b.reshape(b.transpose(b.matmul(attn, v), (0, 2, 1, 3)), (0, -1, dim))
        return b.linear(y, dim, std=dim ** -0.5, name="proj")


def _block(b: GraphBuilder, x: str, heads: int, mask: np.ndarray | None, mlp_ratio: int) -> str:
    """``Block`` (prenorm=False): ``x + mixer(norm1(x))``, ``x + mlp(norm2(x))``; the MLP
    is Linear, GELU (erf), Linear."""
    dim = b.shape(x)[-1]
    x = b.add(x, _attention(b, b.layernorm_decomposed(x, 1e-6, name="norm1"), heads, mask))
    h = b.layernorm_decomposed(x, 1e-6, name="norm2")
    with b.scope("mlp"):
        h = b.gelu(b.linear(h, mlp_ratio * dim, std=dim ** -0.5, name="fc1"))
        h = b.linear(h, dim, std=(mlp_ratio * dim) ** -0.5, name="fc2")
    return b.add(x, h)


def _to_map(b: GraphBuilder, x: str, hw: tuple[int, int]) -> str:
    """``x.transpose([0, 2, 1]).reshape([0, C, H, W])``: tokens back to a feature map."""
    c = b.shape(x)[-1]
    return b.reshape(b.transpose(x, (0, 2, 1)), (0, c, *hw))


def _to_tokens(b: GraphBuilder, x: str) -> str:
    """``x.flatten(2).transpose((0, 2, 1))`` as paddle2onnx writes it (Reshape [0, 0, -1])."""
    return b.transpose(b.reshape(x, (0, 0, -1)), (0, 2, 1))


def svtr(height: int = 32, width: int = 100, embed_dims: tuple[int, ...] = (64, 96, 128),
         depths: tuple[int, ...] = (1, 2, 1), heads: tuple[int, ...] = (2, 3, 4),
         local_window: tuple[int, int] = (7, 11), mlp_ratio: int = 4, out_channels: int = 192,
         out_length: int = 25, num_classes: int = 37, batch: int = 1, seed: int = 0) -> onnx.ModelProto:
    """SVTR recogniser (default: a reduced SVTR-Tiny -- dims 64/96/128, depths 1/2/1 -- on
    the standard 32 x 100 text-line crop).

    Input ``x`` float32 [batch, 3, height, width]. Output ``probs`` float32 [batch,
    out_length, num_classes]: per output position the CTC class probabilities.

    Stem: two 3x3/2 conv + BN + GELU -> tokens at (height/4, width/4), plus a position
    embedding. The first half of the blocks mix locally (``local_window``, the -inf mask),
    the rest globally; a 3x3 conv with stride (2, 1) + LayerNorm merges patches between
    stages; after a final LayerNorm, AveragePool to (1, out_length), 1x1 conv to
    ``out_channels`` + HardSwish, squeeze / transpose, Linear, Softmax.
    """
    if height % 16 or width % 4 or (width // 4) % out_length:
        raise ValueError(f"need height % 16 == 0 and width / 4 a multiple of out_length={out_length}")
    b = GraphBuilder("svtr", seed=seed)
    x = b.input("x", (batch, 3, height, width))
    hw = (height // 4, width // 4)
    with b.scope("backbone"):
        with b.scope("patch_embed.proj"):
            for i, c in enumerate((embed_dims[0] // 2, embed_dims[0])):
                with b.scope(str(i)):
                    x = b.gelu(b.bn(b.conv(x, c, 3, 2, 1, name="conv"), name="norm"))
        x = _to_tokens(b, x)
        pos = b.param("pos_embed", b.normal((1, hw[0] * hw[1], embed_dims[0]), 0.02))
        x = b.add(x, pos)
        n_local = sum(depths) // 2
        block = 0
        for stage, (dim, depth, h) in enumerate(zip(embed_dims, depths, heads), start=1):
            if stage > 1:
                with b.scope(f"sub_sample{stage - 1}"):
                    y = b.conv(_to_map(b, x, hw), dim, 3, (2, 1), 1, bias=True, gain=1.0, name="conv")
                    hw = (hw[0] // 2, hw[1])
                    x = b.layernorm_decomposed(_to_tokens(b, y), 1e-5, name="norm")
            mask = local_mask(hw, local_window)
            for i in range(depth):
                with b.scope(f"blocks{stage}.{i}"):
                    x = _block(b, x, h, mask if block < n_local else None, mlp_ratio)
                block += 1
        x = b.layernorm_decomposed(x, 1e-6, name="norm")
        x = b.avgpool(_to_map(b, x, hw), (hw[0], hw[1] // out_length), (hw[0], hw[1] // out_length))
        x = b.hardswish(b.conv(x, out_channels, 1, gain=1.0, name="last_conv"), form="clip")
    x = b.transpose(b.squeeze(x, [2]), (0, 2, 1))
    with b.scope("head"):
        x = b.softmax(b.linear(x, num_classes, std=out_channels ** -0.5 * 2.0, name="fc"), axis=2)
    b.output(x, "probs")
    return b.build(doc=svtr.__doc__ or "")


def svtr_inputs(rng: np.random.Generator, *, batch: int, height: int, width: int,
                **_) -> dict[str, np.ndarray]:
    """A normalized text-line crop (values in [-1, 1], as PaddleOCR's ``(x / 255 - 0.5) / 0.5``)."""
    return {"x": rng.uniform(-1.0, 1.0, (batch, 3, height, width)).astype(np.float32)}
