"""The public entry points: compile, load, inspect.

This is the only module that imports ``mlc.kernels``, which registers every operator into
the core's registry; the layers below know no operator by name.
"""
from __future__ import annotations

import os
from typing import Mapping

from . import kernels as _kernels  # noqa: F401  (registers the operator library)
from .compiler.pipeline import CompileOptions, compile_graph
from .frontend import import_model, load_model
from .frontend.signature import input_signature
from .runtime.dynamic import FREEZE_MAX_ELEMENTS, DynamicModel
from .graph.passes import default_passes
from .runtime.compiled_model import CompiledModel
from .errors import ConstantRequiredError, DataDependentShapeError
from .target import Target


def compile(model, target: "str | Target" = "x86", input_shapes: Mapping[str, tuple] | None = None,
            num_threads: int | None = None, opt_level: int = 3, tuning_log: str | list | None = None,
            verbose: bool = False, _constant_inputs: Mapping | None = None) -> "CompiledModel | DynamicModel":
    """Compile an ONNX model to native code for ``target``.

    ``model``: a path, the file's bytes, or an ``onnx.ModelProto``.
    ``input_shapes``: values for symbolic input dimensions, e.g. ``{"x": (1, 3, 224, 224)}``.
    ``num_threads``: worker threads at run time (default: all cores, or $MLC_NUM_THREADS).
    ``tuning_log``: a tuning log (or list of logs) to apply; by default the logs shipped in
    ``tuning_logs/`` and the user's cache (``~/.cache/mlc/tuning``) are applied, and
    ``MLC_TUNING_LOGS=none`` turns them off.  The best record per kernel wins; kernels
    without one keep their default schedule.  ``mod.stats["tuning"]`` says how many
    kernels were tuned and how many records were set aside (another CPU, another version).

    A model with symbolic input dims not bound by ``input_shapes`` compiles to a
    :class:`~mlc.runtime.dynamic.DynamicModel`: it specialises for the shapes it is
    called with and caches each specialisation.
    """
    tgt = Target.from_string(target)
    proto = load_model(model)
    signature = input_signature(proto)
    bound = dict(input_shapes or {})
    dynamic = any(s.dims is None or (None in s.dims and s.name not in bound) for s in signature)

    def compile_fn(shapes, consts):
        return compile(proto, target=tgt, input_shapes=shapes, num_threads=num_threads, opt_level=opt_level,
                       tuning_log=tuning_log, _constant_inputs=consts)

    def value_inputs(exc) -> list:
        """The graph inputs whose values an error says are needed at compile time."""
        return _upstream_inputs(proto, getattr(exc, "tensors", ()))

    if dynamic and _constant_inputs is None:
        # shapes known only at run time: one specialisation per distinct input signature
        return DynamicModel(signature, compile_fn, num_threads=num_threads, value_inputs=value_inputs)
    try:
        graph = import_model(proto, input_shapes=bound or None, constant_inputs=_constant_inputs or None,
                             expand_control_flow=True)
    except DataDependentShapeError:
        if _constant_inputs is not None:
            raise
        # shapes that depend on input values: specialise on those values at run time
        return DynamicModel(signature, compile_fn, num_threads=num_threads, value_inputs=value_inputs)
    best = _tuning_records(tuning_log, tgt)
    schedules = {key: best.schedule_for(key) for key in best.best}
    try:
        exe = compile_graph(graph, CompileOptions(target=tgt, opt_level=opt_level, passes=default_passes,
                                                  schedules=schedules))
    except ConstantRequiredError as exc:
        # an op needs the value of a run-time input (Slice bounds, axes, K, pads, scales fed
        # as inputs): when it comes from graph inputs, specialise on their values at run time
        sizes = {s.name: _static_size(s, bound) for s in signature}
        frozen = [n for n in value_inputs(exc) if sizes.get(n) is not None and sizes[n] <= FREEZE_MAX_ELEMENTS]
        if _constant_inputs is not None or not frozen:
            raise
        return DynamicModel(signature, compile_fn, num_threads=num_threads, value_inputs=value_inputs,
                            frozen=frozen)
    tuned = exe.stats.get("tuned_kernels", 0)
    exe.stats["tuning"] = {"kernels": exe.stats.get("kernels", 0), "tuned": tuned,
                           "missing": exe.stats.get("kernels", 0) - tuned,
                           "records_other_target": best.other_target,
                           "records_incompatible": best.incompatible, "logs": best.files}
    if verbose or os.environ.get("MLC_VERBOSE"):
        print(f"mlc: {tuning_summary(exe.stats)}")
    return CompiledModel(exe, num_threads=num_threads)


def tuning_summary(stats: dict) -> str:
    """One line on the tuning records a compile applied (from ``mod.stats``): how many
    kernels run tuned schedules, and how many records were set aside and why."""
    t = stats.get("tuning")
    if not t:
        return "no tuning records consulted"
    msg = f"{t['tuned']} of {t['kernels']} kernels use tuned schedules"
    if t["records_other_target"] or t["records_incompatible"]:
        msg += (f"; ignored {t['records_other_target']} record(s) made on another CPU and "
                f"{t['records_incompatible']} from an incompatible mlc version")
    return msg


def _static_size(spec, bound) -> int | None:
    dims = bound.get(spec.name, spec.dims)
    if dims is None or any(d is None for d in dims):
        return None
    size = 1
    for d in dims:
        size *= int(d)
    return size


def _upstream_inputs(proto, tensors) -> list:
    """The run-time graph inputs that ``tensors`` are computed from, in graph-input order."""
    graph = proto.graph
    inits = {t.name for t in graph.initializer}
    inputs = [vi.name for vi in graph.input if vi.name not in inits]
    producer = {o: node for node in graph.node for o in node.output if o}
    seen, stack = set(), [t for t in tensors if t]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is not None:
            stack.extend(i for i in node.input if i)
    return [n for n in inputs if n in seen]


def _tuning_records(tuning_log, target: Target):
    from .tuning.records import default_log_paths, load_best
    if tuning_log is None:
        paths = default_log_paths()
    elif isinstance(tuning_log, (list, tuple)):
        paths = [os.fspath(p) for p in tuning_log]
    else:
        paths = [os.fspath(tuning_log)]
    return load_best(paths, target.key)


def tune(model, target: "str | Target" = "x86", trials: int = 2000, log: str | None = None, **kwargs):
    """Tune the model's kernels on this machine; see :func:`mlc.tuning.tuner.tune`.

    Records go to ``log`` (default: the user's cache, which later compiles apply)."""
    from .tuning.tuner import tune as _tune
    return _tune(model, target=target, trials=trials, log=log, **kwargs)


def load(path, num_threads: int | None = None) -> CompiledModel:
    """Load a model saved with ``CompiledModel.save`` (see :mod:`mlc.runtime.artifact`).

    Runs neither the ONNX frontend nor LLVM's optimiser: MCJIT links the stored object
    code.  Raises ArtifactError (not an mlc file, truncated, corrupted, incompatible
    version) or TargetError (this CPU lacks a feature the code was built for).
    """
    from .runtime.artifact import load as _load
    return _load(path, num_threads=num_threads)


def inspect(model, stage: str = "fused", kernel: str | None = None,
            input_shapes: Mapping[str, tuple] | None = None, target: "str | Target" = "x86") -> str:
    """A readable view of one compilation stage; see :func:`mlc.inspect.inspect`."""
    from .inspect import inspect as _inspect
    return _inspect(model, stage=stage, kernel=kernel, input_shapes=input_shapes, target=target)
