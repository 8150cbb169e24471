"""The public entry points: compile, load.

This is the only module that imports ``mlc.kernels``, which registers every operator into
the core's registry; the layers below know no operator by name.
"""
from __future__ import annotations

import os
from typing import Mapping

from . import kernels as _kernels  # noqa: F401  (registers the operator library)
from .compiler.pipeline import CompileOptions, compile_graph
from .frontend import import_model
from .graph.passes import default_passes
from .runtime.compiled_model import CompiledModel
from .target import Target


def compile(model, target: "str | Target" = "x86", input_shapes: Mapping[str, tuple] | None = None,
            num_threads: int | None = None, opt_level: int = 3) -> CompiledModel:
    """Compile an ONNX model to native code for ``target``.

    ``model``: a path, the file's bytes, or an ``onnx.ModelProto``.
    ``input_shapes``: values for symbolic input dimensions, e.g. ``{"x": (1, 3, 224, 224)}``.
    ``num_threads``: worker threads at run time (default: all cores, or $MLC_NUM_THREADS).
    """
    tgt = Target.from_string(target)
    graph = import_model(model, input_shapes=dict(input_shapes) if input_shapes else None)
    exe = compile_graph(graph, CompileOptions(target=tgt, opt_level=opt_level, passes=default_passes))
    return CompiledModel(exe, num_threads=num_threads)
