"""Memory planning: where every tensor lives at run time, with arena space reused.

Inputs are the kernel steps in execution order.  Views (Reshape, Squeeze, ...) share
their source's storage.  Each remaining buffer is placed in one of:

    input    the caller's input array
    output   the output array handed back to the caller (the kernel writes it directly)
    weights  the constant blob built at compile time
    arena    one preallocated block; buffers whose lifetimes do not overlap share space

Arena placement is greedy by size (largest first, lowest offset that does not collide
with a placed buffer of overlapping lifetime), as TFLite's planner does: simple and
within a few percent of optimal on CNNs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ALIGN = 64


@dataclass
class KernelStep:
    """One kernel invocation: graph tensors read/written, plus private scratch sizes."""

    inputs: list            # tensor names
    outputs: list           # tensor names
    scratch: list           # byte sizes of kernel-private buffers


@dataclass
class MemoryPlan:
    location: dict                     # tensor name -> (space, index or byte offset)
    scratch: list                      # per step: [arena offset per scratch buffer]
    arena_bytes: int
    copy_outputs: list                 # (output index, source tensor) filled by a copy after the run
    stats: dict = field(default_factory=dict)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(steps: list, views: dict, nbytes: dict, graph_inputs: list, graph_outputs: list,
                constants: set) -> MemoryPlan:
    """Place every tensor.  ``views``: view tensor -> the tensor it reinterprets."""

    def root(name: str) -> str:
        seen = 0
        while name in views:
            name = views[name]
            seen += 1
            if seen > 10_000:
                raise RuntimeError("cycle in view aliases")
        return name

    location: dict = {}
    for i, name in enumerate(graph_inputs):
        location[name] = ("input", i)

    # outputs a kernel can write directly; the rest are copied after the run
    direct_output: dict = {}
    copy_outputs: list = []
    for j, name in enumerate(graph_outputs):
        r = root(name)
        produced = any(r in s.outputs for s in steps)
        if produced and r not in direct_output and r not in graph_inputs and r not in constants:
            direct_output[r] = j
        else:
            copy_outputs.append((j, name))

    # lifetimes of arena-resident roots (step indices, inclusive)
    first: dict = {}
    last: dict = {}
    for k, s in enumerate(steps):
        for t in s.outputs:
            r = root(t)
            first.setdefault(r, k)
            last[r] = max(last.get(r, k), k)
        for t in s.inputs:
            r = root(t)
            if r in first:
                last[r] = max(last.get(r, k), k)
    end = len(steps)
    for _, name in copy_outputs:
        r = root(name)
        if r in first:
            last[r] = end

    blocks = []       # (size, first, last, key)
    for r, k0 in first.items():
        if r in direct_output:
            continue
        blocks.append((_align(max(1, nbytes[r])), k0, last[r], ("tensor", r)))
    for k, s in enumerate(steps):
        for m, size in enumerate(s.scratch):
            blocks.append((_align(max(1, size)), k, k, ("scratch", k, m)))
    placed: list = []     # (offset, size, first, last)
    offsets: dict = {}
    for size, k0, k1, key in sorted(blocks, key=lambda b: (-b[0], b[1])):
        offset = 0
        for off, sz, a0, a1 in sorted(placed):
            if a1 < k0 or k1 < a0:
                continue          # lifetimes do not overlap
            if offset + size <= off:
                break
            offset = max(offset, off + sz)
        placed.append((offset, size, k0, k1))
        placed.sort()
        offsets[key] = offset
    arena = max((off + sz for off, sz, _, _ in placed), default=0)

    for r in first:
        if r in direct_output:
            location[r] = ("output", direct_output[r])
        else:
            location[r] = ("arena", offsets[("tensor", r)])
    all_names = set(nbytes) | set(views)
    for name in all_names:
        if name not in location:
            r = root(name)
            if r in location:
                location[name] = location[r]
    scratch = [[offsets[("scratch", k, m)] for m in range(len(s.scratch))] for k, s in enumerate(steps)]
    naive = sum(b[0] for b in blocks)
    return MemoryPlan(location, scratch, arena, copy_outputs,
                      {"arena_bytes": arena, "unshared_bytes": naive, "buffers": len(blocks)})
