"""Machine code loaded without LLVM: a shared object mapped with dlopen.

A saved artifact carries, besides LLVM's relocatable object, the same code linked into a
shared object (when a linker was available at save time).  Loading it with dlopen from an
in-memory file keeps llvmlite (and its ~40 MB of resident LLVM) out of a process that
only runs models: the deployment path.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile

from ..errors import ArtifactError


def link_shared_object(obj: bytes) -> bytes | None:
    """Link a relocatable object into a shared object with the system C compiler.

    None when no compiler/linker is installed or linking fails (the caller then keeps
    only the object, which MCJIT loads)."""
    from .library import find_c_compiler
    cc = find_c_compiler()
    if cc is None:
        return None
    with tempfile.TemporaryDirectory(prefix="mlc-link-") as d:
        o, so = os.path.join(d, "model.o"), os.path.join(d, "model.so")
        with open(o, "wb") as f:
            f.write(obj)
        # -Bsymbolic: the library's calls to its own functions never bind to another
        # model's identically named ones
        cmd = [cc, "-shared", "-o", so, o, "-Wl,-Bsymbolic", "-Wl,-z,noexecstack", "-lpthread"]
        try:
            res = subprocess.run(cmd, capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if res.returncode != 0 or not os.path.exists(so):
            return None
        with open(so, "rb") as f:
            return f.read()


class SharedObjectCode:
    """A shared object loaded from bytes (via a memfd); same interface as jit.LoadedCode."""

    def __init__(self, data: bytes):
        fd = os.memfd_create("mlc-model", 0)
        try:
            os.write(fd, data)
            try:
                self._lib = ctypes.CDLL(f"/proc/self/fd/{fd}", mode=os.RTLD_LOCAL | os.RTLD_NOW)
            except OSError as exc:
                raise ArtifactError(f"the stored machine code could not be loaded: {exc}") from None
        finally:
            os.close(fd)

    def address(self, name: str) -> int:
        try:
            return ctypes.cast(getattr(self._lib, name), ctypes.c_void_p).value
        except AttributeError:
            raise ArtifactError(f"symbol {name!r} not found in the stored machine code") from None

    def function(self, name: str, restype, *argtypes):
        return ctypes.CFUNCTYPE(restype, *argtypes)(self.address(name))

    def close(self):
        lib, self._lib = getattr(self, "_lib", None), None
        if lib is not None:
            import _ctypes
            _ctypes.dlclose(lib._handle)
