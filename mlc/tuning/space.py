"""Schedule spaces: the knobs of a task's sketch and the values each may take.

A :class:`Space` is a flat list of knobs ``(name, values)``.  A configuration is a tuple
with one value per knob; ``schedule(config)`` turns it into schedule steps.  The generic
space (:class:`PlanSpace`) comes from the same rules as the default schedule
(``mlc.loop.auto_schedule``): register tile rows ``mr`` and vectors ``nv``, the reduce
cache block ``kc``, unrolling, vectorisation mode and, when tuning for several threads,
the parallel loop depth.  An operator may register a space of its own (convolution does:
pixel tile, channel blocks, reduction order, unrolling of the input-channel loop).

Every space contains its default schedule (``default()``), so tuning never does worse
than the untuned compile.
"""
from __future__ import annotations

import random

from ..loop.auto_schedule import InjectivePlan, KernelPlan, TilePlan, plan_kernel
from ..loop.schedule import Schedule


class Space:
    """Base class: subclasses set ``knobs`` and implement ``_schedule``."""

    knobs: list           # [(name, [values])]

    def default(self) -> tuple:
        raise NotImplementedError

    def neutral(self) -> tuple:
        """The default, except that knobs added over time take the value that changes
        nothing (what a configuration logged before they existed meant)."""
        return self.default()

    def valid(self, cfg: tuple) -> bool:
        return True

    def schedule(self, cfg: tuple) -> Schedule:
        raise NotImplementedError

    # -- generic machinery ------------------------------------------------------------
    @property
    def size(self) -> int:
        n = 1
        for _, vals in self.knobs:
            n *= len(vals)
        return n

    def upgrade(self, config) -> tuple | None:
        """A logged configuration as one of this space's: knobs added since it was logged
        are appended to the knob list with the value that changes nothing, so an older,
        shorter configuration takes the trailing values of :meth:`neutral`.  None if it
        does not fit (a longer configuration, or a value the space no longer offers)."""
        cfg = tuple(config)
        n = len(self.knobs)
        if len(cfg) > n:
            return None
        cfg += self.neutral()[len(cfg):]
        if any(v not in vals for v, (_, vals) in zip(cfg, self.knobs)):
            return None
        return cfg

    def as_dict(self, cfg: tuple) -> dict:
        return {name: v for (name, _), v in zip(self.knobs, cfg)}

    def sample(self, rng: random.Random) -> tuple:
        for _ in range(100):
            cfg = tuple(rng.choice(vals) for _, vals in self.knobs)
            if self.valid(cfg):
                return cfg
        return self.default()

    def mutate(self, cfg: tuple, rng: random.Random) -> tuple:
        """Change one knob to a nearby value (or any value, with small probability)."""
        if not self.knobs:
            return cfg
        for _ in range(50):
            k = rng.randrange(len(self.knobs))
            vals = self.knobs[k][1]
            if len(vals) < 2:
                continue
            cur = vals.index(cfg[k]) if cfg[k] in vals else 0
            if rng.random() < 0.8:
                j = min(len(vals) - 1, max(0, cur + rng.choice((-2, -1, 1, 2))))
            else:
                j = rng.randrange(len(vals))
            if j == cur:
                continue
            new = cfg[:k] + (vals[j],) + cfg[k + 1:]
            if self.valid(new):
                return new
        return cfg

    def crossover(self, a: tuple, b: tuple, rng: random.Random) -> tuple:
        child = tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))
        return child if self.valid(child) else a


class PlanSpace(Space):
    """The generic space of a kernel's plans (see module doc)."""

    def __init__(self, plan: KernelPlan, target, threads: int = 1):
        self.plan = plan
        self.target = target
        self.threads = threads
        self._defaults = plan.default_knobs(target)
        self.knobs = []
        self._where = []      # knob index -> (plan index, knob name)
        for p, (pl, dk) in enumerate(zip(plan.plans, self._defaults)):
            for name, vals in self._domains(pl, dk):
                vals = list(dict.fromkeys(vals))
                if dk.get(name) not in vals and name in dk:
                    vals.append(dk[name])
                self.knobs.append((f"{p}.{name}", vals))
                self._where.append((p, name))

    def _domains(self, pl, dk: dict) -> list:
        out = []
        if isinstance(pl, TilePlan):
            L = pl.kernel_lanes
            t_ext = pl._extent(pl.tile_axis) if pl.tile_axis else 1
            v_ext = pl._extent(pl.vector_axis)
            out.append(("mr", list(range(1, min(t_ext, 16) + 1))))
            out.append(("nv", list(range(1, min(4, -(-v_ext // L)) + 1))))
            K = pl.stage.reduce_axes[0].extent if pl.stage.reduce_axes else 1
            if pl.tile_axis is not None:
                out.append(("kc", [0] + [k for k in (32, 64, 128, 192, 256, 384, 512) if k < K]))
                out.append(("mc", [0] + [m for m in (48, 96, 192, 384, 768) if m < t_ext]))
        elif isinstance(pl, InjectivePlan):
            if pl.vectorize:
                out.append(("unroll", [1, 2, 4]))
        if self.threads > 1:
            out.append(("par", list(range(0, 4))))
        return out

    def default(self) -> tuple:
        return tuple(self._defaults[p][name] for p, name in self._where)

    def _knobs_of(self, cfg: tuple) -> list:
        knobs = [dict(d) for d in self._defaults]
        for (p, name), v in zip(self._where, cfg):
            knobs[p][name] = v
        return knobs

    def valid(self, cfg: tuple) -> bool:
        regs = self.target.num_vector_registers
        for pl, k in zip(self.plan.plans, self._knobs_of(cfg)):
            if isinstance(pl, TilePlan) and int(k["mr"]) * int(k["nv"]) > regs - 2:
                return False
        return True

    def schedule(self, cfg: tuple) -> Schedule:
        return self.plan.schedule(self._knobs_of(cfg))


def make_space(kernel, target, ops: list = (), threads: int = 1) -> Space:
    """The space of a task: an op's own space when its anchor op registers one."""
    from ..registry import lookup
    for op, domain in ops:
        opdef = lookup(op, domain)
        if opdef is not None and opdef.space is not None:
            sp = opdef.space(kernel, target, threads)
            if sp is not None:
                return sp
    return PlanSpace(plan_kernel(kernel, target), target, threads)
