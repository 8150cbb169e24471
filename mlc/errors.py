"""The mlc exception hierarchy.

Every error a user can trigger is an :class:`MlcError`, so ``except mlc.MlcError`` catches
everything mlc raises on purpose.  The subclasses say which layer found the problem and
carry a message that names what is wrong (file, node, op, opset, shape, dtype).
"""
from __future__ import annotations


class MlcError(Exception):
    """Base class of every error mlc raises on purpose."""


class ModelLoadError(MlcError):
    """The model file or bytes could not be read, parsed or validated."""


class UnsupportedError(MlcError):
    """The model uses something mlc does not support (an op, an attribute, a dtype).

    ``items`` lists every unsupported (op, opset, node name, reason) found, so a user
    sees all of them at once rather than one per compile attempt.
    """

    def __init__(self, message: str, items: list[tuple[str, int, str, str]] | None = None):
        super().__init__(message)
        self.items = list(items or [])


class ConstantRequiredError(UnsupportedError):
    """An op needs the *value* of an input at compile time (Slice bounds, reduction axes,
    TopK's K, Pad's pads, Resize scales...) but that input is only known at run time.

    ``tensors`` names those inputs.  When they are computed from graph inputs,
    ``mlc.compile`` specialises on the values of those inputs at run time (as for
    :class:`DataDependentShapeError`); otherwise the error stands."""

    def __init__(self, message: str, items=None, tensors=()):
        super().__init__(message, items)
        self.tensors = tuple(tensors)


class ShapeError(MlcError):
    """A tensor shape is unknown, inconsistent or not what an op requires."""


class DataDependentShapeError(ShapeError):
    """A tensor's shape depends on the *values* of run-time inputs (e.g. a Reshape target
    fed as an input).  ``mlc.compile`` then specialises on those values at run time."""


class InputError(MlcError):
    """A run-time input is missing, unexpected, or has the wrong shape or dtype."""


class ScheduleError(MlcError):
    """A schedule step is illegal for the computation it is applied to."""


class CodegenError(MlcError):
    """LLVM rejected the generated code (a bug in mlc: please report it)."""


class TargetError(MlcError):
    """The target is unknown, or the machine lacks a feature the code was built for."""


class ArtifactError(MlcError):
    """A saved artifact is truncated, corrupt, or from an incompatible mlc version."""


class TuningError(MlcError):
    """The tuner could not run (bad log path, no tasks, broken executor)."""
