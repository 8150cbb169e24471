"""mlc: an ML graph compiler with an autotuner.

    import mlc
    mod = mlc.compile("model.onnx", target="x86")
    out = mod(x)
"""
from .errors import (ArtifactError, CodegenError, ConstantRequiredError, InputError, MlcError, ModelLoadError, ScheduleError,
                     ShapeError, TargetError, TuningError, UnsupportedError)
from .target import Target

__version__ = "0.1.0"


def compile(*args, **kwargs):
    """See :func:`mlc.api.compile`."""
    from .api import compile as _compile
    return _compile(*args, **kwargs)


def load(path, num_threads=None):
    """Load a saved ``.mlc`` model; see :func:`mlc.api.load`.  (Imports neither the ONNX
    frontend nor the operator library: loading stays fast.)"""
    from .runtime.artifact import load as _load
    return _load(path, num_threads=num_threads)


def inspect(model, stage="fused", kernel=None, input_shapes=None, target="x86"):
    """A readable view of one compilation stage; see :func:`mlc.inspect.inspect`."""
    from .api import inspect as _inspect
    return _inspect(model, stage=stage, kernel=kernel, input_shapes=input_shapes, target=target)


def inspect_dot(model, input_shapes=None, target="x86"):
    """The fused graph as Graphviz dot text; see :func:`mlc.inspect.inspect_dot`."""
    from . import api  # noqa: F401  (registers the operator library)
    from .inspect import inspect_dot as _dot
    return _dot(model, input_shapes=input_shapes, target=target)


def tune(*args, **kwargs):
    """Tune a model's kernels on this machine; see :func:`mlc.tuning.tuner.tune`."""
    from .api import tune as _tune
    return _tune(*args, **kwargs)


__all__ = ["compile", "load", "tune", "inspect", "inspect_dot", "Target", "MlcError", "ModelLoadError", "UnsupportedError", "ConstantRequiredError", "ShapeError",
           "InputError", "ScheduleError", "CodegenError", "TargetError", "ArtifactError", "TuningError"]
