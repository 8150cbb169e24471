"""Tuning records: JSON lines, one measurement per line, that later compiles reuse.

A record::

    {"v": 1, "key": <task key>, "target": <cpu:features>, "sched": [<steps>],
     "config": <knobs>, "cost": <fastest repeat, seconds, or null>, "costs": [...],
     "error": <null or message>, "flops": <int>, "features": [...],
     "mlc": <version>, "time": <ISO timestamp>, "desc": <ops and shapes>, "cold": true?,
     "retimed": true?}

``cold`` marks a cost measured with the kernel's weights flushed from the caches (see
``measure.weights_cold``).  Cold and warm costs of one task are not comparable: where a
task has cold records, only those compete for its best schedule.  ``retimed`` marks a
finalist of a tuning run timed again beside the other finalists: re-timed schedules rank
first, by the median of their measurements (:func:`by_schedule`).

Writing is append-only, one ``os.write`` of a whole line per record on a file opened with
O_APPEND and held under an exclusive ``flock``: a tuner killed at any instant leaves every
completed record intact, and several tuners can share one log.  Reading skips lines that
do not parse (a torn last line, a hand edit) with a warning, never a crash.
"""
from __future__ import annotations

import dataclasses
import datetime
import fcntl
import glob
import json
import os
import statistics
import warnings
from dataclasses import dataclass, field

from ..errors import TuningError

FORMAT_VERSION = 1
# Records from these mlc versions produce schedules this version applies unchanged.
COMPATIBLE_VERSIONS = ("0.1",)


def _mlc_version() -> str:
    from .. import __version__
    return __version__


def _compatible(version: str) -> bool:
    return any(str(version).startswith(v) for v in COMPATIBLE_VERSIONS)


