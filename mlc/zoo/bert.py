"""A BERT encoder (Devlin et al., 2018) as Hugging Face ``BertModel`` builds it (post-LN,
erf-GELU, additive attention mask), written the way ``torch.onnx.export`` emits it at
opset 17: Linear as MatMul + Add, attention heads by Reshape/Transpose, ``LayerNormalization``
ops, GELU as Div/Erf/Add/Mul/Mul. The pooler is left out: the output is the last hidden state."""

from __future__ import annotations

import math

import numpy as np
import onnx

from ._builder import GraphBuilder

#: BERT's WordPiece vocabulary size (bert-base-uncased).
BERT_VOCAB = 30522
#: BERT's position-embedding table size.
BERT_MAX_POSITIONS = 512


def _self_attention(b: GraphBuilder, x: str, mask_bias: str, heads: int) -> str:
    """Multi-head self-attention (``BertSelfAttention`` + ``BertSelfOutput``):
    Q/K/V projections, split into heads, softmax(Q K^T / sqrt(d) + mask) V, merge heads,
    output projection, residual Add, LayerNorm."""
    batch, seq, hidden = b.shape(x)
    d = hidden // heads
    with b.scope("attention"):
        with b.scope("self"):
            def heads_of(name: str, perm: tuple[int, ...]) -> str:
                t = b.reshape(b.linear(x, hidden, name=name), (batch, seq, heads, d))
                return b.transpose(t, perm)
            q = heads_of("query", (0, 2, 1, 3))        # [B, H, S, d]
            k = heads_of("key", (0, 2, 3, 1))          # [B, H, d, S]
            v = heads_of("value", (0, 2, 1, 3))        # [B, H, S, d]
            scores = b.div(b.matmul(q, k), math.sqrt(d))
            probs = b.softmax(b.add(scores, mask_bias), axis=-1)
            ctx = b.transpose(b.matmul(probs, v), (0, 2, 1, 3))
            ctx = b.reshape(ctx, (batch, seq, hidden))
        with b.scope("output"):
            out = b.linear(ctx, hidden, name="dense")
            return b.layernorm(b.add(out, x), name="LayerNorm")


def _encoder_layer(b: GraphBuilder, x: str, mask_bias: str, heads: int, ffn: int) -> str:
    """``BertLayer``: attention block, then FFN (Linear, erf-GELU, Linear), residual Add,
    LayerNorm."""
    hidden = b.shape(x)[-1]
    x = _self_attention(b, x, mask_bias, heads)
    with b.scope("intermediate"):
        h = b.gelu(b.linear(x, ffn, name="dense"), name="intermediate_act_fn")
    with b.scope("output"):
        out = b.linear(h, hidden, name="dense")
        return b.layernorm(b.add(out, x), name="LayerNorm")


def bert(layers: int = 4, hidden: int = 256, heads: int = 4, ffn: int = 1024,
         seq: int = 128, batch: int = 1, vocab: int = BERT_VOCAB,
         seed: int = 0) -> onnx.ModelProto:
    """BERT encoder (default: 4 layers, hidden 256, 4 heads, FFN 1024 -- the "BERT-mini"
    shape -- at sequence 128, batch 1).

    Inputs: ``input_ids`` int64 [batch, seq] (values in [0, vocab)) and
    ``attention_mask`` float32 [batch, seq] (1 = attend, 0 = padding).
    Output: ``last_hidden_state`` float32 [batch, seq, hidden].

    Embeddings: Gather from the word table + Gather of constant position ids from the
    position table + Gather of constant zero token-type ids, LayerNorm (eps 1e-12). The
    mask becomes the additive bias ``(1 - mask[:, None, None, :]) * -10000`` (Unsqueeze,
    Sub, Mul) shared by all layers. Weights ~ N(0, 0.02) as in BERT's initializer.
    """
    if hidden % heads:
        raise ValueError(f"hidden={hidden} is not divisible by heads={heads}")
    b = GraphBuilder("bert", seed=seed)
    input_ids = b.input("input_ids", (batch, seq), np.int64)
    mask = b.input("attention_mask", (batch, seq), np.float32)

    with b.scope("embeddings"):
        words = b.param("word_embeddings.weight", b.normal((vocab, hidden), 0.02))
        positions = b.param("position_embeddings.weight",
                            b.normal((max(BERT_MAX_POSITIONS, seq), hidden), 0.02))
        types = b.param("token_type_embeddings.weight", b.normal((2, hidden), 0.02))
        position_ids = b.param("position_ids", np.arange(seq, dtype=np.int64)[None, :])
        token_type_ids = b.param("token_type_ids", np.zeros((1, seq), dtype=np.int64))
        x = b.add(b.gather(words, input_ids, name="word_embeddings"),
                  b.gather(types, token_type_ids, name="token_type_embeddings"))
        x = b.add(x, b.gather(positions, position_ids, name="position_embeddings"))
        x = b.layernorm(x, name="LayerNorm")

    # get_extended_attention_mask: [B, S] -> [B, 1, 1, S], 0 where attended, -10000 at padding
    mask_bias = b.mul(b.sub(1.0, b.unsqueeze(mask, (1, 2))), -10000.0)

    for i in range(layers):
        with b.scope(f"encoder.layer.{i}"):
            x = _encoder_layer(b, x, mask_bias, heads, ffn)
    b.output(x, "last_hidden_state")
    return b.build(doc=bert.__doc__ or "")


def bert_inputs(rng: np.random.Generator, *, batch: int, seq: int, vocab: int,
                **_) -> dict[str, np.ndarray]:
    """Random token ids; the mask attends to the first 7/8 of the sequence and marks the
    rest as padding (so the masking path is exercised)."""
    mask = np.ones((batch, seq), dtype=np.float32)
    mask[:, seq - seq // 8:] = 0.0
    return {"input_ids": rng.integers(0, vocab, (batch, seq), dtype=np.int64),
            "attention_mask": mask}
