"""The AVX2 code path: compile for a CPU without AVX-512 and run it here.

Vector width comes from the target's features (8 float lanes with AVX2, 16 with
AVX-512); these tests compile ops and models for "x86-avx2" and check both the results
(against onnxruntime) and that the machine code uses no 512-bit registers.
"""
from __future__ import annotations

import numpy as np
import pytest

import mlc
from mlc import zoo

from conftest import assert_matches_ort, ort_run, single_op_model

AVX2 = "x86-avx2"


def test_avx2_target_has_8_lanes_and_no_avx512():
    t = mlc.Target.from_string(AVX2)
    assert t.lanes_f32 == 8 and not t.has("avx512f") and t.has("fma")


@pytest.mark.parametrize("name,kw", [("mlp", {}), ("resnet18", {"image": 64}), ("mobilenetv2", {"image": 64}),
                                     ("bert", {"layers": 1, "seq": 32})])
def test_zoo_models_on_avx2(name, kw):
    model = zoo.build(name, **kw)
    feeds = zoo.example_inputs(name, **kw)
    mod = mlc.compile(model, target=AVX2, num_threads=2)
    for (oname, got), ref in zip(mod.run(feeds).items(), ort_run(model, feeds)):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4, err_msg=oname)


@pytest.mark.parametrize("op,shape,attrs", [
    ("Softmax", (3, 37), {"axis": -1}),
    ("Sigmoid", (5, 23), {}),
    ("Erf", (7, 19), {}),
    ("Tanh", (2, 45), {}),
    ("ReduceMean", (4, 9, 13), {"axes": [2], "keepdims": 1}),
])
def test_ops_on_avx2(rng, op, shape, attrs):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    opset = 17
    model = single_op_model(op, {"x": x}, {"y": ("float32", None)}, attrs, opset=opset)
    assert_matches_ort(model, {"x": x}, target=AVX2)


def test_avx2_machine_code_uses_no_zmm_registers():
    asm = mlc.inspect(zoo.build("mlp"), stage="asm", target=AVX2)
    assert "ymm" in asm
    assert "zmm" not in asm
