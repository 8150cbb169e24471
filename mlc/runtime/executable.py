"""What a compile produces and a runtime consumes: the ``Executable`` and its records.

These plain dataclasses live in the runtime layer (``mlc.compiler.pipeline`` builds
them and re-exports them) so that loading a saved model imports neither the compiler nor
the code generator: ``mlc.load`` stays a file read plus an MCJIT link.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..target import Target


@dataclass
class TensorInfo:
    name: str
    shape: tuple
    dtype: str

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class KernelRecord:
    """What was compiled for one kernel: for profiling, inspect and tuning reports."""

    name: str
    symbol: str
    key: str
    ops: list
    nodes: list
    flops: int
    schedule: list
    tuned: bool
    out_shapes: list


@dataclass
class Executable:
    object_code: bytes
    weights: np.ndarray              # uint8, 64-byte aligned blob
    arena_bytes: int
    inputs: list                     # TensorInfo
    outputs: list                    # TensorInfo
    copy_outputs: list               # (output index, ("input"|"weights"|"arena"|"output", offset/index))
    kernels: list                    # KernelRecord in execution order
    target: Target
    stats: dict = field(default_factory=dict)
    shared_object: bytes | None = None   # the object linked into a .so (saved artifacts only)
    # output index -> index of the int64 scalar output holding its actual row count (the
    # bounded outputs of data-dependent ops); those count outputs are hidden from Python
    row_counts: dict = field(default_factory=dict)
