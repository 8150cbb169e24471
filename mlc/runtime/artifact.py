"""Saved artifacts: one ``.mlc`` file holding everything a compiled model needs to run.

    mod.save("resnet18.mlc")
    mod = mlc.load("resnet18.mlc")          # no ONNX frontend, no LLVM optimiser

Loading reads the file with one ``readinto`` into a 64-byte aligned buffer, checks it,
and hands the object code to MCJIT, which only links it: ResNet-18 (47 MB of weights)
loads in well under a tenth of a second.

File format (version 1), little-endian::

    offset 0    header, 64 bytes
                  0  8s   magic  b"\\x89MLC\\r\\n\\x1a\\n"  (PNG-style: catches text-mode
                                 transfers and files that are not ours)
                  8  u32  format version (FORMAT_VERSION)
                 12  u32  header size (64)
                 16  u64  file size (truncation check)
                 24  u64  metadata offset
                 32  u64  metadata size
                 40  u32  CRC-32 of bytes [64, file size): every byte after the header
                 44  u32  CRC-32 of header bytes [0, 44)
                 48  16 bytes reserved, zero
    offset 64   section "object": the relocatable object file (ELF) from LLVM
    (64-aligned) section "weights": the constants blob, exactly as the kernels address it
    (64-aligned) section "shared_object" (optional): the object linked into a shared
                object when a linker was at hand at save time; loading maps it with dlopen
                and never imports LLVM (the object is kept for machines where that fails)
    (64-aligned) metadata: UTF-8 JSON (see :func:`_metadata`), last so that section
                offsets are known when it is written

The metadata holds the I/O signature (names, shapes, dtypes), copy_outputs, arena size,
the target (CPU name, LLVM features, triple, and the ``required_features`` the loader
checks against this CPU), mlc and format versions, every kernel record (ops, FLOPs,
schedule applied, tuned or not) and the compile stats.

Checks on load, in order, each an :class:`~mlc.errors.ArtifactError` unless noted: the
magic (not an mlc file), the header CRC, the format version, the file size (truncated),
the payload CRC (corrupted), the JSON, the mlc version (same major.minor), then
:class:`~mlc.errors.TargetError` for another architecture or a CPU that lacks any feature
the code was built for (the message names the missing features).
"""
from __future__ import annotations

import dataclasses
import json
import os
import struct
import tempfile
import time
import zlib

import numpy as np

from ..errors import ArtifactError, MlcError, TargetError

MAGIC = b"\x89MLC\r\n\x1a\n"
FORMAT_VERSION = 1
HEADER_SIZE = 64
ALIGN = 64
_HEADER = struct.Struct("<8sIIQQQII16x")
assert _HEADER.size == HEADER_SIZE
_HEADER_CRC_SPAN = 44


def mlc_version() -> str:
    from .. import __version__
    return __version__


def _compatible(saved: str, current: str) -> bool:
    """Artifacts are compatible across patch releases (same major.minor)."""
    return saved.split(".")[:2] == current.split(".")[:2]


def _pad(n: int) -> int:
    return -n % ALIGN


def _aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


