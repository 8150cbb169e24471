"""CompiledModel: a compiled network you call with numpy arrays.

One call = one native call of ``mlc_run`` over preallocated memory: input arrays are
passed by pointer, output arrays are allocated and filled in place, every intermediate
lives in the arena planned at compile time.
"""
from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

from ..errors import InputError

_ALIGN = 64
# mlc.codegen.module.ENTRY, spelled out: importing the code generator would add ~0.1 s to
# every mlc.load (tests/test_artifact.py checks the two agree)
ENTRY = "mlc_run"


def _aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % _ALIGN
    return raw[start:start + nbytes]


def _load_code(executable):
    """The executable's machine code in this process: the prelinked shared object when
    there is one (no LLVM needed), else LLVM's object through MCJIT."""
    so = getattr(executable, "shared_object", None)
    if so:
        from .native_code import SharedObjectCode
        return SharedObjectCode(so)
    from ..codegen.jit import LoadedCode
    return LoadedCode(executable.object_code, executable.target)


def default_num_threads() -> int:
    env = os.environ.get("MLC_NUM_THREADS")
    if env:
        try:
            n = int(env)
            if n >= 1:
                return n
        except ValueError:
            pass
        raise InputError(f"MLC_NUM_THREADS must be a positive integer, got {env!r}")
    return os.cpu_count() or 1


def _np_dtype(dtype: str):
    if dtype == "bfloat16":
        return np.dtype(np.uint16)
    return np.dtype(dtype)


