"""mlc as an ONNX backend (``onnx.backend.base.Backend``).

    from mlc.backend import MlcBackend
    rep = MlcBackend.prepare(model, "CPU")
    outputs = rep.run([x, y])          # inputs in graph-input order, outputs in graph-output order

This is what ``onnx.backend.test.BackendTest`` drives (tests/test_conformance.py).  The
backend is a thin adapter over :func:`mlc.compile`:

* ``prepare`` compiles the model.  A model whose input shapes are symbolic, or whose
  shapes depend on input *values* (a Reshape target fed as an input), comes back from
  ``mlc.compile`` as a DynamicModel, which compiles one specialisation per input
  signature on first run: nothing more is needed here for laziness.
* ``run`` takes what the ONNX test runner feeds — numpy arrays, 0-d numpy scalars, Python
  lists and None — and returns a list of numpy arrays with onnxruntime's dtypes and
  shapes.  mlc runs tensors only: a Python list (an ONNX sequence) or None (an absent
  optional) is refused with an :class:`~mlc.errors.UnsupportedError`, as is a graph
  input or output whose type is a sequence, optional or map.
* bfloat16: mlc's CompiledModel holds bfloat16 as its raw 16 bits (uint16 arrays); the
  backend returns them as ``ml_dtypes.bfloat16``, the dtype onnx uses in numpy.

Only the "CPU" device is supported.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from .errors import InputError, UnsupportedError


def _type_kind(tp: onnx.TypeProto) -> str:
    kind = tp.WhichOneof("value")
    return kind[: -len("_type")] if kind else "untyped"


def _non_tensor_values(model: onnx.ModelProto) -> list[str]:
    """Graph inputs/outputs whose type is not a tensor (sequence, optional, map...)."""
    inits = {t.name for t in model.graph.initializer}
    found = []
    for what, values in (("input", model.graph.input), ("output", model.graph.output)):
        for vi in values:
            if vi.name in inits or not vi.HasField("type"):
                continue
            kind = _type_kind(vi.type)
            if kind != "tensor":
                found.append(f"graph {what} {vi.name!r} is a {kind}")
    return found


class MlcBackendRep(BackendRep):
    """A prepared (compiled) model: ``run(inputs)`` -> list of numpy arrays."""

    def __init__(self, model: onnx.ModelProto, compiled):
        self.model = model
        self.compiled = compiled           # mlc CompiledModel or DynamicModel
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in inits]
        self.output_names = [vi.name for vi in model.graph.output]
        self._bf16_outputs = {vi.name for vi in model.graph.output
                              if vi.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16}

    def run(self, inputs: Any, **kwargs) -> list:
        """Run on ``inputs``: a list/tuple in graph-input order, a dict by name, or one array."""
        if isinstance(inputs, dict):
            named = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray) or np.isscalar(inputs):
                inputs = [inputs]
            inputs = list(inputs)
            if len(inputs) != len(self.input_names):
                raise InputError(f"the model takes {len(self.input_names)} input(s) {self.input_names}, "
                                 f"got {len(inputs)}")
            named = dict(zip(self.input_names, inputs))
        feeds = {name: _as_tensor(name, value) for name, value in named.items()}
        results = self.compiled.run(feeds)
        return [self._output(name, results[name]) for name in self.output_names]

    def _output(self, name: str, value: np.ndarray) -> np.ndarray:
        if name in self._bf16_outputs and value.dtype == np.uint16:
            import ml_dtypes
            return value.view(ml_dtypes.bfloat16)
        return value


def _as_tensor(name: str, value) -> np.ndarray:
    """A fed value as a numpy array; sequences and absent optionals are unsupported."""
    if value is None:
        raise UnsupportedError(f"input {name!r} is None (an empty optional): mlc runs tensors only, "
                               "optional types are not supported",
                               [("<graph input>", 0, name, "optional value")])
    if isinstance(value, (list, tuple)):
        raise UnsupportedError(f"input {name!r} is a Python {type(value).__name__} (an ONNX sequence): "
                               "mlc runs tensors only, sequence types are not supported",
                               [("<graph input>", 0, name, "sequence value")])
    if isinstance(value, onnx.TensorProto):
        value = onnx.numpy_helper.to_array(value)
    arr = np.asarray(value)
    if arr.dtype == object:
        raise UnsupportedError(f"input {name!r} is a string tensor: mlc does not support string tensors",
                               [("<graph input>", 0, name, "string tensor")])
    return arr


class MlcBackend(Backend):
    """ONNX backend running models through mlc's compiler (CPU only)."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> bool:
        return cls.supports_device(device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type == DeviceType.CPU
        except Exception:
            return False

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> MlcBackendRep:
        """Compile ``model`` for the CPU.

        Keyword arguments that :func:`mlc.compile` takes (``num_threads``, ``opt_level``,
        ``input_shapes``, ``tuning_log``, ``target``) are passed on; others (the test
        runner's ``rtol``/``atol``) are ignored.  Raises UnsupportedError for a model that
        exchanges non-tensor values (sequences, optionals, maps) at its boundary.
        """
        if not cls.supports_device(device):
            raise UnsupportedError(f"mlc backend: device {device!r} is not supported (CPU only)")
        if isinstance(model, (bytes, str)):
            from .frontend import load_model
            model = load_model(model)
        non_tensor = _non_tensor_values(model)
        if non_tensor:
            raise UnsupportedError("mlc runs tensors only; sequence, optional and map types are not "
                                   f"supported: {'; '.join(non_tensor)}",
                                   [("<graph>", 0, v, "non-tensor type") for v in non_tensor])
        from .api import compile as mlc_compile
        options = {k: kwargs[k] for k in ("target", "num_threads", "opt_level", "input_shapes", "tuning_log")
                   if k in kwargs}
        return MlcBackendRep(model, mlc_compile(model, **options))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs) -> list:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence | None = None, **kwargs):
        raise UnsupportedError("mlc backend: run_node is not supported; wrap the node in a model "
                               "and use prepare()")


# the conventional module-level names of an ONNX backend
prepare = MlcBackend.prepare
run_model = MlcBackend.run_model
supports_device = MlcBackend.supports_device
