"""Dynamically quantised int8 models: a float zoo model passed through onnxruntime's
``quantize_dynamic``, the usual way such models are made. Every Conv and MatMul with
constant weights becomes ``DynamicQuantizeLinear`` of the activation (uint8, scale and
zero point computed from its range at run time), ``ConvInteger`` / ``MatMulInteger``
against int8 weights quantised offline, ``Cast`` to float and a ``Mul`` by the product
of the two scales (then the bias ``Add``); MatMuls between two activations stay float.

onnxruntime is a test-only dependency of mlc: it is imported inside :func:`quantized`,
so building these models needs it installed (``pip install onnxruntime``); nothing else
in :mod:`mlc.zoo` does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile

import numpy as np
import onnx

#: Float zoo models ``quantized`` accepts as ``base`` (their default sizes are used).
BASES = ("svtr", "crnn", "dbnet", "yolo", "vad", "mobilenetv2", "resnet18", "bert", "mlp")


@contextlib.contextmanager
def _quiet():
    """quantize_dynamic logs a root-logger warning suggesting pre-processing; hide it."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def quantized(base: str = "svtr", per_channel: bool = False, reduce_range: bool = False,
              seed: int = 0) -> onnx.ModelProto:
    """Zoo model ``base`` (at its default size, weights from ``seed``) dynamically
    quantised by ``onnxruntime.quantization.quantize_dynamic`` (int8 weights,
    ``op_types_to_quantize=["Conv", "MatMul"]``; per output channel if ``per_channel``;
    7-bit weights if ``reduce_range``). Inputs and outputs are those of the float model.

    Default: the SVTR recogniser -- a conv stem (ConvInteger) and transformer blocks whose
    projections become MatMulInteger while attention's activation-by-activation MatMuls
    stay float. Needs onnxruntime (a test-only dependency, imported here).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic   # test-only dependency

    from . import build   # the registry imports this module

    if base not in BASES:
        raise ValueError(f"unknown base model {base!r}; one of {', '.join(BASES)}")
    float_model = build(base, seed=seed)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(float_model, src)
        quantize_dynamic(src, dst, op_types_to_quantize=["Conv", "MatMul"], per_channel=per_channel,
                         reduce_range=reduce_range, weight_type=QuantType.QInt8)
        model = onnx.load(dst)
    model.graph.name = f"{base}_dynamic_int8"
    model.doc_string = (quantized.__doc__ or "") + "\n" + float_model.doc_string
    return model


def quantized_inputs(rng: np.random.Generator, *, base: str, **_) -> dict[str, np.ndarray]:
    """The float model's example inputs."""
    from . import ZOO
    return ZOO[base].make_inputs(rng, **ZOO[base].builder_args())