def _json_default(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    raise TypeError(f"cannot store a {type(x).__name__} in artifact metadata")


# --------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------

def _metadata(exe, sections: dict) -> dict:
    target = exe.target
    tdict = target.to_dict()
    tdict["required_features"] = target.required_features()
    return {
        "format": "mlc-artifact",
        "format_version": FORMAT_VERSION,
        "mlc_version": mlc_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": tdict,
        "inputs": [t.to_dict() for t in exe.inputs],
        "outputs": [t.to_dict() for t in exe.outputs],
        "copy_outputs": [[int(j), str(space), int(where)] for j, (space, where) in exe.copy_outputs],
        "row_counts": [[int(j), int(c)] for j, c in sorted(exe.row_counts.items())],
        "arena_bytes": int(exe.arena_bytes),
        "kernels": [dataclasses.asdict(k) for k in exe.kernels],
        "stats": exe.stats,
        "sections": sections,
    }


def save(exe, path: "str | os.PathLike") -> str:
    """Write ``exe`` (an :class:`~mlc.compiler.pipeline.Executable`) to ``path``.

    The file is written to a temporary name in the same directory and renamed, so a
    crash never leaves a half-written artifact under ``path``.  Returns the path.
    """
    path = os.fspath(path)
    obj = bytes(exe.object_code)
    weights = np.ascontiguousarray(exe.weights).view(np.uint8).reshape(-1)
    # the same code prelinked into a shared object, so that loading needs no LLVM (and
    # none of its memory); without a linker on this machine, only the object is stored
    from .native_code import link_shared_object
    so = exe.shared_object or (link_shared_object(obj) if exe.target.is_host else None) or b""
    obj_off = HEADER_SIZE
    w_off = obj_off + len(obj) + _pad(obj_off + len(obj))
    so_off = w_off + weights.nbytes + _pad(w_off + weights.nbytes)
    meta_off = so_off + len(so) + _pad(so_off + len(so))
    sections = {"object": {"offset": obj_off, "size": len(obj)},
                "weights": {"offset": w_off, "size": int(weights.nbytes)}}
    if so:
        sections["shared_object"] = {"offset": so_off, "size": len(so)}
    try:
        meta = json.dumps(_metadata(exe, sections), default=_json_default,
                          separators=(",", ":")).encode()
    except TypeError as exc:
        raise ArtifactError(f"cannot save the model: {exc}") from None
    size = meta_off + len(meta)

    chunks = [obj, b"\0" * (w_off - obj_off - len(obj)), weights,
              b"\0" * (so_off - w_off - weights.nbytes), so, b"\0" * (meta_off - so_off - len(so)), meta]
    crc = 0
    for c in chunks:
        crc = zlib.crc32(c, crc)
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, HEADER_SIZE, size, meta_off, len(meta), crc, 0)
    head = head[:_HEADER_CRC_SPAN] + struct.pack("<I", zlib.crc32(head[:_HEADER_CRC_SPAN])) + \
        head[_HEADER_CRC_SPAN + 4:]

    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mlc-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ArtifactError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for c in chunks:
                f.write(c)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ArtifactError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# --------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------

def _open(path: str):
    if not os.path.exists(path):
        raise ArtifactError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ArtifactError(f"{path} is a directory, not an mlc artifact")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None


def _parse_header(path: str, head: bytes, actual_size: int) -> tuple:
    if len(head) == 0:
        raise ArtifactError(f"{path} is empty: not an mlc artifact")
    if len(head) < len(MAGIC) and MAGIC.startswith(head):
        raise ArtifactError(f"{path} is truncated: {len(head)} bytes")
    if head[:len(MAGIC)] != MAGIC:
        hint = ""
        if path.endswith(".onnx") or head[:1] == b"\x08":
            hint = " (it looks like an ONNX model: compile it with mlc.compile or `mlc compile`)"
        raise ArtifactError(f"{path} is not an mlc artifact: it does not start with the mlc "
                            f"magic bytes{hint}")
    if len(head) < HEADER_SIZE:
        raise ArtifactError(f"{path} is truncated: {actual_size} bytes, shorter than the "
                            f"{HEADER_SIZE}-byte header")
    magic, version, hsize, size, meta_off, meta_size, crc, hcrc = _HEADER.unpack(head)
    header_ok = zlib.crc32(head[:_HEADER_CRC_SPAN]) == hcrc
    if version != FORMAT_VERSION:
        if header_ok:
            raise ArtifactError(f"{path} is in mlc artifact format version {version}; this mlc "
                                f"({mlc_version()}) reads version {FORMAT_VERSION}: recompile the "
                                "model with this mlc")
        raise ArtifactError(f"{path} is corrupted: its header fails its checksum")
    if not header_ok:
        raise ArtifactError(f"{path} is corrupted: its header fails its checksum")
    if hsize != HEADER_SIZE or meta_off < HEADER_SIZE or meta_off + meta_size != size:
        raise ArtifactError(f"{path} is corrupted: inconsistent header")
    if actual_size < size:
        raise ArtifactError(f"{path} is truncated: {actual_size} bytes of the {size} the header "
                            "announces (an interrupted copy or download?)")
    if actual_size > size:
        raise ArtifactError(f"{path} is corrupted: {actual_size - size} unexpected bytes after the "
                            f"end of the artifact ({size} bytes)")
    return size, meta_off, meta_size, crc


def _decode_meta(path: str, raw: bytes) -> dict:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path} is corrupted: unreadable metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != "mlc-artifact":
        raise ArtifactError(f"{path} is corrupted: its metadata is not mlc artifact metadata")
    saved = str(meta.get("mlc_version", "?"))
    if not _compatible(saved, mlc_version()):
        raise ArtifactError(f"{path} was written by mlc {saved}; this is mlc {mlc_version()}, which "
                            "loads artifacts of the same major.minor version only: recompile the "
                            "model with this mlc")
    return meta