class CompiledModel:
    """A model compiled to native code.

    ``mod.run({"x": x})`` returns a dict of outputs in graph order; ``mod(x)`` takes the
    inputs positionally and returns the output (or a tuple of outputs).
    ``mod.inputs`` / ``mod.outputs`` describe names, shapes and dtypes.
    """

    def __init__(self, executable, num_threads: int | None = None):
        self._exe = executable
        self.inputs = list(executable.inputs)
        # every output the native code writes; the row counts of bounded outputs are used
        # to trim those and are not shown
        self._all_outputs = list(executable.outputs)
        self._row_counts = dict(getattr(executable, "row_counts", {}) or {})
        hidden = set(self._row_counts.values())
        self._visible = [j for j in range(len(self._all_outputs)) if j not in hidden]
        self.outputs = [self._all_outputs[j] for j in self._visible]
        self.target = executable.target
        self._code = _load_code(executable)
        vp = ctypes.c_void_p
        self._run = self._code.function(ENTRY, None, vp, vp, vp, vp)
        self._set_threads = self._code.function("mlc_set_num_threads", None, ctypes.c_int32)
        self._shutdown = self._code.function("mlc_shutdown", None)
        self._arena = _aligned_empty(max(executable.arena_bytes, _ALIGN))
        self._weights = executable.weights
        # addresses passed on every run (both buffers live as long as the model)
        self._arena_ptr, self._weights_ptr = self._arena.ctypes.data, self._weights.ctypes.data
        self._in_ptrs = (vp * max(1, len(self.inputs)))()
        self._out_ptrs = (vp * max(1, len(self._all_outputs)))()
        self._in_dtypes = [_np_dtype(t.dtype) for t in self.inputs]
        self._out_dtypes = [_np_dtype(t.dtype) for t in self._all_outputs]
        self._in_names = [t.name for t in self.inputs]
        self._lock = threading.Lock()
        self._copy = dict(executable.copy_outputs)
        self.num_threads = 1
        self.set_num_threads(num_threads if num_threads is not None else default_num_threads())

    # ------------------------------------------------------------------------------
    def set_num_threads(self, n: int):
        if int(n) < 1:
            raise InputError(f"num_threads must be >= 1, got {n}")
        self.num_threads = int(n)
        self._set_threads(self.num_threads)

    @property
    def input_names(self) -> list:
        return list(self._in_names)

    @property
    def output_names(self) -> list:
        return [t.name for t in self.outputs]

    @property
    def kernels(self) -> list:
        return list(self._exe.kernels)

    @property
    def stats(self) -> dict:
        return dict(self._exe.stats)

    # ------------------------------------------------------------------------------
    def _check_input(self, k: int, value) -> np.ndarray:
        info = self.inputs[k]
        want = self._in_dtypes[k]
        if not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value)
            except Exception:
                raise InputError(f"input {info.name!r}: expected a numpy array of {info.dtype}"
                                 f"{list(info.shape)}, got {type(value).__name__}") from None
        if value.dtype != want and info.dtype == "bfloat16" and value.dtype.name == "bfloat16":
            value = value.view(want)     # ml_dtypes.bfloat16 (as onnx gives it) -> its raw 16 bits
        if value.dtype != want:
            # as onnxruntime does: no silent conversion, the caller decides on precision
            raise InputError(f"input {info.name!r} has dtype {value.dtype}, the model expects {info.dtype}")
        if tuple(value.shape) != tuple(info.shape):
            raise InputError(f"input {info.name!r} has shape {list(value.shape)}, the model was compiled "
                             f"for {list(info.shape)}")
        if not value.flags.c_contiguous:
            value = np.ascontiguousarray(value)
        return value

    def run(self, feeds: dict) -> dict:
        """Run on ``feeds`` (input name -> array); returns output name -> array."""
        if not isinstance(feeds, dict):
            raise InputError(f"run() takes a dict of input name -> array, got {type(feeds).__name__}")
        unknown = [k for k in feeds if k not in self._in_names]
        missing = [k for k in self._in_names if k not in feeds]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if unknown:
                parts.append(f"unknown input(s) {unknown}")
            raise InputError(f"{'; '.join(parts)}; the model's inputs are {self._in_names}")
        arrays = [self._check_input(k, feeds[name]) for k, name in enumerate(self._in_names)]
        outs = self._execute(arrays)
        return {t.name: o for t, o in zip(self.outputs, outs)}

    def __call__(self, *args):
        if len(args) != len(self.inputs):
            raise InputError(f"the model takes {len(self.inputs)} input(s) {self._in_names}, got {len(args)}")
        arrays = [self._check_input(k, a) for k, a in enumerate(args)]
        outs = self._execute(arrays)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _execute(self, arrays: list) -> list:
        outs = [np.empty(t.shape, dtype=dt) for t, dt in zip(self._all_outputs, self._out_dtypes)]
        with self._lock:
            for k, a in enumerate(arrays):
                self._in_ptrs[k] = a.ctypes.data
            for k, o in enumerate(outs):
                self._out_ptrs[k] = o.ctypes.data
            self._run(self._in_ptrs, self._out_ptrs, self._arena_ptr, self._weights_ptr)
            for j, (space, where) in self._copy.items():
                outs[j][...] = self._view(space, where, j, arrays, outs)
        for j, c in self._row_counts.items():        # bounded outputs: their actual rows
            rows = int(outs[c])
            outs[j] = outs[j][:max(0, min(rows, outs[j].shape[0]))]
        return [outs[j] for j in self._visible]

    def _view(self, space: str, where: int, j: int, arrays: list, outs: list) -> np.ndarray:
        info = self._all_outputs[j]
        dt = self._out_dtypes[j]
        if space == "input":
            return arrays[where].reshape(info.shape)
        if space == "output":
            return outs[where].reshape(info.shape)
        base = self._arena if space == "arena" else self._weights
        n = int(np.prod(info.shape, dtype=np.int64)) * dt.itemsize
        return base[where:where + n].view(dt).reshape(info.shape)

    # ------------------------------------------------------------------------------
    # deployment: mlc.runtime.artifact, .library and .profile do the work
    @property
    def executable(self):
        """The compiled code, weights and metadata (an ``Executable``) this model runs."""
        return self._exe

    def save(self, path) -> str:
        """Write the model to one ``.mlc`` file; ``mlc.load(path)`` reads it back."""
        from .artifact import save
        return save(self._exe, path)

    def export_library(self, path, header=None, prefix: str = "mlc_model") -> str:
        """Link a C-callable shared library (and write its C header, default ``path`` with
        ``.h``); see :mod:`mlc.runtime.library`.  Returns the library's path."""
        from .library import export_library
        return export_library(self._exe, path, header=header, prefix=prefix)

    def profile(self, feeds=None, repeat: int = 20, warmup: int = 3):
        """Time every kernel (one native call per run); see :mod:`mlc.runtime.profile`."""
        from .profile import profile
        return profile(self, feeds, repeat=repeat, warmup=warmup)

    # ------------------------------------------------------------------------------
    def close(self):
        """Stop the model's worker threads and release its code (also done on deletion)."""
        code = getattr(self, "_code", None)
        if code is not None:
            try:
                self._shutdown()
            finally:
                code.close()
                self._code = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        ins = ", ".join(f"{t.name}: {t.dtype}{list(t.shape)}" for t in self.inputs)
        outs = ", ".join(f"{t.name}: {t.dtype}{list(t.shape)}" for t in self.outputs)
        return f"<CompiledModel ({ins}) -> ({outs}), {len(self._exe.kernels)} kernels, {self.num_threads} threads>"
