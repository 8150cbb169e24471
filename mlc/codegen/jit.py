"""LLVM IR text -> optimised object code -> callable machine code in this process.

The object file is the unit of reuse: a compiled model keeps it, ``save`` writes it into
an artifact, ``load`` maps it back without running LLVM's optimiser again, and
``export_library`` links it into a shared object.  Code is position independent so the
same bytes serve all three.
"""
from __future__ import annotations

import ctypes
import functools
import threading

import llvmlite.binding as llvm

from ..errors import CodegenError
from ..target import Target

_lock = threading.Lock()
_initialized = False


def _init():
    global _initialized
    with _lock:
        if not _initialized:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            llvm.initialize_native_asmparser()
            _initialized = True


def new_target_machine(target: Target) -> "llvm.TargetMachine":
    _init()
    t = llvm.Target.from_triple(target.triple)
    return t.create_target_machine(cpu=target.cpu, features=target.features, opt=3,
                                   reloc="pic", codemodel="default")


@functools.lru_cache(maxsize=None)
def target_machine(target: Target) -> "llvm.TargetMachine":
    """A shared target machine for optimising and emitting (never handed to an engine)."""
    return new_target_machine(target)


def parse_and_optimize(ir_text: str, target: Target, opt_level: int = 3) -> "llvm.ModuleRef":
    _init()
    tm = target_machine(target)
    try:
        mod = llvm.parse_assembly(ir_text)
        mod.verify()
    except RuntimeError as exc:
        raise CodegenError(f"LLVM rejected the generated IR (an mlc bug): {exc}") from None
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    if opt_level > 0:
        pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        pto.loop_vectorization = False     # vectorisation is explicit in our IR
        pto.slp_vectorization = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    return mod


def compile_ir(ir_text: str, target: Target, opt_level: int = 3, cache: bool = False) -> bytes:
    """Optimise and emit an object file for ``target``.

    With ``cache``, the object is looked up (and stored) in the user's compile cache,
    keyed by a hash of exactly what LLVM would compile: the IR text, the target's CPU and
    features, the optimisation level and LLVM's version.  ``MLC_CACHE=none`` turns it off.
    """
    key = _cache_key(ir_text, target, opt_level) if cache and _cache_enabled() else None
    if key is not None:
        hit = _cache_get(key)
        if hit is not None:
            return hit
    mod = parse_and_optimize(ir_text, target, opt_level)
    obj = target_machine(target).emit_object(mod)
    if key is not None:
        _cache_put(key, obj)
    return obj


def cache_dir() -> str:
    import os
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlc", "objects")


def _cache_enabled() -> bool:
    import os
    return os.environ.get("MLC_CACHE", "").strip().lower() not in ("none", "off", "0")


def _cache_key(ir_text: str, target: Target, opt_level: int) -> str:
    import hashlib
    h = hashlib.sha256()
    for part in (ir_text, target.cpu, target.features, target.triple, str(opt_level),
                 ".".join(map(str, llvm.llvm_version_info))):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _cache_get(key: str, suffix: str = ".o") -> bytes | None:
    import os
    try:
        with open(os.path.join(cache_dir(), key[:2], key + suffix), "rb") as f:
            return f.read()
    except OSError:
        return None


def _cache_put(key: str, obj: bytes, suffix: str = ".o") -> None:
    """Atomic (write then rename); a full disk or a read-only home only costs the cache."""
    import os
    import tempfile
    d = os.path.join(cache_dir(), key[:2])
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(obj)
        os.replace(tmp, os.path.join(d, key + suffix))
    except OSError:
        pass


# -- the program cache: a whole model's object, found without emitting its LLVM IR --------

@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """A hash of mlc's own source (package and operator library): the code a program key
    stands for is what this source emits from it, so any change to it changes every key."""
    import hashlib
    import os

    from .. import kernels
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # the operator library sits inside the package when installed, beside it in a checkout
    roots = [root] + [d for d in kernels.__path__ if not os.path.abspath(d).startswith(root + os.sep)]
    h = hashlib.sha256()
    for top in roots:
        for d, dirs, files in sorted(os.walk(top)):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(".py"):
                    h.update(f.encode())
                    with open(os.path.join(d, f), "rb") as fh:
                        h.update(fh.read())
    return h.hexdigest()


def program_key(parts: list, target: Target, opt_level: int) -> str | None:
    """Key of a compiled program described by ``parts`` (strings that fix the emitted IR:
    every kernel's canonical computation and schedule, each call's buffer locations, the
    arena size), or None when the compile cache is off.

    A recompile whose key is cached skips IR emission as well as LLVM: for a tuned
    ResNet-18 emitting the IR alone takes seconds."""
    if not _cache_enabled():
        return None
    import hashlib
    h = hashlib.sha256()
    for part in [_source_digest(), target.cpu, target.features, target.triple, str(opt_level),
                 ".".join(map(str, llvm.llvm_version_info))] + parts:
        h.update(part.encode())
        h.update(b"\0")
    return "p" + h.hexdigest()


def program_get(key: str | None) -> tuple[bytes, list] | None:
    """(object, kernel symbols) cached under a program key."""
    import json
    if key is None:
        return None
    obj, meta = _cache_get(key), _cache_get(key, ".json")
    if obj is None or meta is None:
        return None
    try:
        return obj, list(json.loads(meta))
    except ValueError:
        return None


def program_put(key: str | None, obj: bytes, symbols: list) -> None:
    import json
    if key is not None:
        _cache_put(key, obj)
        _cache_put(key, json.dumps(symbols).encode(), ".json")   # second: marks the entry complete


def assembly(ir_text: str, target: Target, opt_level: int = 3) -> str:
    mod = parse_and_optimize(ir_text, target, opt_level)
    return target_machine(target).emit_assembly(mod)


def optimized_ir(ir_text: str, target: Target, opt_level: int = 3) -> str:
    return str(parse_and_optimize(ir_text, target, opt_level))


class LoadedCode:
    """Machine code mapped into this process (an MCJIT engine holding one object file).

    Call ``close()`` (after stopping any threads running the code) to release it.
    """

    def __init__(self, obj: bytes, target: Target):
        _init()
        # an MCJIT engine takes ownership of its target machine and frees it with itself,
        # so each engine gets a machine of its own
        tm = new_target_machine(target)
        empty = llvm.parse_assembly("")
        empty.triple = target.triple
        self._engine = llvm.create_mcjit_compiler(empty, tm)
        self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self._engine.finalize_object()
        self.target = target

    def address(self, name: str) -> int:
        addr = self._engine.get_function_address(name)
        if not addr:
            raise CodegenError(f"symbol {name!r} not found in the compiled code")
        return addr

    def function(self, name: str, restype, *argtypes):
        return ctypes.CFUNCTYPE(restype, *argtypes)(self.address(name))

    def close(self):
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None:
            engine.close()