def read_metadata(path: "str | os.PathLike") -> dict:
    """The metadata of an artifact (header and metadata checked, sections not read)."""
    path = os.fspath(path)
    with _open(path) as f:
        actual = os.fstat(f.fileno()).st_size
        head = f.read(HEADER_SIZE)
        size, meta_off, meta_size, _ = _parse_header(path, head, actual)
        f.seek(meta_off)
        raw = f.read(meta_size)
    return _decode_meta(path, raw)


def check_target(meta: dict, where: str = "the model") -> None:
    """Raise TargetError if this machine cannot run code built for ``meta["target"]``."""
    from ..target import host_arch, host_cpu_label, host_missing_features
    t = meta["target"]
    arch = str(t.get("triple", "")).split("-")[0]
    if arch != host_arch():
        raise TargetError(f"{where} was compiled for {arch} ({t.get('triple')}); this machine is "
                          f"{host_arch()}")
    required = list(t.get("required_features", []))
    missing = host_missing_features(required)
    if missing:
        raise TargetError(f"{where} was compiled for CPU {t.get('cpu')!r} with features "
                          f"{', '.join(required)}; this CPU ({host_cpu_label()}) lacks: {', '.join(missing)}. "
                          "Recompile the model on (or for) this machine, e.g. target='x86' or "
                          "'x86-avx2'")


def read(path: "str | os.PathLike"):
    """Read and check an artifact; returns ``(Executable, metadata)``."""
    path = os.fspath(path)
    with _open(path) as f:
        actual = os.fstat(f.fileno()).st_size
        head = f.read(HEADER_SIZE)
        size, meta_off, meta_size, crc = _parse_header(path, head, actual)
        buf = _aligned_empty(size)
        buf[:HEADER_SIZE] = np.frombuffer(head, dtype=np.uint8)
        got = _read_and_checksum(f, memoryview(buf), HEADER_SIZE, size, path)
    if got != crc:
        raise ArtifactError(f"{path} is corrupted: its contents fail the checksum (a damaged "
                            "copy or a modified file)")
    meta = _decode_meta(path, bytes(buf[meta_off:meta_off + meta_size]))
    check_target(meta, path)
    try:
        exe = _executable(meta, buf, size, meta_off)
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ArtifactError(f"{path} is corrupted: malformed metadata "
                            f"({type(exc).__name__}: {exc})") from None
    return exe, meta


_BLOCK = 4 << 20


def _read_and_checksum(f, view: memoryview, start: int, size: int, path: str) -> int:
    """Read ``view[start:size]`` from ``f`` and return the CRC-32 of those bytes.

    Blocks are checksummed by worker threads while the next block is read (zlib releases
    the GIL), and the block CRCs combined: for ResNet-18's 47 MB this halves the time of
    read-then-checksum on two cores."""
    def fill(lo: int, hi: int) -> None:
        pos = lo
        while pos < hi:
            n = f.readinto(view[pos:hi])
            if not n:
                raise ArtifactError(f"{path} is truncated: it ended after {pos} of {size} bytes")
            pos += n

    if size - start <= 2 * _BLOCK:
        fill(start, size)
        return zlib.crc32(view[start:size])
    from concurrent.futures import ThreadPoolExecutor
    parts = []
    with ThreadPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 2) - 1))) as pool:
        for lo in range(start, size, _BLOCK):
            hi = min(lo + _BLOCK, size)
            fill(lo, hi)
            parts.append((hi - lo, pool.submit(zlib.crc32, view[lo:hi])))
        crc = 0
        for n, fut in parts:
            crc = crc32_combine(crc, fut.result(), n)
    return crc


# CRC-32 combination (zlib's crc32_combine, which Python does not expose): the CRC of
# A+B from crc(A), crc(B) and len(B), by applying "append len(B) zero bytes" to crc(A) as
# a 32x32 matrix over GF(2).  _ZEROS[k] is the operator for 2**k zero bytes.

def _gf2_times(mat: list, vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list) -> list:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


