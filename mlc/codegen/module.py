"""One LLVM module per compiled model: kernel functions, the thread pool, the entry point.

Each lowered kernel becomes ``void <name>(ptr b0, ptr b1, ...)`` taking its buffers in
``LoweredKernel.params()`` order.  A region whose outer loop is parallel is outlined into
``<name>_r<k>(ptr b..., i64 begin, i64 end)`` and run through ``mlc_parallel_for`` via a
small trampoline that unpacks the buffer pointers from a closure.

The entry point runs the whole model in one native call::

    void mlc_run(ptr inputs, ptr outputs, ptr arena, ptr weights)

``inputs``/``outputs`` are arrays of pointers to the caller's arrays; every other buffer is
an offset into the arena (activations, scratch) or the weights blob (constants).  Python
calls it once per inference.  ``mlc_run_profiled`` (same arguments plus ``uint64_t* ticks``)
also reads the clock between kernels, for ``CompiledModel.profile``.
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from ..loop.lower import LoweredKernel, Region
from ..loop.stmt import For
from ..target import Target
from . import llvm_util as U
from .emit import FunctionEmitter, dot4_lanes
from .threadpool import add_thread_pool

ENTRY = "mlc_run"
#: ``void mlc_run_profiled(ptr inputs, ptr outputs, ptr arena, ptr weights, ptr ticks)``:
#: ``mlc_run`` that also writes CLOCK_MONOTONIC (ns, uint64) to ``ticks[0]`` before the
#: first kernel and to ``ticks[k + 1]`` after kernel ``k`` -- ``len(calls) + 1`` values.
PROFILED_ENTRY = "mlc_run_profiled"


@dataclass(frozen=True)
class Location:
    """Where a buffer lives at run time: ("input", i) | ("output", i) | ("arena", off) | ("weights", off)."""

    space: str
    offset: int


class ModuleBuilder:
    def __init__(self, target: Target, name: str = "mlc_model"):
        self.target = target
        self.module = ir.Module(name=name)
        self.module.triple = target.triple
        add_thread_pool(self.module)
        self.parallel_for = self.module.globals["mlc_parallel_for"]
        self.kernels: list[ir.Function] = []
        self._names: set = set()

    # ------------------------------------------------------------------------------
    def _unique(self, name: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
        out, i = base, 0
        while out in self._names or out in self.module.globals:
            i += 1
            out = f"{base}_{i}"
        self._names.add(out)
        return out

    def add_kernel(self, lk: LoweredKernel, may_alias: frozenset = frozenset()) -> ir.Function:
        """Emit one kernel.  ``may_alias``: param indices that may share memory (in-place)."""
        params = lk.params()
        name = self._unique(lk.name)
        fn = ir.Function(self.module, ir.FunctionType(U.VOID, [U.PTR] * len(params)), name=name)
        fn.linkage = "internal"
        for i, arg in enumerate(fn.args):
            if i not in may_alias:
                arg.add_attribute("noalias")
        fe = FunctionEmitter(self.module, fn, dict(zip(params, fn.args)), self.target.lanes_f32,
                             self.target.has("fma"), dot4_lanes(self.target))
        for k, region in enumerate(lk.regions):
            if region.parallel:
                self._emit_parallel_region(fe, fn, name, k, region, params, may_alias)
            else:
                fe.emit(region.stmt)
        fe.finish()
        self.kernels.append(fn)
        return fn

    def _emit_parallel_region(self, fe: FunctionEmitter, kfn: ir.Function, name: str, k: int,
                              region: Region, params: list, may_alias: frozenset):
        loop: For = region.stmt
        n = len(params)
        # the region body: for v in [begin, end): body
        body_ty = ir.FunctionType(U.VOID, [U.PTR] * n + [U.I64, U.I64])
        body_fn = ir.Function(self.module, body_ty, name=f"{name}_r{k}")
        body_fn.linkage = "internal"
        for i, arg in enumerate(body_fn.args[:n]):
            if i not in may_alias:
                arg.add_attribute("noalias")
        inner = FunctionEmitter(self.module, body_fn, dict(zip(params, body_fn.args[:n])),
                                self.target.lanes_f32, self.target.has("fma"), dot4_lanes(self.target))
        begin, end = body_fn.args[n], body_fn.args[n + 1]
        inner.serial_loop(loop.var, begin, end, lambda: inner.emit(loop.body))
        inner.finish()
        # trampoline: void(ptr closure, i64 begin, i64 end)
        tramp = ir.Function(self.module, ir.FunctionType(U.VOID, [U.PTR, U.I64, U.I64]), name=f"{name}_r{k}_t")
        tramp.linkage = "internal"
        tb = ir.IRBuilder(tramp.append_basic_block())
        clo = tramp.args[0]
        ptrs = [tb.load(tb.gep(clo, [ir.Constant(U.I64, i)], source_etype=U.PTR), typ=U.PTR) for i in range(n)]
        tb.call(body_fn, ptrs + [tramp.args[1], tramp.args[2]])
        tb.ret_void()
        # in the kernel: pack the pointers and dispatch
        closure = fe.alloca(U.PTR, max(n, 1), name=f"closure{k}")
        b = fe.b
        for i, arg in enumerate(kfn.args):
            b.store(arg, b.gep(closure, [ir.Constant(U.I64, i)], source_etype=U.PTR))
        extent = fe.scalar(loop.extent)
        b.call(self.parallel_for, [tramp, closure, extent])

    # ------------------------------------------------------------------------------
    def add_entry(self, calls: list) -> ir.Function:
        """``calls``: [(kernel function, [Location per param])] in execution order.

        Emits ``mlc_run`` and its profiling twin ``mlc_run_profiled`` (see
        :data:`PROFILED_ENTRY`); returns ``mlc_run``.
        """
        fn = self._emit_entry(ENTRY, calls, profiled=False)
        self._emit_entry(PROFILED_ENTRY, calls, profiled=True)
        return fn

    def _emit_entry(self, name: str, calls: list, profiled: bool) -> ir.Function:
        nargs = 5 if profiled else 4
        fn = ir.Function(self.module, ir.FunctionType(U.VOID, [U.PTR] * nargs), name=name)
        inputs, outputs, arena, weights = fn.args[:4]
        b = ir.IRBuilder(fn.append_basic_block())
        cache: dict = {}

        def pointer(loc: Location) -> ir.Value:
            if loc in cache:
                return cache[loc]
            if loc.space in ("input", "output"):
                table = inputs if loc.space == "input" else outputs
                p = b.load(b.gep(table, [ir.Constant(U.I64, loc.offset)], source_etype=U.PTR), typ=U.PTR)
            else:
                base = arena if loc.space == "arena" else weights
                p = b.gep(base, [ir.Constant(U.I64, loc.offset)], source_etype=U.I8, inbounds=True)
            cache[loc] = p
            return p

        tick = self._tick_writer(b, fn.args[4]) if profiled else (lambda k: None)
        tick(0)
        for k, (kfn, locs) in enumerate(calls):
            b.call(kfn, [pointer(l) for l in locs])
            tick(k + 1)
        b.ret_void()
        return fn

    def _tick_writer(self, b: ir.IRBuilder, ticks: ir.Value):
        """``tick(k)`` emits ``ticks[k] = CLOCK_MONOTONIC in ns`` (a vDSO call, ~20 ns)."""
        clock = self.module.globals.get("clock_gettime")
        if clock is None:
            clock = ir.Function(self.module, ir.FunctionType(U.I32, [U.I32, U.PTR]), name="clock_gettime")
        ts = b.alloca(ir.LiteralStructType([U.I64, U.I64]), name="timespec")
        zero = ir.Constant(U.I32, 0)

        def tick(k: int):
            b.call(clock, [ir.Constant(U.I32, 1), ts])        # CLOCK_MONOTONIC
            sec = b.load(b.gep(ts, [zero, zero], inbounds=True), typ=U.I64)
            nsec = b.load(b.gep(ts, [zero, ir.Constant(U.I32, 1)], inbounds=True), typ=U.I64)
            ns = b.add(b.mul(sec, ir.Constant(U.I64, 1_000_000_000)), nsec)
            b.store(ns, b.gep(ticks, [ir.Constant(U.I64, k)], source_etype=U.I64, inbounds=True))
        return tick

    def add_bench_entry(self, kernel: ir.Function, nparams: int) -> ir.Function:
        """``void mlc_bench(ptr buffers, i64 n)``: call ``kernel`` n times (for the tuner)."""
        fn = ir.Function(self.module, ir.FunctionType(U.VOID, [U.PTR, U.I64]), name="mlc_bench")
        bufs, n = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        ptrs = [b.load(b.gep(bufs, [ir.Constant(U.I64, i)], source_etype=U.PTR), typ=U.PTR) for i in range(nparams)]
        entry = b.block
        loop = fn.append_basic_block("loop")
        done = fn.append_basic_block("done")
        b.cbranch(b.icmp_signed(">", n, ir.Constant(U.I64, 0)), loop, done)
        b.position_at_end(loop)
        i = b.phi(U.I64)
        i.add_incoming(ir.Constant(U.I64, 0), entry)
        b.call(kernel, ptrs)
        nxt = b.add(i, ir.Constant(U.I64, 1))
        i.add_incoming(nxt, loop)
        b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
        b.position_at_end(done)
        b.ret_void()
        return fn

    def add_flush_entry(self):
        """``void mlc_flush(ptr p, i64 nbytes)``: write back and evict every cache line of
        ``[p, p + nbytes)`` from every cache level (clflush), then fence, so the next
        kernel call reads those bytes from memory as it would inside a model whose
        weights do not fit the caches."""
        fn = ir.Function(self.module, ir.FunctionType(U.VOID, [U.PTR, U.I64]), name="mlc_flush")
        p, nbytes = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        entry = b.block
        loop, done = fn.append_basic_block("loop"), fn.append_basic_block("done")
        b.cbranch(b.icmp_signed(">", nbytes, ir.Constant(U.I64, 0)), loop, done)
        b.position_at_end(loop)
        off = b.phi(U.I64)
        off.add_incoming(ir.Constant(U.I64, 0), entry)
        clflush = U.intrinsic(self.module, "llvm.x86.sse2.clflush", U.VOID, [U.PTR])
        b.call(clflush, [b.gep(p, [off], source_etype=U.I8)])
        nxt = b.add(off, ir.Constant(U.I64, 64))
        off.add_incoming(nxt, loop)
        b.cbranch(b.icmp_signed("<", nxt, nbytes), loop, done)
        b.position_at_end(done)
        b.call(U.intrinsic(self.module, "llvm.x86.sse2.mfence", U.VOID, []), [])
        b.ret_void()

    def ir_text(self) -> str:
        return str(self.module)
