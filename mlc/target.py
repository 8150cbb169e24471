"""What machine code is generated for: CPU name, ISA features, vector width, caches.

``Target.from_string("x86")`` (or ``"host"``) describes the machine mlc runs on.  Other
spellings pick an older ISA on purpose, which is how the AVX2 path is tested on an
AVX-512 machine:

    "x86"            the host CPU, every feature it has
    "x86-avx2"       Haswell-class: AVX2 + FMA, 256-bit vectors
    "x86-avx512"     Skylake-AVX512-class: AVX-512F/BW/DQ/VL
    "x86 -mcpu=NAME" any CPU name LLVM knows (features are LLVM's for that CPU)
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from .errors import TargetError

# Features the generated code may use.  A target records which of them it was built
# with, and a saved artifact refuses to load on a CPU missing any of them.
_TRACKED_FEATURES = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl",
    "avx512vnni", "avx512bf16", "avx512fp16", "avxvnni",
)

_NAMED_TARGETS = {
    "x86-avx2": "haswell",
    "x86-avx512": "skylake-avx512",
}


@dataclass(frozen=True)
class Target:
    """A CPU to generate code for."""

    cpu: str                                  # LLVM CPU name, e.g. "znver5", "haswell"
    features: str                             # LLVM feature string, "+avx2,+fma,..."
    triple: str
    l1d_bytes: int = 48 * 1024
    l2_bytes: int = 1024 * 1024
    num_cores: int = 1
    is_host: bool = True
    feature_set: frozenset = field(default_factory=frozenset, compare=False)

    # --- derived properties -------------------------------------------------------------
    def has(self, feature: str) -> bool:
        return feature in self.feature_set

    @property
    def vector_bits(self) -> int:
        """Width of the widest float vector register the code may use."""
        if self.has("avx512f"):
            return 512
        if self.has("avx2") or self.has("avx"):
            return 256
        return 128

    @property
    def lanes_f32(self) -> int:
        return self.vector_bits // 32

    @property
    def num_vector_registers(self) -> int:
        return 32 if self.has("avx512f") else 16

    @property
    def key(self) -> str:
        """Identity of the target for tuning records: CPU name + the features we track."""
        used = sorted(f for f in _TRACKED_FEATURES if self.has(f))
        return f"{self.cpu}:{'+'.join(used)}"

    def required_features(self) -> list[str]:
        return sorted(f for f in _TRACKED_FEATURES if self.has(f))

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "features": self.features, "triple": self.triple,
                "l1d_bytes": self.l1d_bytes, "l2_bytes": self.l2_bytes,
                "num_cores": self.num_cores, "is_host": self.is_host}

    @classmethod
    def from_dict(cls, d: dict) -> "Target":
        return cls(cpu=d["cpu"], features=d["features"], triple=d["triple"],
                   l1d_bytes=d["l1d_bytes"], l2_bytes=d["l2_bytes"], num_cores=d["num_cores"],
                   is_host=d.get("is_host", False), feature_set=_parse_features(d["features"]))

    # --- construction -------------------------------------------------------------------
    @classmethod
    def host(cls) -> "Target":
        return _host_target()

    @classmethod
    def from_string(cls, spec: "str | Target | None") -> "Target":
        if isinstance(spec, Target):
            return spec
        if spec is None:
            return cls.host()
        text = spec.strip()
        if text in ("x86", "host", "llvm", "cpu", "x86_64", "native"):
            return cls.host()
        cpu = _NAMED_TARGETS.get(text)
        if cpu is None and "-mcpu=" in text:
            cpu = text.split("-mcpu=", 1)[1].split()[0]
        if cpu is None:
            raise TargetError(
                f"unknown target {spec!r}: use 'x86' (this machine), 'x86-avx2', 'x86-avx512' "
                "or 'x86 -mcpu=<llvm cpu name>'")
        return _target_for_cpu(cpu)


def _parse_features(flat: str) -> frozenset:
    return frozenset(f[1:] for f in flat.split(",") if f.startswith("+"))


def _cache_bytes(level: int, kind: str, default: int) -> int:
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            path = os.path.join(base, entry)
            with open(os.path.join(path, "level")) as f:
                lvl = int(f.read())
            with open(os.path.join(path, "type")) as f:
                typ = f.read().strip()
            if lvl == level and typ in (kind, "Unified"):
                with open(os.path.join(path, "size")) as f:
                    text = f.read().strip()
                mult = {"K": 1024, "M": 1024 * 1024}.get(text[-1], 1)
                return int(text.rstrip("KM")) * mult
    except (OSError, ValueError):
        pass
    return default


@functools.lru_cache(maxsize=None)
def _host_target() -> Target:
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features().flatten()
    return Target(cpu=llvm.get_host_cpu_name(), features=features, triple=llvm.get_process_triple(),
                  l1d_bytes=_cache_bytes(1, "Data", 48 * 1024), l2_bytes=_cache_bytes(2, "Unified", 1 << 20),
                  num_cores=os.cpu_count() or 1, is_host=True, feature_set=_parse_features(features))


@functools.lru_cache(maxsize=None)
def _target_for_cpu(cpu: str) -> Target:
    import llvmlite.binding as llvm
    host = _host_target()
    llvm.initialize_native_target()     # from_triple finds no target before this
    target = llvm.Target.from_triple(host.triple)
    try:
        tm = target.create_target_machine(cpu=cpu, features="")
        # LLVM does not report a CPU's implied features through the target machine, so we
        # ask it for the feature string of that CPU by name where we know the families.
        del tm
    except RuntimeError as exc:  # pragma: no cover - llvmlite raises on unknown CPUs
        raise TargetError(f"LLVM does not know the CPU {cpu!r}: {exc}") from None
    feats = _features_of_cpu(cpu)
    return Target(cpu=cpu, features=",".join("+" + f for f in sorted(feats)), triple=host.triple,
                  l1d_bytes=host.l1d_bytes, l2_bytes=host.l2_bytes, num_cores=host.num_cores,
                  is_host=False, feature_set=frozenset(feats))


# Feature sets of the CPU families the tests and benchmarks compile for.  LLVM derives the
# rest of the ISA from the CPU name itself; these are what mlc's own decisions (vector
# width, VNNI use) read.
_BASE_AVX2 = {"sse4.2", "avx", "avx2", "fma", "f16c", "bmi", "bmi2", "popcnt"}
_BASE_AVX512 = _BASE_AVX2 | {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}
_CPU_FEATURES = {
    "haswell": _BASE_AVX2, "broadwell": _BASE_AVX2, "skylake": _BASE_AVX2,
    "znver1": _BASE_AVX2, "znver2": _BASE_AVX2, "znver3": _BASE_AVX2,
    "skylake-avx512": _BASE_AVX512,
    "cascadelake": _BASE_AVX512 | {"avx512vnni"},
    "icelake-server": _BASE_AVX512 | {"avx512vnni"},
    "sapphirerapids": _BASE_AVX512 | {"avx512vnni", "avx512bf16", "avx512fp16"},
    "znver4": _BASE_AVX512 | {"avx512vnni", "avx512bf16"},
    "znver5": _BASE_AVX512 | {"avx512vnni", "avx512bf16"},
    "x86-64": {"sse2"},
}


def _features_of_cpu(cpu: str) -> set:
    if cpu in _CPU_FEATURES:
        return set(_CPU_FEATURES[cpu])
    raise TargetError(f"mlc does not know the features of CPU {cpu!r}; known: {sorted(_CPU_FEATURES)}")


# LLVM feature names -> /proc/cpuinfo flag names, where they differ
_CPUINFO_NAMES = {"avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
                  "avxvnni": "avx_vnni", "sse4.2": "sse4_2", "sse4.1": "sse4_1", "bmi": "bmi1"}


@functools.lru_cache(maxsize=None)
def _cpuinfo_flags() -> frozenset | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def host_arch() -> str:
    """This machine's architecture as LLVM triples spell it (x86_64, aarch64, ...)."""
    import platform
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def host_cpu_label() -> str:
    """A name for this CPU in messages (without loading LLVM)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _host_target().cpu


def host_missing_features(required: list[str]) -> list[str]:
    """Features in ``required`` that this machine's CPU lacks.

    Read from /proc/cpuinfo where there is one: loading a saved model then never imports
    LLVM (tens of MB of resident memory) just to ask the CPU what it can do."""
    flags = _cpuinfo_flags()
    if flags is not None:
        return [f for f in required if _CPUINFO_NAMES.get(f, f) not in flags]
    host = _host_target()
    return [f for f in required if not host.has(f)]
