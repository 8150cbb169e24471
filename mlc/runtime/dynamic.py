"""Models with dynamic input shapes: compiled once per distinct input signature.

``mlc.compile`` returns a :class:`DynamicModel` when some input dimension is symbolic and
not bound by ``input_shapes``.  The first call with a new combination of input shapes
compiles a specialisation for exactly those shapes (as ``input_shapes=`` would) and caches
it; later calls with the same shapes go straight to native code.

Some models' *shapes* depend on input *values* (a Reshape target, Slice bounds or Resize
sizes fed as inputs), and some ops need an input's *value* to compile at all (Slice
bounds, reduction axes, TopK's K, Pad's pads, Resize scales fed as inputs: a
ConstantRequiredError names them).  When a specialisation cannot be compiled for that
reason, small integer inputs — and small inputs of any dtype that the error traces back
to — are frozen as constants and their values join the cache key.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ..errors import InputError, MlcError, ShapeError, UnsupportedError
from .compiled_model import CompiledModel, default_num_threads

FREEZE_MAX_ELEMENTS = 64


class DynamicModel:
    """Specialises and caches per input shapes.  Same calling API as CompiledModel."""

    def __init__(self, signature: list, compile_fn, num_threads: int | None = None, max_cached: int = 16,
                 value_inputs=None, frozen=()):
        self.signature = list(signature)
        # (error) -> input names whose values it says are needed at compile time
        self._value_inputs = value_inputs
        self._compile = compile_fn           # (input_shapes, constant_inputs) -> CompiledModel
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.max_cached = max_cached
        self.num_threads = num_threads if num_threads is not None else default_num_threads()
        self._frozen: list = list(frozen)    # input names specialised by value
        self._outputs = None
        self.specializations_compiled = 0

    # -- signature ---------------------------------------------------------------------
    @property
    def input_names(self) -> list:
        return [s.name for s in self.signature]

    @property
    def inputs(self) -> list:
        from ..compiler.pipeline import TensorInfo
        return [TensorInfo(s.name, tuple(s.dims) if s.dims is not None else None, s.dtype) for s in self.signature]

    @property
    def outputs(self) -> list:
        if self._outputs is None:
            raise MlcError("the outputs of a dynamic model are known once it has run on some input")
        return self._outputs

    @property
    def output_names(self) -> list:
        return [t.name for t in self.outputs]

    def _check(self, name: str, value) -> np.ndarray:
        spec = next(s for s in self.signature if s.name == name)
        if not isinstance(value, np.ndarray):
            value = np.asarray(value)
        if spec.dtype != "unknown" and value.dtype != np.dtype(spec.dtype):
            raise InputError(f"input {name!r} has dtype {value.dtype}, the model expects {spec.dtype}")
        if spec.dims is not None:
            if value.ndim != len(spec.dims):
                raise InputError(f"input {name!r} has rank {value.ndim} (shape {list(value.shape)}), "
                                 f"the model expects rank {len(spec.dims)}")
            for i, (d, n) in enumerate(zip(spec.dims, value.shape)):
                if d is not None and d != n:
                    raise InputError(f"input {name!r} has size {n} in dimension {i}, the model fixes it to {d}")
        return value

    # -- specialisation ----------------------------------------------------------------------
    def _key(self, feeds: dict) -> tuple:
        shapes = tuple(tuple(feeds[s.name].shape) for s in self.signature)
        values = tuple(feeds[n].tobytes() for n in self._frozen)
        return shapes, values

    def specialize(self, feeds: dict) -> CompiledModel:
        """The compiled model for these inputs' shapes (compiled on first use)."""
        with self._lock:
            key = self._key(feeds)
            mod = self._cache.get(key)
            if mod is not None:
                self._cache.move_to_end(key)
                return mod
            while True:
                try:
                    mod = self._compile_for(feeds)
                    break
                except (ShapeError, UnsupportedError) as exc:
                    # shapes (or an op) that depend on input values: specialise on small
                    # integer inputs and on the inputs the error traces back to, then retry
                    # (an error names what blocks *now*: freezing can reveal the next one)
                    named = set(self._value_inputs(exc)) if self._value_inputs is not None else set()
                    freezable = [s.name for s in self.signature if s.name not in self._frozen
                                 and feeds[s.name].size <= FREEZE_MAX_ELEMENTS
                                 and (feeds[s.name].dtype.kind in "iu" or s.name in named)]
                    if not freezable:
                        raise
                    self._frozen.extend(freezable)
                    key = self._key(feeds)
                    mod = self._cache.get(key)
                    if mod is not None:
                        return mod
            self._store(key, mod)
            return mod

    def _compile_for(self, feeds: dict) -> CompiledModel:
        shapes = {s.name: tuple(feeds[s.name].shape) for s in self.signature if s.name not in self._frozen}
        consts = {n: feeds[n] for n in self._frozen}
        return self._compile(shapes, consts)

    def _store(self, key, mod: CompiledModel):
        mod.set_num_threads(self.num_threads)
        self._cache[key] = mod
        self.specializations_compiled += 1
        if self._outputs is None:
            from ..compiler.pipeline import TensorInfo
            self._outputs = [TensorInfo(t.name, None, t.dtype) for t in mod.outputs]
        while len(self._cache) > self.max_cached:
            _, old = self._cache.popitem(last=False)
            old.close()

    # -- running -----------------------------------------------------------------------------
    def run(self, feeds: dict) -> dict:
        if not isinstance(feeds, dict):
            raise InputError(f"run() takes a dict of input name -> array, got {type(feeds).__name__}")
        names = self.input_names
        missing = [n for n in names if n not in feeds]
        unknown = [n for n in feeds if n not in names]
        if missing or unknown:
            parts = ([f"missing input(s) {missing}"] if missing else []) + \
                    ([f"unknown input(s) {unknown}"] if unknown else [])
            raise InputError(f"{'; '.join(parts)}; the model's inputs are {names}")
        feeds = {n: self._check(n, feeds[n]) for n in names}
        mod = self.specialize(feeds)
        return mod.run({n: feeds[n] for n in mod.input_names})

    def __call__(self, *args):
        names = self.input_names
        if len(args) != len(names):
            raise InputError(f"the model takes {len(names)} input(s) {names}, got {len(args)}")
        outs = list(self.run(dict(zip(names, args))).values())
        return outs[0] if len(outs) == 1 else tuple(outs)

    def set_num_threads(self, n: int):
        if int(n) < 1:
            raise InputError(f"num_threads must be >= 1, got {n}")
        self.num_threads = int(n)
        for mod in self._cache.values():
            mod.set_num_threads(n)

    def close(self):
        for mod in self._cache.values():
            mod.close()
        self._cache.clear()

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}: {s.dtype}{['?' if d is None else d for d in (s.dims or ())]}"
                        for s in self.signature)
        return f"<DynamicModel ({ins}), {len(self._cache)} specialisation(s) cached>"
