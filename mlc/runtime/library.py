"""Export a compiled model as a C-callable shared library (no Python at run time).

    mod.export_library("resnet18.so")       # also writes resnet18.h

The library is linked by the system C compiler from three objects:

* the model's object code, exactly the bytes the in-process model runs (kernels, the
  native thread pool, ``mlc_run``);
* the weights blob, embedded with an assembler ``.incbin`` (64-byte aligned, read-only);
* the C ABI wrapper generated in LLVM IR by :mod:`mlc.codegen.c_api`.

A linker version script exports only ``<prefix>_*``: the model's own symbols
(``mlc_run``, the pool) stay local, so any number of exported models can live in one
process (each has its own pool).  Use ``prefix=`` to give two libraries distinct names
when a C program links both directly rather than through dlopen.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np

from ..codegen.c_api import WEIGHTS_SYMBOL, c_api_ir, c_header, check_prefix
from ..codegen.jit import compile_ir
from ..errors import MlcError


class ToolchainError(MlcError):
    """No usable C compiler/linker (``cc``) for export_library."""


def find_c_compiler() -> str | None:
    """$CC if set, else the first of cc, gcc, clang on PATH (None if there is none)."""
    env = os.environ.get("CC")
    candidates = [env] if env else ["cc", "gcc", "clang"]
    for c in candidates:
        path = shutil.which(c.split()[0]) if c else None
        if path:
            return path
    return None


def _run(cmd: list, what: str) -> None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except OSError as exc:
        raise ToolchainError(f"cannot run the C compiler {cmd[0]!r} to {what}: {exc}") from None
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"the C compiler timed out while trying to {what}") from None
    if res.returncode != 0:
        out = (res.stderr or res.stdout).strip()
        raise ToolchainError(f"{os.path.basename(cmd[0])} failed to {what} (exit {res.returncode}):\n{out}")


def _weights_asm(blob_path: str, nbytes: int) -> str:
    quoted = blob_path.replace("\\", "\\\\").replace('"', '\\"')
    return f"""\
    .section .rodata.{WEIGHTS_SYMBOL},"a",@progbits
    .balign 64
    .globl {WEIGHTS_SYMBOL}
    .hidden {WEIGHTS_SYMBOL}
    .type {WEIGHTS_SYMBOL},@object
{WEIGHTS_SYMBOL}:
    .incbin "{quoted}"
    .size {WEIGHTS_SYMBOL}, {nbytes}
    .section .note.GNU-stack,"",@progbits
"""


def default_header_path(path: str) -> str:
    root, ext = os.path.splitext(path)
    return (root if ext in (".so", ".dylib", ".dll") else path) + ".h"


def export_library(exe, path: "str | os.PathLike", header: "str | os.PathLike | None" = None,
                   prefix: str = "mlc_model") -> str:
    """Link ``exe`` (an Executable) into the shared library ``path`` and write its C header
    (``header``, default: ``path`` with ``.h`` instead of ``.so``).  Returns ``path``.

    Raises ToolchainError when no C compiler is installed or linking fails.
    """
    from ..target import Target
    path = os.fspath(path)
    header = os.fspath(header) if header is not None else default_header_path(path)
    check_prefix(prefix)
    if exe.target.triple.split("-")[0] != Target.host().triple.split("-")[0]:
        raise MlcError(f"export_library links with this machine's C compiler, which targets "
                       f"{Target.host().triple}; the model was compiled for {exe.target.triple}")
    cc = find_c_compiler()
    if cc is None:
        raise ToolchainError("export_library needs a C compiler and linker to build the shared "
                             "library, and none was found (looked for $CC, cc, gcc, clang): install "
                             "one (e.g. apt-get install gcc), or ship the model as an .mlc artifact "
                             "(mod.save) instead")
    out_dir = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(out_dir):
        raise MlcError(f"cannot write {path}: directory {out_dir} does not exist")

    # the wrapper is built for baseline x86-64: its CPU check must run on any x86 CPU
    wrapper_target = Target.from_string("x86 -mcpu=x86-64")
    wrapper_obj = compile_ir(c_api_ir(exe, prefix), wrapper_target, opt_level=2)
    weights = np.ascontiguousarray(exe.weights).view(np.uint8).reshape(-1)

    with tempfile.TemporaryDirectory(prefix="mlc-export-") as tmp:
        files = {}
        for name, data in (("model.o", exe.object_code), ("c_api.o", wrapper_obj)):
            files[name] = os.path.join(tmp, name)
            with open(files[name], "wb") as f:
                f.write(data)
        blob = os.path.join(tmp, "weights.bin")
        weights.tofile(blob)
        asm = os.path.join(tmp, "weights.S")
        with open(asm, "w") as f:
            f.write(_weights_asm(blob, weights.nbytes))
        weights_obj = os.path.join(tmp, "weights.o")
        _run([cc, "-c", asm, "-o", weights_obj], "assemble the weights")
        script = os.path.join(tmp, "exports.map")
        with open(script, "w") as f:
            f.write(f"{{\n  global: {prefix}_*;\n  local: *;\n}};\n")
        tmp_so = os.path.join(tmp, "model.so")
        _run([cc, "-shared", "-o", tmp_so, files["model.o"], files["c_api.o"], weights_obj,
              f"-Wl,--version-script={script}", "-Wl,--no-undefined", "-Wl,-z,noexecstack",
              "-Wl,-z,relro", "-Wl,-z,now", "-lm", "-lpthread"], "link the shared library")
        try:
            shutil.move(tmp_so, path)
        except OSError as exc:
            raise MlcError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with open(header, "w") as f:
            f.write(c_header(exe, prefix, os.path.basename(path)))
    except OSError as exc:
        raise MlcError(f"cannot write the header {header}: {exc.strerror or exc}") from None
    return path
