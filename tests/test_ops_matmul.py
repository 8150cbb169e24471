"""MatMul / Gemm numerics the ONNX node tests found (reference: onnxruntime)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_matches_ort, single_op_model


@pytest.mark.parametrize("sa,sb", [((3, 256), (256, 5)), ((2, 4, 17, 64), (2, 4, 64, 9)), ((300,), (300, 7))])
def test_matmul_float16_accumulates_in_float32(sa, sb, rng):
    """float16 products are summed in float32 and rounded once: bit-identical to
    onnxruntime (rounding each partial sum to float16 drifts by several ulps)."""
    a, b = rng.standard_normal(sa).astype(np.float16), rng.standard_normal(sb).astype(np.float16)
    model = single_op_model("MatMul", {"a": a, "b": b}, {"y": (np.float16, None)}, opset=13)
    assert_matches_ort(model, {"a": a, "b": b}, rtol=0, atol=0)


def test_gemm_float16_accumulates_in_float32(rng):
    a, b = rng.standard_normal((5, 200)).astype(np.float16), rng.standard_normal((7, 200)).astype(np.float16)
    c = rng.standard_normal(7).astype(np.float16)
    model = single_op_model("Gemm", {"a": a, "b": b, "c": c}, {"y": (np.float16, None)},
                            {"transB": 1, "alpha": 0.5, "beta": 2.0}, opset=13)
    assert_matches_ort(model, {"a": a, "b": b, "c": c}, rtol=0, atol=0)
