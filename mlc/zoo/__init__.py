"""mlc's model zoo: real network architectures built offline with ``onnx.helper``.

Nothing is downloaded: every model is constructed node by node, the way PyTorch's ONNX
exporter would emit it (opset 17, IR 8), with random weights from a fixed seed.

>>> from mlc import zoo
>>> model = zoo.build("resnet18", image=64)          # any builder keyword
>>> feed = zoo.example_inputs("resnet18", image=64)  # {"input": float32 [1,3,64,64]}
>>> zoo.model_flops("resnet18")                      # ~3.64e9 (multiply-add = 2)

Models (see :data:`ZOO`): the classics ``resnet18``, ``mobilenetv2``, ``bert``, ``mlp``,
and the families deployed models come in, at small test sizes: ``yolo`` (YOLOv8 detector,
symbolic height and width), ``dbnet`` (OCR text detection on MobileNetV3), ``svtr`` (OCR
text recognition, transformer), ``crnn`` (conv + BiLSTM recogniser, symbolic width),
``vad`` (Silero-style voice activity) and ``quantized`` (a float zoo model dynamically
quantised to int8 by onnxruntime -- which it needs installed).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from .bert import bert, bert_inputs
from .crnn import crnn, crnn_inputs
from .dbnet import dbnet, dbnet_inputs
from .flops import count_flops
from .mlp import mlp, mlp_inputs
from .mobilenet import mobilenetv2, mobilenetv2_inputs
from .quantized import quantized, quantized_inputs
from .resnet import resnet18, resnet18_inputs
from .svtr import svtr, svtr_inputs
from .vad import vad, vad_inputs
from .yolo import yolo, yolo_inputs


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo.

    Attributes:
        name: the registry key.
        builder: ``builder(**kwargs) -> onnx.ModelProto``; every keyword has a default
            (the full-size model).
        make_inputs: ``make_inputs(rng, **builder_args) -> feed``; receives all of the
            builder's arguments, defaults filled in.
        description: one line saying which real architecture it is.
    """

    name: str
    builder: Callable[..., onnx.ModelProto]
    make_inputs: Callable[..., dict[str, np.ndarray]]
    description: str

    def build(self, **kwargs) -> onnx.ModelProto:
        return self.builder(**kwargs)

    def builder_args(self, **kwargs) -> dict:
        """The builder's full argument set for ``kwargs`` (defaults filled in); raises
        TypeError on a keyword the builder does not take."""
        bound = inspect.signature(self.builder).bind(**kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def example_inputs(self, seed: int = 0, **kwargs) -> dict[str, np.ndarray]:
        return self.make_inputs(np.random.default_rng(seed), **self.builder_args(**kwargs))

    @property
    def flops(self) -> int:
        """FLOPs of the default (full-size) model, multiply-add = 2."""
        return model_flops(self.name)


ZOO: dict[str, ZooEntry] = {
    e.name: e for e in (
        ZooEntry("resnet18", resnet18, resnet18_inputs,
                 "torchvision ResNet-18, 1x3x224x224 -> 1000 logits"),
        ZooEntry("mobilenetv2", mobilenetv2, mobilenetv2_inputs,
                 "torchvision MobileNetV2 (width 1.0), 1x3x224x224 -> 1000 logits"),
        ZooEntry("bert", bert, bert_inputs,
                 "BERT encoder, 4 layers, hidden 256, 4 heads, FFN 1024, seq 128 -> last hidden state"),
        ZooEntry("mlp", mlp, mlp_inputs,
                 "MLP 784-1024-1024-10 (Gemm + Relu), batch 1 -> 10 logits"),
        ZooEntry("yolo", yolo, yolo_inputs,
                 "YOLOv8n detector with in-graph anchors and DFL decoding, 1x3xHxW (symbolic; "
                 "128x128 nominal) -> 1x84xanchors"),
        ZooEntry("dbnet", dbnet, dbnet_inputs,
                 "DBNet text detection, MobileNetV3-small x0.5 + DBFPN + DBHead, 1x3x96x96 -> 1x1x96x96"),
        ZooEntry("svtr", svtr, svtr_inputs,
                 "SVTR text recognition (reduced SVTR-Tiny) + CTC head, 1x3x32x100 -> 1x25x37"),
        ZooEntry("crnn", crnn, crnn_inputs,
                 "CRNN text recognition, VGG convs + 2 BiLSTMs, 1x3x32xW (symbolic; 100 nominal) -> "
                 "(W/4+1)x1x37"),
        ZooEntry("vad", vad, vad_inputs,
                 "Silero-style VAD: reflect-padded STFT conv, conv encoder, 2-layer LSTM with state, "
                 "1x1x1536 -> 1x6 speech probabilities"),
        ZooEntry("quantized", quantized, quantized_inputs,
                 "a float zoo model (default SVTR) dynamically quantized to int8 by onnxruntime: "
                 "DynamicQuantizeLinear + ConvInteger / MatMulInteger"),
    )
}


def _entry(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(sorted(ZOO))}") from None


def build(name: str, **kwargs) -> onnx.ModelProto:
    """Build zoo model ``name``; ``kwargs`` go to its builder (sizes, ``seed``)."""
    return _entry(name).build(**kwargs)


def example_inputs(name: str, seed: int = 0, **kwargs) -> dict[str, np.ndarray]:
    """A feed for ``build(name, **kwargs)``: input name -> array of the right shape and
    dtype, drawn from a Generator seeded with ``seed``."""
    return _entry(name).example_inputs(seed, **kwargs)


@functools.lru_cache(maxsize=None)
def _flops(name: str, frozen_kwargs: tuple) -> int:
    kwargs = dict(frozen_kwargs)
    # symbolic input dims (yolo, crnn) are counted at the example inputs' sizes
    shapes = {k: v.shape for k, v in example_inputs(name, **kwargs).items()}
    return count_flops(build(name, **kwargs), shapes)


def model_flops(name: str, **kwargs) -> int:
    """FLOPs of one inference of ``build(name, **kwargs)`` (Conv/Gemm/MatMul only,
    multiply-add counted as 2; see :mod:`mlc.zoo.flops`). Cached per argument set."""
    args = _entry(name).builder_args(**kwargs)
    args.pop("seed", None)   # weights do not change the FLOP count
    return _flops(name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                     for k, v in args.items())))


__all__ = ["ZOO", "ZooEntry", "build", "example_inputs", "model_flops", "count_flops",
           "resnet18", "mobilenetv2", "bert", "mlp", "yolo", "dbnet", "svtr", "crnn", "vad", "quantized"]
