"""Tasks: the distinct kernels of a model, each tuned once however often it occurs.

A task is a fused group's kernel with concrete shapes; its key is the kernel's
structural hash (ops, attributes, shapes, dtypes, never tensor names), so ResNet's
repeated blocks share a task.  ``weight`` counts occurrences: a task's share of the
model's time is weight x its latency.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..compiler.kernel_builder import build_kernel
from ..compiler.pipeline import _kernel_name, _used_after, partition
from ..graph.passes import default_passes
from .measure import weights_cold
from .space import make_space


@dataclass
class Task:
    key: str
    kernel: object
    weight: int
    flops: int
    desc: str
    ops: list
    space: object = None

    @property
    def cold(self) -> bool:
        """Measured with its weights flushed from the caches (see ``measure.weights_cold``)."""
        return weights_cold(self.kernel)

    def __str__(self) -> str:
        return f"{self.desc} x{self.weight}"


def describe(built) -> str:
    ops = "+".join(n.op for n in built.nodes)
    shapes = ",".join("x".join(map(str, b.shape)) for b in built.kernel.outputs)
    return f"{ops} [{shapes}]"


def extract_tasks(graph, target, threads: int = 1) -> list:
    """Tasks of an imported graph, in order of first occurrence."""
    import mlc.api  # noqa: F401  (registers the operator library)
    graph = default_passes(graph, target)
    groups = partition(graph)
    used = _used_after(graph, groups)
    tasks: dict = {}
    for k, (kind, payload, _) in enumerate(groups):
        if kind != "kernel":
            continue
        bk = build_kernel(_kernel_name(payload, k), payload, graph, target, used[k])
        key = bk.kernel.key()
        if key in tasks:
            tasks[key].weight += 1
            continue
        ops = [(n.op, n.domain) for n in bk.nodes]
        tasks[key] = Task(key, bk.kernel, 1, bk.kernel.flops(), describe(bk), ops)
    for t in tasks.values():
        t.space = make_space(t.kernel, target, t.ops, threads)
    return list(tasks.values())
