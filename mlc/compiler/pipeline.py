"""The compile pipeline: Graph -> passes -> kernels -> schedules -> one native module.

    graph = passes(graph)                      # clean-up, simplification, fusion, layout
    steps = partition(graph)                   # kernel groups in order; views become aliases
    for each group: kernel = build_kernel()    # op build functions -> stages
                    schedule = tuned or default
                    lowered = lower(kernel, schedule)
    plan = plan_memory(...)                    # arena offsets, output placement
    module = ModuleBuilder(...)                # every kernel + one entry function
    object code = LLVM -O3

The result, an :class:`Executable`, is everything a CompiledModel needs and everything a
saved artifact stores: object code, weights blob, buffer locations, I/O signature.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..codegen.jit import compile_ir, program_get, program_key, program_put
from ..codegen.module import Location, ModuleBuilder
from ..graph.ir import Graph
from ..graph.passes.memory_plan import KernelStep, plan_memory
from ..loop.auto_schedule import default_schedule
from ..loop.lower import lower, pack_array
from ..loop.schedule import Schedule
from ..registry import lookup
# the compile's product, defined with the runtime (which loads it without this module)
from ..runtime.executable import Executable, KernelRecord, TensorInfo  # noqa: F401
from ..target import Target
from .kernel_builder import BuiltKernel, build_kernel


@dataclass
class CompileOptions:
    target: Target
    schedules: dict = field(default_factory=dict)     # task key -> Schedule (from tuning logs)
    opt_level: int = 3
    passes: object = None                             # callable(Graph, target) -> Graph
    # callable(stage, payload), for mlc.inspect: ("fused", Graph after passes),
    # ("lowered", [(KernelRecord, LoweredKernel)]), ("llvm_ir", unoptimised IR text).
    # It may raise to stop the compile after the stage it wants.
    trace: object = None


# --------------------------------------------------------------------------------------

def partition(graph: Graph) -> list:
    """Kernel groups in execution order: list of ("kernel", [nodes]) | ("view", node).

    A fused node (op "mlc.Fused") carries its member nodes in attrs["body"]; every other
    non-view node is a group of its own.
    """
    out = []
    for node in graph.nodes:
        if node.op == "mlc.Fused":
            out.append(("kernel", list(node.attrs["body"].nodes), node))
            continue
        opdef = lookup(node.op, node.domain)
        if opdef is not None and opdef.pattern == "view" and node.inputs and \
                graph.tensor(node.inputs[0]).size == graph.tensor(node.outputs[0]).size:
            out.append(("view", node, node))
            continue
        out.append(("kernel", [node], node))
    return out


def compile_graph(graph: Graph, options: CompileOptions) -> Executable:
    t0 = time.perf_counter()
    target = options.target
    if options.passes is not None:
        graph = options.passes(graph, target)
    if options.trace is not None:
        options.trace("fused", graph)
    groups = partition(graph)
    used_after = _used_after(graph, groups)

    views: dict = {}
    built: list = []
    for k, (kind, payload, head) in enumerate(groups):
        if kind == "view":
            views[payload.outputs[0]] = payload.inputs[0]
            continue
        name = _kernel_name(payload, k)
        bk = build_kernel(name, payload, graph, target, used_after[k])
        built.append(bk)
    t_build = time.perf_counter()

    # schedules and lowering; identical (kernel key, schedule) pairs share one function
    lowered: list = []
    records: list = []
    for bk in built:
        key = bk.kernel.key()
        sched = options.schedules.get(key)
        tuned = sched is not None
        if sched is None:
            sched = choose_default_schedule(bk, target)
        lk = lower(bk.kernel, sched, target.lanes_f32)
        lowered.append(lk)
        records.append(KernelRecord(bk.kernel.name, "", key, [n.op for n in bk.nodes],
                                    [n.name for n in bk.nodes], bk.kernel.flops(), sched.to_json(), tuned,
                                    [list(b.shape) for b in bk.kernel.outputs]))
    t_lower = time.perf_counter()
    if options.trace is not None:
        options.trace("lowered", list(zip(records, lowered)))

    # memory
    nbytes = {name: t.nbytes for name, t in graph.tensors.items()}
    steps = [KernelStep([n for n in bk.input_names if n is not None], bk.output_names,
                        [b.nbytes for b in lk.scratch])
             for bk, lk in zip(built, lowered)]
    constants = {n for n, t in graph.tensors.items() if t.value is not None}
    plan = plan_memory(steps, views, nbytes, list(graph.inputs), list(graph.outputs), constants)

    # weights blob: each constant as each kernel needs it (packed per its schedule)
    blob = _WeightsBlob()
    call_locs = []
    for k, (bk, lk, rec) in enumerate(zip(built, lowered, records)):
        locs = []
        for idx, (tname, buf) in enumerate(zip(bk.input_names, lk.inputs)):
            packs = lk.packs.get(buf.name, [])
            if tname is None:       # a constant the op derived at compile time
                locs.append(Location("weights", blob.add((k, idx), bk.derived[idx], packs)))
                continue
            t = graph.tensor(tname)
            if t.value is not None:
                locs.append(Location("weights", blob.add(tname, t.value, packs)))
            else:
                locs.append(_location(plan.location[tname]))
        for tname in bk.output_names:
            locs.append(_location(plan.location[tname]))
        for off in plan.scratch[k]:
            locs.append(Location("arena", off))
        call_locs.append(locs)
    fkeys = [(rec.key, Schedule.from_json(rec.schedule).dumps()) for rec in records]

    # the code is fixed by the lowered kernels (every loop nest as emitted, with its
    # buffers' types) and where each call's buffers are: a recompile of the same program
    # takes the object (and kernel symbols) from the cache
    pkey = None if options.trace is not None else program_key(
        [f"{_lowered_text(lk)}\n{locs}" for lk, locs in zip(lowered, call_locs)]
        + [f"arena {plan.arena_bytes}"], target, options.opt_level)
    cached = program_get(pkey)
    if cached is not None and len(cached[1]) == len(records):
        obj, symbols = cached
        for rec, sym in zip(records, symbols):
            rec.symbol = sym
        t_ir = t_llvm = time.perf_counter()
        n_functions = len(set(fkeys))
        code_cache = "hit"
    else:
        mb = ModuleBuilder(target)
        fn_cache: dict = {}
        calls = []
        for lk, rec, fkey, locs in zip(lowered, records, fkeys, call_locs):
            fn = fn_cache.get(fkey)       # identical (kernel, schedule) pairs share one function
            if fn is None:
                fn = mb.add_kernel(lk)
                fn_cache[fkey] = fn
            rec.symbol = fn.name
            calls.append((fn, locs))
        mb.add_entry(calls)
        ir_text = mb.ir_text()
        t_ir = time.perf_counter()
        if options.trace is not None:
            options.trace("llvm_ir", ir_text)
        obj = compile_ir(ir_text, target, options.opt_level, cache=True)
        t_llvm = time.perf_counter()
        program_put(pkey, obj, [rec.symbol for rec in records])
        n_functions = len(fn_cache)
        code_cache = "miss" if pkey is not None else "off"

    inputs = [TensorInfo(n, tuple(graph.tensor(n).shape), graph.tensor(n).dtype) for n in graph.inputs]
    outputs = [TensorInfo(n, tuple(graph.tensor(n).shape), graph.tensor(n).dtype) for n in graph.outputs]
    copy_outputs = []
    for j, name in plan.copy_outputs:
        t = graph.tensor(name)
        if t.value is not None:
            copy_outputs.append((j, ("weights", blob.add(name, t.value, []))))
        else:
            copy_outputs.append((j, plan.location[name]))
    stats = {"kernels": len(built), "functions": n_functions, "arena_bytes": plan.arena_bytes,
             "weights_bytes": blob.size, "seconds": {"build": t_build - t0, "lower": t_lower - t_build,
                                                     "ir": t_ir - t_lower, "llvm": t_llvm - t_ir},
             "tuned_kernels": sum(r.tuned for r in records), "code_cache": code_cache}
    names = list(graph.outputs)
    row_counts = {names.index(o): names.index(c) for o, c in graph.row_counts.items()}
    return Executable(obj, blob.finish(), plan.arena_bytes, inputs, outputs, copy_outputs, records,
                      target, stats, row_counts=row_counts)


# --------------------------------------------------------------------------------------

def _lowered_text(lk) -> str:
    """Everything the emitter reads from a lowered kernel, as text."""
    params = " ".join(f"{b.name}:{b.dtype}{list(b.shape)}" for b in lk.params())
    flags = "".join("p" if r.parallel else "s" for r in lk.regions)
    return f"{params}\n{flags}\n{lk}"


def choose_default_schedule(bk: BuiltKernel, target: Target) -> Schedule:
    """The anchor op's own default schedule when it has one, else the generic rules."""
    for node in bk.nodes:
        opdef = lookup(node.op, node.domain)
        if opdef is not None and opdef.schedule is not None:
            sched = opdef.schedule(bk.kernel, target)
            if sched is not None:
                return sched
    return default_schedule(bk.kernel, target)