_ZEROS: list = []


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    if len2 <= 0:
        return crc1
    if not _ZEROS:
        one_bit = [0xEDB88320] + [1 << n for n in range(31)]   # one zero bit
        op = one_bit
        for _ in range(3):                                     # -> one zero byte
            op = _gf2_square(op)
        _ZEROS.append(op)
    k = 0
    while len2:
        while len(_ZEROS) <= k:
            _ZEROS.append(_gf2_square(_ZEROS[-1]))
        if len2 & 1:
            crc1 = _gf2_times(_ZEROS[k], crc1)
        len2 >>= 1
        k += 1
    return crc1 ^ crc2


def _section(meta: dict, name: str, buf: np.ndarray, limit: int) -> np.ndarray:
    s = meta["sections"][name]
    off, n = int(s["offset"]), int(s["size"])
    if off < HEADER_SIZE or off % ALIGN or n < 0 or off + n > limit:
        raise ArtifactError(f"corrupted artifact: section {name!r} lies outside the file")
    return buf[off:off + n]


def _filled(cls, d: dict):
    """A dataclass from a dict: unknown keys dropped, missing ones None (forward-compatible)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in d.items() if k in names}
    for f in dataclasses.fields(cls):
        if f.name not in kwargs and f.default is dataclasses.MISSING and \
                f.default_factory is dataclasses.MISSING:
            kwargs[f.name] = None
    return cls(**kwargs)


def _executable(meta: dict, buf: np.ndarray, size: int, meta_off: int):
    from .executable import Executable, KernelRecord, TensorInfo
    from ..target import Target
    obj = _section(meta, "object", buf, meta_off).tobytes()
    weights = _section(meta, "weights", buf, meta_off)
    if len(obj) == 0:
        raise ArtifactError("corrupted artifact: empty object code section")
    if weights.nbytes == 0:     # the loader passes a pointer to it: keep one valid
        weights = _aligned_empty(ALIGN)
    tensors = lambda key: [TensorInfo(str(t["name"]), tuple(int(d) for d in t["shape"]), str(t["dtype"]))
                           for t in meta[key]]
    copy_outputs = [(int(j), (str(space), int(where))) for j, space, where in meta["copy_outputs"]]
    kernels = [_filled(KernelRecord, k) for k in meta["kernels"]]
    target = Target.from_dict(meta["target"])
    so = _section(meta, "shared_object", buf, meta_off).tobytes() if "shared_object" in meta["sections"] else None
    row_counts = {int(j): int(c) for j, c in meta.get("row_counts", [])}
    return Executable(obj, weights, int(meta["arena_bytes"]), tensors("inputs"), tensors("outputs"),
                      copy_outputs, kernels, target, dict(meta.get("stats", {})), so, row_counts)


def load(path: "str | os.PathLike", num_threads: int | None = None):
    """Load a saved model: a :class:`~mlc.runtime.compiled_model.CompiledModel`."""
    from .compiled_model import CompiledModel
    exe, meta = read(path)
    try:
        return CompiledModel(exe, num_threads=num_threads)
    except MlcError:
        raise
    except RuntimeError as exc:     # MCJIT refused the object (it passed the checksum...)
        raise ArtifactError(f"{os.fspath(path)}: the machine code could not be loaded: {exc}") from None


def edit_metadata(path: "str | os.PathLike", update) -> None:
    """Rewrite an artifact's metadata in place with ``update(meta) -> meta`` (and fix its
    checksums).  A tool for tests and for debugging, not for normal use: it lets one build
    an artifact that claims other CPU features or another mlc version."""
    path = os.fspath(path)
    with _open(path) as f:
        data = f.read()
    size, meta_off, meta_size, _ = _parse_header(path, data[:HEADER_SIZE], len(data))
    meta = update(json.loads(data[meta_off:meta_off + meta_size].decode()))
    raw = json.dumps(meta, default=_json_default, separators=(",", ":")).encode()
    body = data[HEADER_SIZE:meta_off] + raw
    size = meta_off + len(raw)
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, HEADER_SIZE, size, meta_off, len(raw),
                        zlib.crc32(body), 0)
    head = head[:_HEADER_CRC_SPAN] + struct.pack("<I", zlib.crc32(head[:_HEADER_CRC_SPAN])) + \
        head[_HEADER_CRC_SPAN + 4:]
    with open(path, "wb") as f:
        f.write(head + body)


def is_artifact(path) -> bool:
    """Whether ``path`` names an .mlc artifact (by extension, or by its magic bytes)."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    path = os.fspath(path)
    if path.endswith(".mlc"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False
