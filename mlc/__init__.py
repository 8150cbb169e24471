"""mlc: an ML graph compiler with an autotuner.

    import mlc
    mod = mlc.compile("model.onnx", target="x86")
    out = mod(x)
"""
from .errors import (ArtifactError, CodegenError, InputError, MlcError, ModelLoadError, ScheduleError,
                     ShapeError, TargetError, TuningError, UnsupportedError)
from .target import Target

__version__ = "0.1.0"


def compile(*args, **kwargs):
    """See :func:`mlc.api.compile`."""
    from .api import compile as _compile
    return _compile(*args, **kwargs)


__all__ = ["compile", "Target", "MlcError", "ModelLoadError", "UnsupportedError", "ShapeError",
           "InputError", "ScheduleError", "CodegenError", "TargetError", "ArtifactError", "TuningError"]