def _location(loc: tuple) -> Location:
    return Location(loc[0], int(loc[1]))


def _kernel_name(nodes: list, k: int) -> str:
    ops = "_".join(dict.fromkeys(n.op for n in nodes))
    if len(ops) > 40:
        ops = ops[:40]
    return f"k{k}_{ops}"


def _used_after(graph: Graph, groups: list) -> list:
    """For each group: tensor names it produces that are read later or are graph outputs."""
    outputs = set(graph.outputs)
    readers: dict = {}
    for k, (kind, payload, _) in enumerate(groups):
        nodes = [payload] if kind == "view" else payload
        for n in nodes:
            for i in n.inputs:
                if i:
                    readers.setdefault(i, set()).add(k)
    out = []
    for k, (kind, payload, _) in enumerate(groups):
        nodes = [payload] if kind == "view" else payload
        produced = {o for n in nodes for o in n.outputs if o}
        out.append({t for t in produced if t in outputs or any(r != k for r in readers.get(t, ()))})
    return out


class _WeightsBlob:
    """Constants laid out back to back, 64-byte aligned, deduplicated by (tensor, packing)."""

    def __init__(self):
        self.parts: list = []
        self.offsets: dict = {}
        self.size = 0

    def add(self, name, value: np.ndarray, packs: list) -> int:
        key = (name, tuple(tuple(p) for p in packs))
        if key in self.offsets:
            return self.offsets[key]
        data = pack_array(value, packs) if packs else np.ascontiguousarray(value)
        if data.dtype == np.bool_:
            data = data.astype(np.uint8)
        raw = data.view(np.uint8).reshape(-1)
        off = self.size
        self.parts.append((off, raw))
        self.offsets[key] = off
        self.size = (off + raw.nbytes + 63) // 64 * 64
        return off

    def finish(self) -> np.ndarray:
        buf = _aligned_empty(max(self.size, 64))
        buf[:] = 0
        for off, raw in self.parts:
            buf[off:off + raw.nbytes] = raw
        return buf


def _aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    raw = np.empty(nbytes + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + nbytes]