@dataclass
class Record:
    key: str
    target: str
    sched: list
    config: object = None
    cost: float | None = None
    costs: list = field(default_factory=list)
    error: str | None = None
    flops: int = 0
    features: list | None = None
    desc: str = ""
    mlc: str = ""
    time: str = ""
    cold: bool = False
    retimed: bool = False             # a finalist timed again side by side (not a search trial)

    @property
    def ok(self) -> bool:
        return self.error is None and self.cost is not None

    def to_json(self) -> dict:
        d = {"v": FORMAT_VERSION, "key": self.key, "target": self.target, "sched": self.sched,
             "config": self.config, "cost": self.cost, "costs": self.costs, "error": self.error,
             "flops": self.flops, "desc": self.desc, "mlc": self.mlc or _mlc_version(),
             "time": self.time or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        if self.features is not None:
            d["features"] = [round(float(x), 5) for x in self.features]
        if self.cold:
            d["cold"] = True
        if self.retimed:
            d["retimed"] = True
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Record":
        return cls(key=d["key"], target=d["target"], sched=d["sched"], config=d.get("config"),
                   cost=d.get("cost"), costs=d.get("costs") or [], error=d.get("error"),
                   flops=int(d.get("flops") or 0), features=d.get("features"), desc=d.get("desc", ""),
                   mlc=d.get("mlc", ""), time=d.get("time", ""), cold=bool(d.get("cold", False)),
                   retimed=bool(d.get("retimed", False)))


class RecordWriter:
    """Append records to a log file (created with its directory if needed)."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        d = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(d, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TuningError(f"cannot open tuning log {self.path!r} for writing: {exc.strerror}") from None

    def write(self, record: Record) -> None:
        line = (json.dumps(record.to_json(), separators=(",", ":")) + "\n").encode()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            # a previous writer killed mid-line would glue our record to its fragment
            if os.fstat(self._fd).st_size > 0 and not self._ends_with_newline():
                line = b"\n" + line
            os.write(self._fd, line)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def close(self):
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def read_records(path: str, warn: bool = True) -> list[Record]:
    """Every well-formed record of a log; malformed lines are skipped with one warning."""
    out: list[Record] = []
    bad = 0
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise TuningError(f"cannot read tuning log {path!r}: {exc.strerror}") from None
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
            if d.get("v") != FORMAT_VERSION:
                raise ValueError("unknown record version")
            out.append(Record.from_json(d))
        except (ValueError, KeyError, TypeError):
            bad += 1
    if bad and warn:
        warnings.warn(f"tuning log {path}: skipped {bad} malformed line(s)", stacklevel=2)
    return out


def default_log_paths() -> list[str]:
    """Logs ``compile`` applies by default: the shipped ``tuning_logs/`` and the user's cache.

    ``MLC_TUNING_LOGS=none`` turns them off; ``MLC_TUNING_LOGS=a.jsonl:b.jsonl`` replaces them.
    """
    env = os.environ.get("MLC_TUNING_LOGS")
    if env is not None:
        if env.strip().lower() in ("none", "off", "0", ""):
            return []
        return [p for p in env.split(os.pathsep) if p]
    paths = []
    shipped = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "tuning_logs")
    paths.extend(sorted(glob.glob(os.path.join(shipped, "*.jsonl"))))
    paths.extend(sorted(glob.glob(os.path.join(user_cache_dir(), "*.jsonl"))))
    return paths


def user_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlc", "tuning")


@dataclass
class BestRecords:
    """The best valid record per task key for one target, and what was set aside."""

    best: dict                      # key -> Record
    other_target: int = 0           # records for another CPU (ignored)
    incompatible: int = 0           # records from an mlc version whose schedules may not apply
    files: list = field(default_factory=list)

    def schedule_for(self, key: str):
        from ..loop.schedule import Schedule
        r = self.best.get(key)
        return Schedule.from_json(r.sched) if r is not None else None


def load_best(paths: list, target_key: str, warn: bool = True) -> BestRecords:
    """The best schedule per task among the records of ``paths`` for ``target_key``; a
    schedule measured more than once is judged by its median (see :func:`by_schedule`)."""
    usable = []
    other, incompatible = 0, 0
    for path in paths:
        for r in read_records(path, warn=warn):
            if r.target != target_key:
                other += 1
            elif not _compatible(r.mlc):
                incompatible += 1
            else:
                usable.append(r)
    best = {key: groups[0][0] for key, groups in by_schedule(usable).items()}
    return BestRecords(best, other, incompatible, list(paths))


def by_schedule(records) -> dict:
    """Valid records (of one target) grouped per task key and schedule:
    {key: [(summary, records), ...]}, best first.  ``summary`` is a copy of the group's latest record whose ``cost`` is the
    median of the group's costs.

    Why: one measurement on this kind of host is off by up to ~10% (clock and
    neighbours), so the minimum over thousands of candidates is mostly the luckiest
    measurement, not the fastest schedule.  The tuner re-times its finalists side by
    side, in one window of time (``confirm`` in :func:`mlc.tuning.tuner.tune`): where a
    task has re-timed schedules, they rank before the others, by the median of their
    measurements (a single measurement from a faster minute would otherwise beat them).
    A cold measurement beats any warm one (the warm ones of a task came from before it
    was measured cold)."""
    groups: dict = {}
    for r in records:
        if r.ok:
            sched = json.dumps(r.sched, separators=(",", ":"))
            groups.setdefault(r.key, {}).setdefault((r.cold, sched), []).append(r)
    out = {}
    for key, per_sched in groups.items():
        ranked = []
        for rs in per_sched.values():
            summary = dataclasses.replace(rs[-1], cost=float(statistics.median(r.cost for r in rs)))
            ranked.append((summary, rs))
        ranked.sort(key=lambda g: (not g[0].cold, not any(r.retimed for r in g[1]), g[0].cost))
        out[key] = ranked
    return out


def pick_best(paths: list, out: str, per_task: int = 16) -> int:
    """Distil logs into ``out``: for every (target, task key) the ``per_task`` fastest valid
    schedules (each with all its measurements), features included (they warm-start the
    cost model of a later tuning run).

    What ``tuning_logs/`` ships: a tuning run's full log holds thousands of measurements,
    most of them of slow candidates no compile will ever apply.  Returns the number of
    records written; ``out`` is replaced atomically.
    """
    per_target: dict = {}
    for path in paths:
        for r in read_records(path):
            if _compatible(r.mlc):
                per_target.setdefault(r.target, []).append(r)
    # every measurement of a kept schedule is kept, so its median stays what it was
    kept = [r for recs in per_target.values() for groups in by_schedule(recs).values()
            for _, rs in groups[:per_task] for r in rs]
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        for r in kept:
            f.write(json.dumps(r.to_json(), separators=(",", ":")) + "\n")
    os.replace(tmp, out)
    return len(kept)
